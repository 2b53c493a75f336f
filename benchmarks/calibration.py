"""Benchmark: GVI calibration of SIRNetwork — seconds per epoch and peak memory.

Part 1: seconds per training epoch (5 Monte-Carlo samples per step, 2 simulator runs
each, MSE loss, 9 parameters, flow posterior) for pathwise-hybrid, pathwise-reverse
and VarGrad, at 10^4 agents (Erdős–Rényi, mean degree 10), 60 steps.  Per-epoch time
= (time of 4 epochs - time of 1 epoch) / 3, so compilation is excluded.  The per
agent-step figure divides by samples x runs x agents x steps.
Part 2: peak memory of one epoch, hybrid vs reverse, at 60 and 600 steps (fresh
process per cell).

    python benchmarks/calibration.py
"""

from __future__ import annotations

import argparse
import json
import time

from _memory import peak_since, reset_peak, run_worker

AGENTS, SAMPLES, SIMS = 10_000, 5, 2


def _setup(steps: int):
    import jax

    import agentgrad as ag

    model = ag.models.SIRNetwork(graph=ag.graphs.erdos_renyi(AGENTS, 10, key=jax.random.key(0)))
    obs = ag.simulate(model, None, jax.random.key(1), steps).observables
    return model, {k: obs[k] for k in ("new_infected", "new_recovered")}


def _fit(model, observed, epochs: int, gradient: str, ad: str):
    import jax

    from agentgrad.calibration import calibrate

    return calibrate(
        model,
        observed,
        jax.random.key(2),
        loss="mse",
        family="flow",
        kl_weight=1e-3,
        n_samples=SAMPLES,
        n_sims=SIMS,
        epochs=epochs,
        gradient=gradient,
        ad=ad,
    )


def worker(mode: str, steps: int) -> dict:
    model, observed = _setup(steps)
    gradient, ad = ("vargrad", "reverse") if mode == "vargrad" else ("pathwise", mode)
    baseline = reset_peak()
    _fit(model, observed, 1, gradient, ad)
    return {"peak_mb": peak_since(baseline)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--memory-steps", type=int, nargs="+", default=[60, 600])
    parser.add_argument("--worker", nargs=2, metavar=("MODE", "STEPS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], int(args.worker[1]))))
        return
    model, observed = _setup(args.steps)
    print(f"Part 1: {AGENTS} agents, {args.steps} steps, {SAMPLES} samples x {SIMS} runs/epoch")
    print(f"{'method':<18} {'s / epoch':>10} {'µs / agent-step':>16}")
    for label, gradient, ad in (
        ("pathwise-hybrid", "pathwise", "hybrid"),
        ("pathwise-reverse", "pathwise", "reverse"),
        ("vargrad", "vargrad", "reverse"),
    ):
        t0 = time.perf_counter()
        _fit(model, observed, 1, gradient, ad)
        t1 = time.perf_counter()
        _fit(model, observed, 4, gradient, ad)
        t2 = time.perf_counter()
        per_epoch = ((t2 - t1) - (t1 - t0)) / 3
        per_agent_step = per_epoch / (SAMPLES * SIMS * AGENTS * args.steps) * 1e6
        print(f"{label:<18} {per_epoch:>10.3f} {per_agent_step:>16.4f}", flush=True)
    print("\nPart 2: peak memory of one epoch (MB above the process baseline)")
    print(f"{'steps':>6} {'hybrid':>10} {'reverse':>10}")
    for steps in args.memory_steps:
        cells = []
        for mode in ("hybrid", "reverse"):
            cells.append(run_worker(__file__, mode, steps)["peak_mb"])
        print(f"{steps:>6} {cells[0]:>10.0f} {cells[1]:>10.0f}", flush=True)


if __name__ == "__main__":
    main()
