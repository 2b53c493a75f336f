"""Benchmark: SIRNetwork on Erdős–Rényi graphs (mean degree 10), 60 steps.

For each size, prints side by side: a plain-NumPy reference implementation of the
same model, the JAX forward simulation, a full reverse-mode gradient (all 9
parameters), and a full forward-mode Jacobian (``jacfwd``, 9 tangent directions),
with wall time (best of ``--repeats`` after compilation) and peak resident memory
above the process's memory before the first call (compilation included), read from
Linux's VmHWM after resetting it.  Each measurement runs in a fresh subprocess so peak
memory is per configuration.

    python benchmarks/sir_network.py --sizes 10000 100000 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import numpy as np
from _memory import peak_since, reset_peak, run_worker

MODES = ("numpy", "forward", "reverse", "jacfwd")
N_STEPS = 60


def numpy_reference(senders, receivers, degree, params, n_steps, seed):
    """The SIRNetwork dynamics in plain NumPy (hard gates, no gradients)."""
    rng = np.random.default_rng(seed)
    n = degree.shape[0]
    inv_deg = 1.0 / np.maximum(degree, 1.0)
    infected = rng.random(n) < params["initial_infected"]
    susceptible, recovered = ~infected, np.zeros(n, bool)
    p_recover = -np.expm1(-params["gamma"])
    new_infected = np.empty(n_steps)
    for t in range(n_steps):
        quarantine = params["quarantine_start"] <= t < params["quarantine_end"]
        distancing = params["distancing_start"] <= t < params["distancing_end"]
        complies = rng.random(n) < params["quarantine_compliance"]
        infectious = infected & ~(quarantine & complies)
        beta = params["beta"] * (params["distancing_factor"] if distancing else 1.0)
        pressure = np.bincount(receivers, weights=infectious[senders], minlength=n) * inv_deg
        infections = susceptible & (rng.random(n) < -np.expm1(-beta * pressure))
        recoveries = infected & (rng.random(n) < p_recover)
        susceptible &= ~infections
        infected = (infected | infections) & ~recoveries
        recovered |= recoveries
        new_infected[t] = infections.mean()
    return new_infected


def worker(graph_file: str, mode: str, repeats: int) -> dict:
    import jax

    import agentgrad as ag
    from agentgrad.models.sir_network import SIR_NETWORK_PARAMS

    data = np.load(graph_file)
    senders, receivers, degree = data["senders"], data["receivers"], data["degree"]
    if mode == "numpy":
        defaults = {k: float(v) for k, v in SIR_NETWORK_PARAMS.defaults().items()}
        fn = lambda: numpy_reference(senders, receivers, degree, defaults, N_STEPS, 0)  # noqa: E731
        compile_s = 0.0
        baseline = reset_peak()
    else:
        graph = ag.Graph(
            jax.numpy.asarray(senders),
            jax.numpy.asarray(receivers),
            jax.numpy.asarray(degree),
            int(degree.shape[0]),
        )
        model = ag.models.SIRNetwork(graph=graph)
        params = model.param_space.defaults()
        key = jax.random.key(0)

        def total(p):
            return ag.simulate(model, p, key, N_STEPS).observables["new_infected"].sum()

        if mode == "forward":
            run = jax.jit(lambda p: ag.simulate(model, p, key, N_STEPS).observables)
        elif mode == "reverse":
            run = jax.jit(jax.grad(total))
        else:
            run = jax.jit(jax.jacfwd(total))
        fn = lambda: jax.block_until_ready(run(params))  # noqa: E731
        baseline = reset_peak()
        t0 = time.perf_counter()
        fn()
        compile_s = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return {
        "mode": mode,
        "time_s": min(times),
        "compile_s": compile_s,
        "peak_mb": peak_since(baseline),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--worker", nargs=2, metavar=("GRAPH_NPZ", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], args.worker[1], args.repeats)))
        return

    import jax

    import agentgrad as ag

    print(
        f"jax {jax.__version__} on {jax.devices()[0].platform}, {os.cpu_count()} cpu cores, "
        f"{N_STEPS} steps, Erdős–Rényi mean degree 10"
    )
    header = (
        f"{'agents':>9} {'numpy s':>9} {'fwd s':>8} {'numpy/fwd':>9} {'rev s':>8} "
        f"{'rev/fwd':>7} {'jacfwd s':>8} {'jf/fwd':>7}   peak MB (np/fwd/rev/jf)"
    )
    print(header)
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            graph = ag.graphs.erdos_renyi(n, 10, key=jax.random.key(n))
            path = os.path.join(tmp, f"g{n}.npz")
            np.savez(
                path,
                senders=np.asarray(graph.senders),
                receivers=np.asarray(graph.receivers),
                degree=np.asarray(graph.degree),
            )
            r = {}
            for mode in MODES:
                r[mode] = run_worker(__file__, path, mode, "--repeats", args.repeats)
            t = {m: r[m]["time_s"] for m in MODES}
            mem = "/".join(f"{r[m]['peak_mb']:.0f}" for m in MODES)
            print(
                f"{n:>9} {t['numpy']:>9.3f} {t['forward']:>8.3f} "
                f"{t['numpy'] / t['forward']:>9.2f} {t['reverse']:>8.3f} "
                f"{t['reverse'] / t['forward']:>7.2f} {t['jacfwd']:>8.3f} "
                f"{t['jacfwd'] / t['forward']:>7.2f}   {mem}",
                flush=True,
            )


if __name__ == "__main__":
    main()
