"""Benchmark: cost of SIRNetwork and SEIRM against the number of agents (issue 12).

For each model and size (mean contact degree 10): time per step of a forward run
(`simulate`), of a reverse-mode gradient of the final infected count w.r.t. all
parameters (`checkpoint=True`), and of a forward-mode JVP (one tangent: the
transmission parameter); microseconds per agent-step; peak resident memory of the
process (VmHWM, an upper bound: it includes Python, JAX, the graph and compilation);
graph/population construction time.  Every cell runs in a fresh
process (compiled first, best of 3), and a least-squares fit of time against agents
shows whether cost grows linearly.

    python benchmarks/scale.py --sizes 100000,1000000 --steps 100
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from _memory import run_worker, status_mb

MODES = ("forward", "reverse", "jvp")
RATE = {"sir-network": "beta", "seirm": "transmission"}


def build(name: str, n: int):
    import jax

    import agentgrad as ag
    from agentgrad.models import SEIRM
    from agentgrad.models.population import synthetic_population

    t0 = time.perf_counter()
    if name == "sir-network":
        model = ag.models.SIRNetwork(graph=ag.graphs.erdos_renyi(n, 10, key=jax.random.key(0)))
    else:
        model = SEIRM(synthetic_population(n, 10.0, key=0))
    return model, time.perf_counter() - t0


def worker(name: str, n: int, mode: str, steps: int) -> dict:
    import jax

    import agentgrad as ag

    model, build_s = build(name, n)
    params = model.param_space.defaults()
    key = jax.random.key(1)
    rate = RATE[name]

    def final_infected(p, checkpoint=False):
        obs = ag.simulate(model, p, key, steps, checkpoint=checkpoint).observables
        return obs["infected"][-1]

    if mode == "forward":
        fn = jax.jit(lambda p: final_infected(p))
    elif mode == "reverse":
        fn = jax.jit(jax.grad(lambda p: final_infected(p, checkpoint=True)))
    else:
        tangent = {k: jax.numpy.zeros_like(v) for k, v in params.items()}
        tangent[rate] = jax.numpy.ones_like(params[rate])
        fn = jax.jit(lambda p: jax.jvp(final_infected, (p,), (tangent,))[1])
    jax.block_until_ready(fn(params))  # compile
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(params))
        times.append(time.perf_counter() - t0)
    return {"build_s": build_s, "seconds": min(times), "peak_mb": status_mb("VmHWM")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--models", default="sir-network,seirm")
    parser.add_argument("--worker", nargs="*")
    args = parser.parse_args()
    if args.worker:
        name, n, mode, steps = args.worker
        print(json.dumps(worker(name, int(n), mode, int(steps))))
        return
    sizes = [int(float(s)) for s in args.sizes.split(",")]
    print(f"{args.steps} steps, mean degree 10; times per step, best of 3, compiled")
    print(
        f"{'model':<12} {'agents':>9} {'mode':<8} {'build s':>8} {'ms/step':>9} "
        f"{'us/agent-step':>14} {'peak MB':>8}"
    )
    for name in args.models.split(","):
        per_mode: dict[str, list[float]] = {m: [] for m in MODES}
        for n in sizes:
            for mode in MODES:
                r = run_worker(__file__, name, n, mode, args.steps)
                per_step = r["seconds"] / args.steps
                per_mode[mode].append(per_step)
                print(
                    f"{name:<12} {n:>9} {mode:<8} {r['build_s']:>8.2f} {1e3 * per_step:>9.2f} "
                    f"{1e6 * per_step / n:>14.4f} {r['peak_mb']:>8.0f}",
                    flush=True,
                )
        if len(sizes) > 1:
            for mode, ts in per_mode.items():
                slope = np.polyfit(np.log(sizes), np.log(ts), 1)[0]
                print(f"{name:<12} {mode:<8} time ~ agents^{slope:.2f} (log-log fit)")


if __name__ == "__main__":
    main()
