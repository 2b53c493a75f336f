"""Benchmark: full 9-parameter sensitivity of SIRNetwork, and memory against run length.

Part 1 — time for the Jacobian of daily new infections over 60 steps w.r.t. all 9
parameters, averaged over 32 runs, 10^4 agents on an Erdős–Rényi graph (mean degree
10): forward mode, reverse mode, and one-at-a-time central finite differences
(2 x 9 perturbed ensembles of 32 runs).  Times include compilation (each method is
run once, as a user would) and are also shown without it (second call).

Part 2 — peak memory at 60, 240 and 960 steps (fresh process per cell) of one run's
forward-mode 9 x T Jacobian, and of one reverse-mode gradient of total infections
(all 9 parameters) without and with sqrt checkpointing.

    python benchmarks/sensitivity.py
"""

from __future__ import annotations

import argparse
import json
import time

from _memory import peak_since, reset_peak, run_worker

AGENTS = 10_000


def _model():
    import jax

    import agentgrad as ag

    graph = ag.graphs.erdos_renyi(AGENTS, 10, key=jax.random.key(0))
    return ag.models.SIRNetwork(graph=graph)


def timing(runs: int, steps: int) -> None:
    import jax

    from agentgrad.gradients import finite_differences, per_run_jacobians

    model = _model()
    key = jax.random.key(1)
    methods = {
        "forward": lambda: per_run_jacobians(
            model, None, key, steps, runs, "new_infected", mode="forward", batch=runs
        ),
        "reverse": lambda: per_run_jacobians(
            model, None, key, steps, runs, "new_infected", mode="reverse", batch=runs
        ),
        "finite differences": lambda: finite_differences(
            model, None, key, steps, runs, "new_infected"
        ),
    }
    sims = {"forward": runs, "reverse": runs, "finite differences": 2 * 9 * runs}
    print(f"Part 1: {AGENTS} agents, {steps} steps, {runs} runs, 9 parameters")
    print(f"{'method':<20} {'simulations':>11} {'first call s':>13} {'second call s':>14}")
    for name, fn in methods.items():
        t0 = time.perf_counter()
        fn()
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        fn()
        second = time.perf_counter() - t0
        print(f"{name:<20} {sims[name]:>11} {first:>13.2f} {second:>14.2f}", flush=True)


def memory_worker(mode: str, steps: int) -> dict:
    import jax

    import agentgrad as ag
    from agentgrad.gradients import per_run_jacobians

    model = _model()
    key = jax.random.key(1)
    baseline = reset_peak()
    if mode == "forward":
        per_run_jacobians(model, None, key, steps, 1, "new_infected", mode="forward", batch=1)
    else:

        def total(p):
            traj = ag.simulate(model, p, key, steps, checkpoint=mode == "reverse+checkpoint")
            return traj.observables["new_infected"].sum()

        jax.block_until_ready(jax.jit(jax.grad(total))(model.param_space.defaults()))
    return {"peak_mb": peak_since(baseline)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=32)
    parser.add_argument("--steps", type=int, nargs="+", default=[60, 240, 960])
    parser.add_argument("--worker", nargs=2, metavar=("MODE", "STEPS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(memory_worker(args.worker[0], int(args.worker[1]))))
        return
    timing(args.runs, 60)
    modes = ("forward", "reverse", "reverse+checkpoint")  # jacfwd; grad; grad + checkpoint
    print("\nPart 2: peak memory (MB above the process baseline), one run")
    print(f"{'steps':>6} " + " ".join(f"{m:>19}" for m in modes))
    for steps in args.steps:
        cells = []
        for mode in modes:
            cells.append(run_worker(__file__, mode, steps)["peak_mb"])
        print(f"{steps:>6} " + " ".join(f"{c:>19.0f}" for c in cells), flush=True)


if __name__ == "__main__":
    main()
