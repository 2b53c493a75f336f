"""Benchmark: the memory estimates of `agentgrad.resources` against measured peak memory.

For each model, size and mode, a fresh process builds the model, resets the peak-RSS
counter (Linux ``clear_refs``), and runs `resources.memory_program` (one ``simulate``
of ``--steps`` steps: forward, forward mode with 1 or 3 tangents, reverse with or
without ``checkpoint``). It prints, in MB:

* ``fitted``: `resources.simulation_bytes`, the cheap fitted formula (no compilation),
  less the model's arrays, which are already resident;
* ``xla``: `resources.compiled_run_bytes`, XLA's buffer assignment of the same program;
* ``measured``: the peak resident memory above the level before the run.

    python benchmarks/memory_model.py --sizes 1000000
"""

from __future__ import annotations

import argparse
import json

from _memory import peak_since, reset_peak, run_worker

MODES = {
    "forward": {},
    "jvp-1": {"directions": 1},
    "jvp-3": {"directions": 3},
    "reverse": {"reverse": True},
    "reverse-ckpt": {"reverse": True, "checkpoint": True},
}


def worker(name: str, n: int, mode: str, steps: int) -> dict:
    import jax

    import agentgrad as ag
    from agentgrad.resources import (
        compiled_run_bytes,
        memory_program,
        simulation_bytes,
        tree_bytes,
    )

    if name == "seirm":
        from agentgrad.models.population import synthetic_population

        model = ag.models.SEIRM(synthetic_population(n, 10.0, key=0))
    else:
        model = ag.models.SIRNetwork(graph=ag.graphs.erdos_renyi(n, 10.0, key=0))
    params = model.param_space.defaults()
    options = MODES[mode]
    structure = tree_bytes(jax.tree.leaves(model))
    fitted = simulation_bytes(model, params, batch=1, steps=steps, runs=1, **options)
    xla = compiled_run_bytes(model, params, steps=steps, **options)
    program, arrays, params = memory_program(model, params, steps=steps, **options)
    compiled = jax.jit(program).lower(arrays, params).compile()
    baseline = reset_peak()
    jax.block_until_ready(compiled(arrays, params))
    return {
        "fitted_mb": (fitted - structure) / 1e6,
        "xla_mb": xla / 1e6,
        "measured_mb": peak_since(baseline) * 2**20 / 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000")
    parser.add_argument("--models", default="sir-network,seirm")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--worker", nargs="*")
    args = parser.parse_args()
    if args.worker:
        name, n, mode, steps = args.worker
        print(json.dumps(worker(name, int(n), mode, int(steps))))
        return
    print(f"{args.steps} steps, mean degree 10; MB above the resident model")
    print(
        f"{'model':<12} {'agents':>9} {'mode':<13} {'fitted':>8} {'xla':>8} {'measured':>9} "
        f"{'fitted/meas':>11} {'xla/meas':>9}"
    )
    for name in args.models.split(","):
        for n in (int(float(s)) for s in args.sizes.split(",")):
            for mode in args.modes.split(","):
                r = run_worker(__file__, name, n, mode, args.steps)
                m = r["measured_mb"]
                print(
                    f"{name:<12} {n:>9} {mode:<13} {r['fitted_mb']:>8.0f} {r['xla_mb']:>8.0f} "
                    f"{m:>9.0f} {r['fitted_mb'] / m:>11.2f} {r['xla_mb'] / m:>9.2f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
