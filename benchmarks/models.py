"""Benchmark: agent-steps per second of every model in the library at two sizes.

For each model and size: the forward simulation, a forward-mode directional derivative
(``jax.jvp``, one parameter direction) and a reverse-mode gradient of the time-mean of
the model's first observable w.r.t. all its parameters (``jax.grad``; skipped for
Sugarscape, whose sequential per-agent scan would store every agent's view of the grid).
Best of ``--repeats`` after compilation, default parameters, straight-through estimator.

    python benchmarks/models.py            # both sizes of every model
    python benchmarks/models.py --models amof seirm --small
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
from _timing import best_time

import agentgrad as ag
from agentgrad.models import AMOF, SEIRM, PredatorPrey, Schelling, Sugarscape
from agentgrad.models.population import synthetic_population


def _seirm(n):
    return SEIRM(synthetic_population(n, key=0))


#: name -> (observable, steps, [(label, agents, builder)] small then large)
CASES = {
    "amof": ("mean_output", 30, [(1_000, lambda: AMOF(1_000)), (10_000, lambda: AMOF(10_000))]),
    "sugarscape": (
        "mean_wealth",
        50,
        [(400, lambda: Sugarscape(50, 400)), (4_000, lambda: Sugarscape(160, 4_000))],
    ),
    "seirm": (
        "infected",
        21,
        [(10_000, lambda: _seirm(10_000)), (100_000, lambda: _seirm(100_000))],
    ),
    "schelling": (
        "happy",
        20,
        [(1_950, lambda: Schelling()), (19_200, lambda: Schelling(160, 19_200))],
    ),
    "predator-prey": (
        "prey",
        30,
        [(2_048, lambda: PredatorPrey()), (20_000, lambda: PredatorPrey(100, 20_000))],
    ),
}


def measure(name: str, n_agents: int, model, observable: str, steps: int, repeats: int) -> dict:
    params = model.param_space.defaults()
    key = jax.random.key(0)
    first = model.param_space.names[0]
    direction = {k: jnp.float32(k == first) for k in params}

    @jax.jit
    def forward(p):
        return jnp.mean(ag.simulate(model, p, key, steps).observables[observable])

    @jax.jit
    def tangent(p):
        return jax.jvp(forward, (p,), (direction,))

    row = {
        "model": name,
        "agents": n_agents,
        "steps": steps,
        "forward": best_time(forward, params, repeats=repeats),
        "jvp": best_time(tangent, params, repeats=repeats),
    }
    if name != "sugarscape":
        grad = jax.jit(jax.grad(forward))
        row["grad"] = best_time(grad, params, repeats=repeats)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--small", action="store_true", help="only the smaller size")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(
        "| model | agents | steps | forward s | agent-steps/s | jvp s | jvp / fwd "
        "| grad s | grad / fwd |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in args.models:
        observable, steps, sizes = CASES[name]
        for n_agents, build in sizes[:1] if args.small else sizes:
            r = measure(name, n_agents, build(), observable, steps, args.repeats)
            rate = r["agents"] * r["steps"] / r["forward"]
            grad = (
                f"{r['grad']:.3f} | {r['grad'] / r['forward']:.2f}" if "grad" in r else "n/a | n/a"
            )
            print(
                f"| {name} | {n_agents:,} | {steps} | {r['forward']:.3f} | {rate:.3g} "
                f"| {r['jvp']:.3f} | {r['jvp'] / r['forward']:.2f} | {grad} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
