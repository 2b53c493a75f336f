"""Simulations per second through the sbi bridge against a plain vmapped ensemble.

The bridge (`calibration.sbi`) takes a torch tensor of parameter draws, converts it
to numpy, runs `Problem.simulate` (jitted vmapped chunks of 256 rows, each with its own
parameters) and returns numpy observables for sbi. The reference is `ag.ensemble`, a
single jitted vmap over the same number of runs at one parameter value, with no
chunking and no conversion. Both are on the SIRS grid (Table 1, 20 steps). Times are
the best of 5 alternating repeats after a warm-up, so compilation is excluded. The
issue's target is a bridge throughput of at least 80% of the ensemble's.

    python benchmarks/sbi_bridge.py [--runs 2048]
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    import jax
    import numpy as np
    import torch

    import agentgrad as ag
    from agentgrad.calibration.problem import make_problem
    from agentgrad.calibration.sbi import _simulate, torch_prior

    model = ag.models.SIRSGrid()
    observed = {
        k: np.asarray(v)
        for k, v in ag.simulate(model, None, jax.random.key(0), 20).observables.items()
        if k in ("infected", "recovered")
    }
    problem = make_problem(model, observed, None, None, None)
    torch.manual_seed(0)
    theta = torch_prior(problem.space, problem.names).sample((args.runs,))

    ensemble = jax.jit(lambda key: ag.ensemble(model, None, key, 20, args.runs).observables)

    def bridge() -> None:
        _simulate(problem, theta, jax.random.key(1), 256, False)

    def plain() -> None:
        jax.block_until_ready(ensemble(jax.random.key(1)))

    bridge(), plain()  # compile
    times = {"bridge": [], "ensemble": []}
    for _ in range(args.repeats):
        for name, fn in (("bridge", bridge), ("ensemble", plain)):
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    best = {k: min(v) for k, v in times.items()}
    rate = {k: args.runs / v for k, v in best.items()}
    print(f"runs per call: {args.runs} (SIRS grid 40x40, 20 steps)")
    for name in ("ensemble", "bridge"):
        print(f"{name:9s} {best[name]:.3f} s  {rate[name]:8.0f} runs/s")
    print(f"bridge / ensemble throughput: {rate['bridge'] / rate['ensemble']:.0%}")


if __name__ == "__main__":
    main()
