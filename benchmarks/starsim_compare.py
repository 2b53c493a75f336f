"""Benchmark: agentgrad's SIRNetwork against starsim's SIR on a static random network.

Same work on both sides: N agents, a static random contact network of mean degree 10,
100 daily steps of an SIR epidemic with R0 about 5 (starsim: ``ss.SIR(beta=0.05,
dur_inf=10, init_prev=0.005)`` on ``ss.RandomNet(n_contacts=10, dynamic=False)``;
agentgrad: ``SIRNetwork`` on an Erdős–Rényi graph, beta = 0.05 x 10 contacts = 0.5,
gamma = 0.1, initial_infected = 0.005, no quarantine or distancing).  The two rules
differ in detail (starsim draws each contact's transmission, agentgrad a per-agent
force of infection; starsim's infectious period is log-normal with mean 10 days,
agentgrad's geometric), so the final attack rates are printed beside the times.

Every run is a fresh process; systems are interleaved (agentgrad, starsim, agentgrad,
...) ``--repeats`` times; ``--cores 1`` pins both to one core with ``taskset``.
Columns: network construction (agentgrad: graph; starsim: ``sim.init()``), agentgrad's
compilation, the 100-step run, and the time to first result (build + compile + run,
imports excluded).  Ratios are starsim time / agentgrad time (> 1: agentgrad faster).

starsim lives in its own environment (it pins other numpy/numba versions)::

    python -m venv /tmp/ssenv && /tmp/ssenv/bin/pip install starsim
    python benchmarks/starsim_compare.py --starsim-python /tmp/ssenv/bin/python \\
        --sizes 10000,100000,1000000 --cores 1,2 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np

STEPS = 100


def agentgrad_worker(n: int) -> dict:
    import equinox as eqx
    import jax

    import agentgrad as ag

    t0 = time.perf_counter()
    graph = ag.graphs.erdos_renyi(n, 10.0, key=jax.random.key(0))
    model = ag.models.SIRNetwork(graph=graph)
    params = {
        "beta": 0.5,
        "gamma": 0.1,
        "initial_infected": 0.005,
        "quarantine_compliance": 0.0,
        "distancing_factor": 1.0,
    }
    params = model.param_space.complete(params)  # arrays: traced, not compile-time constants
    t1 = time.perf_counter()
    key = jax.random.key(1)
    # the model is an argument: a jit closing over it would embed the graph's arrays in
    # the program as constants (compilation at 10^6 agents: 2.3 s instead of 0.8 s)
    run = eqx.filter_jit(lambda m, p, k: ag.simulate(m, p, k, STEPS).observables)
    compiled = run.lower(model, params, key).compile()
    t2 = time.perf_counter()
    obs = jax.block_until_ready(compiled(model, params, key))
    t3 = time.perf_counter()
    attack = float(obs["recovered"][-1] + obs["infected"][-1])
    return {"build": t1 - t0, "compile": t2 - t1, "run": t3 - t2, "attack": attack}


def starsim_worker(n: int) -> dict:
    import starsim as ss

    t0 = time.perf_counter()
    sim = ss.Sim(
        n_agents=n,
        start=0,
        stop=STEPS,
        dt=1,
        networks=ss.RandomNet(n_contacts=10, dynamic=False),
        diseases=ss.SIR(beta=0.05, init_prev=0.005, dur_inf=10),
        demographics=False,
        verbose=0,
        rand_seed=1,
    )
    sim.init()
    t1 = time.perf_counter()
    sim.run()
    t2 = time.perf_counter()
    res = sim.results.sir
    attack = float((res.n_recovered[-1] + res.n_infected[-1]) / n)
    return {"build": t1 - t0, "compile": 0.0, "run": t2 - t1, "attack": attack}


def run_worker(python: str, system: str, n: int, cores: int) -> dict:
    cmd = [python, os.path.abspath(__file__), "--worker", system, str(n)]
    if cores == 1:
        cmd = ["taskset", "-c", "0", *cmd]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"{system} worker failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starsim-python", default=shutil.which("python"))
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--cores", default="1,2")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--worker", nargs=2)
    args = parser.parse_args()
    if args.worker:
        system, n = args.worker
        result = (agentgrad_worker if system == "agentgrad" else starsim_worker)(int(n))
        print(json.dumps(result))
        return
    if shutil.which("taskset") is None and "1" in args.cores.split(","):
        sys.exit("--cores 1 needs taskset (util-linux)")
    print(f"SIR, static random network (mean degree 10), {STEPS} steps; seconds")
    print(
        f"{'agents':>9} {'cores':>5} {'system':<9} {'build':>7} {'compile':>7} {'run':>7} "
        f"{'first':>7} {'attack':>6}"
    )
    summary = []
    for n in [int(float(s)) for s in args.sizes.split(",")]:
        for cores in [int(c) for c in args.cores.split(",")]:
            runs: dict[str, list[dict]] = {"agentgrad": [], "starsim": []}
            for _ in range(args.repeats):
                for system, python in (
                    ("agentgrad", sys.executable),
                    ("starsim", args.starsim_python),
                ):
                    r = run_worker(python, system, n, cores)
                    r["first"] = r["build"] + r["compile"] + r["run"]
                    runs[system].append(r)
                    print(
                        f"{n:>9} {cores:>5} {system:<9} {r['build']:>7.2f} "
                        f"{r['compile']:>7.2f} {r['run']:>7.2f} {r['first']:>7.2f} "
                        f"{r['attack']:>6.3f}",
                        flush=True,
                    )
            pairs = list(zip(runs["agentgrad"], runs["starsim"], strict=True))
            summary.append(
                (n, cores, *([s[c] / a[c] for a, s in pairs] for c in ("run", "first", "build")))
            )
    print("\nratios starsim / agentgrad (median [min, max] over interleaved pairs)")
    print(f"{'agents':>9} {'cores':>5} {'run':>22} {'first result':>22} {'build':>22}")
    for n, cores, ratio, first, build in summary:
        cells = [f"{np.median(x):.2f} [{min(x):.2f}, {max(x):.2f}]" for x in (ratio, first, build)]
        print(f"{n:>9} {cores:>5} {cells[0]:>22} {cells[1]:>22} {cells[2]:>22}")


if __name__ == "__main__":
    main()
