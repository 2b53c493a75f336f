"""Benchmark: one SIRNetwork step against the memory-bandwidth bound and a bare gather +
segment_sum over the same edges (issue 12's roofline).

* Bandwidth: a STREAM-style triad ``a = b + 3 c`` over 4e8-byte float64 arrays (NumPy,
  best of 5, done as ``a = 3 c; a += b``: 5 array transfers counted).
* Bound of one step: the bytes a step cannot avoid moving, divided by that
  bandwidth: the edge arrays (int32 senders and receivers, 8 bytes per directed
  edge), one gathered float32 per edge (4 bytes), and the state read and written
  once (the SIR state's bytes x 2).
* Bare: ``segment_sum(x[senders], receivers, sorted)`` jitted, on the same graph.
* Step: ``simulate`` of ``--steps`` steps, time per step (compiled, best of 3).

    python benchmarks/roofline.py --agents 1000000
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def best_of(fn, repeats: int = 5) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def bandwidth_gb_s(n_bytes: int = 400_000_000) -> float:
    n = n_bytes // 8
    a, b, c = np.empty(n), np.random.rand(n), np.random.rand(n)

    def triad():
        np.multiply(c, 3.0, out=a)
        np.add(a, b, out=a)

    # multiply + add moves 5 arrays' worth (c read, a write, a read, b read, a write)
    return 5 * n * 8 / best_of(triad) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=1_000_000)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()

    import equinox as eqx
    import jax
    import jax.numpy as jnp

    import agentgrad as ag

    bw = bandwidth_gb_s()
    graph = ag.graphs.erdos_renyi(args.agents, 10.0, key=jax.random.key(0))
    model = ag.models.SIRNetwork(graph=graph)
    params = model.param_space.defaults()
    key = jax.random.key(1)
    state = model.init(params, key)
    state_bytes = sum(x.nbytes for x in jax.tree.leaves(state))
    edges = int(graph.senders.shape[0])
    moved = 8 * edges + 4 * edges + 2 * state_bytes
    bound = moved / (bw * 1e9)

    x = jnp.ones(args.agents, jnp.float32)
    bare_fn = jax.jit(
        lambda x, s, r: jax.ops.segment_sum(
            x[s], r, num_segments=args.agents, indices_are_sorted=graph.sender_blocks == 1
        )
    )
    bare = best_of(lambda: bare_fn(x, graph.senders, graph.receivers).block_until_ready(), 5)
    run = eqx.filter_jit(lambda m, p, k: ag.simulate(m, p, k, args.steps).observables)
    step = best_of(lambda: jax.block_until_ready(run(model, params, key)), 3) / args.steps

    print(f"{args.agents} agents, {edges} directed edges, state {state_bytes / 1e6:.0f} MB")
    print(f"memory bandwidth (triad): {bw:.1f} GB/s")
    print(f"bytes a step must move: {moved / 1e6:.0f} MB -> bound {1e3 * bound:.1f} ms")
    print(f"bare gather + segment_sum: {1e3 * bare:.1f} ms = {bare / bound:.1f}x the bound")
    print(
        f"SIRNetwork step in simulate: {1e3 * step:.1f} ms = {step / bound:.1f}x the bound, "
        f"{step / bare:.2f}x the bare gather + segment_sum"
    )


if __name__ == "__main__":
    main()
