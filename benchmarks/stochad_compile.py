"""Benchmark: compile time of derivative_estimate against the number of top-level draws.

A walk of N Bernoulli(p) steps written as a Python loop of ``StochasticDerivative``
draws (the form the user guide allows), ``f = (sum of draws)^2``.  Prints, per N,
tracing and XLA compilation seconds and the compiled HLO size, for the unbiased and
the smoothed estimator; the last column is compile seconds per draw (constant when
compile time is linear in N).  The same walk through ``ag.simulate`` compiles once
whatever N (one ``lax.scan``).

    python benchmarks/stochad_compile.py --draws 8 16 32 64
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp

import agentgrad as ag
from agentgrad.stochad import derivative_estimate


def compile_seconds(n: int, estimator: ag.Estimator) -> tuple[float, float, int]:
    def walk(params, key):
        x = 0.0
        for t in range(n):
            k = jax.random.fold_in(key, t)
            x = x + ag.bernoulli(k, params["p"], estimator, shape=(10,)).sum()
        return x**2

    f = jax.jit(
        lambda k: derivative_estimate(walk, {"p": jnp.float32(0.3)}, k, {"p": jnp.float32(1.0)})
    )
    t0 = time.perf_counter()
    lowered = f.lower(jax.random.key(0))
    t1 = time.perf_counter()
    lowered.compile()
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1, len(lowered.as_text().splitlines())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, nargs="+", default=[8, 16, 32, 64])
    args = parser.parse_args()
    print(
        f"{'estimator':<10} {'draws':>5} {'trace s':>8} {'compile s':>9} {'HLO lines':>9} "
        f"{'s/draw':>7}"
    )
    for name, est in (
        ("sad", ag.StochasticDerivative()),
        ("smoothed", ag.SmoothedStochasticDerivative()),
    ):
        for n in args.draws:
            trace, comp, lines = compile_seconds(n, est)
            print(f"{name:<10} {n:>5} {trace:>8.2f} {comp:>9.2f} {lines:>9} {comp / n:>7.3f}")
            jax.clear_caches()


if __name__ == "__main__":
    main()
