"""Benchmark: cost of SIRNetwork and SEIRM against the number of agents (issue 12).

For each model and size (mean contact degree 10): time per step of a forward run
(`simulate`), of a reverse-mode gradient of the final infected count w.r.t. all
parameters (`checkpoint=True`), and of a forward-mode JVP (one tangent: the
transmission parameter); microseconds per agent-step; peak resident memory of the
process (VmHWM, an upper bound: it includes Python, JAX, building the graph and compilation)
and the simulation's own peak above the memory held once the model is built ("sim MB");
graph/population construction time.  Every cell runs in a fresh
process (compiled first, best of ``--repeats``), and a least-squares fit of time
against agents shows whether cost grows linearly.  ``--devices 1,2`` repeats every cell
with the agents sharded over that many devices (``ag.Sharding``; CPU host devices here):
strong scaling at a fixed size, weak scaling when the sizes grow with the devices.

    python benchmarks/scale.py --sizes 100000,1000000 --steps 100
    python benchmarks/scale.py --sizes 10000000 --models sir-network --repeats 1
    python benchmarks/scale.py --sizes 1000000 --models sir-network --devices 1,2
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from _memory import peak_since, reset_peak, run_worker, status_mb

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


def worker(name: str, n: int, mode: str, steps: int, devices: int, repeats: int) -> dict:
    import equinox as eqx
    import jax

    if devices > 1:
        jax.config.update("jax_num_cpu_devices", devices)
    import agentgrad as ag

    sharding = ag.Sharding(devices) if devices > 1 else None
    model, build_s = build(name, n)
    baseline = reset_peak()  # the simulation's own peak, without graph construction
    params = model.param_space.defaults()
    key = jax.random.key(1)
    rate = RATE[name]

    if sharding is not None:
        model = sharding.prepare(model)  # on the host, once (the arrays are traced below)

    def final_infected(m, p, checkpoint=False):
        obs = ag.simulate(m, p, key, steps, checkpoint=checkpoint, sharding=sharding)
        return obs.observables["infected"][-1]

    # the model is an argument, not a closure: a jit closing over it embeds the graph's
    # arrays in the program as constants (slower compilation, more memory)
    if mode == "forward":
        fn = eqx.filter_jit(final_infected)
    elif mode == "reverse":
        fn = eqx.filter_jit(lambda m, p: jax.grad(lambda q: final_infected(m, q, True))(p))
    else:
        tangent = {k: jax.numpy.zeros_like(v) for k, v in params.items()}
        tangent[rate] = jax.numpy.ones_like(params[rate])
        fn = eqx.filter_jit(
            lambda m, p: jax.jvp(lambda q: final_infected(m, q), (p,), (tangent,))[1]
        )
    jax.block_until_ready(fn(model, params))  # compile
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(model, params))
        times.append(time.perf_counter() - t0)
    return {
        "build_s": build_s,
        "seconds": min(times),
        "peak_mb": status_mb("VmHWM"),
        "sim_mb": peak_since(baseline),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--models", default="sir-network,seirm")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--devices", default="1", help="comma-separated device counts")
    parser.add_argument("--worker", nargs="*")
    args = parser.parse_args()
    if args.worker:
        name, n, mode, steps, devices, repeats = args.worker
        result = worker(name, int(n), mode, int(steps), int(devices), int(repeats))
        print(json.dumps(result))
        return
    sizes = [int(float(s)) for s in args.sizes.split(",")]
    device_counts = [int(d) for d in args.devices.split(",")]
    print(f"{args.steps} steps, mean degree 10; times per step, best of {args.repeats}, compiled")
    print(
        f"{'model':<12} {'agents':>9} {'dev':>3} {'mode':<8} {'build s':>8} {'ms/step':>9} "
        f"{'us/agent-step':>14} {'peak MB':>8} {'sim MB':>7}"
    )
    for name in args.models.split(","):
        per_mode: dict[str, list[float]] = {m: [] for m in MODES}
        for n in sizes:
            for mode in args.modes.split(","):
                for d in device_counts:
                    r = run_worker(__file__, name, n, mode, args.steps, d, args.repeats)
                    per_step = r["seconds"] / args.steps
                    if d == device_counts[0]:
                        per_mode[mode].append(per_step)
                    print(
                        f"{name:<12} {n:>9} {d:>3} {mode:<8} {r['build_s']:>8.2f} "
                        f"{1e3 * per_step:>9.2f} {1e6 * per_step / n:>14.4f} "
                        f"{r['peak_mb']:>8.0f} {r.get('sim_mb', float('nan')):>7.0f}",
                        flush=True,
                    )
        if len(sizes) > 1:
            for mode, ts in per_mode.items():
                if not ts:
                    continue
                slope = np.polyfit(np.log(sizes), np.log(ts), 1)[0]
                print(f"{name:<12} {mode:<8} time ~ agents^{slope:.2f} (log-log fit)")


if __name__ == "__main__":
    main()
