"""Wall-clock timing shared by the benchmark scripts."""

import time

import jax


def best_time(fn, *args, repeats: int = 3) -> float:
    """Best of ``repeats`` wall times of ``fn(*args)`` after one warm-up (compilation) call."""
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return min(times)
