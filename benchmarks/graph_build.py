"""Benchmark: time and peak memory to build contact networks (issue 12).

Each (generator, size) runs in a fresh process, so imports and peak memory are its own;
the time excludes ``import agentgrad`` and JAX's backend start but includes the lazy
SciPy import the builders need.  Mean degree 10 everywhere (Barabási–Albert m = 5).
``erdos_renyi[pairs]`` is the Erdős–Rényi method before geometric skips, kept for seeded
graphs; its ratio to ``erdos_renyi`` (skip) is printed.

    python benchmarks/graph_build.py --sizes 1000000,10000000
"""

from __future__ import annotations

import argparse
import json
import time

from _memory import peak_since, reset_peak, run_worker

GENERATORS = ("erdos_renyi", "erdos_renyi[pairs]", "watts_strogatz", "barabasi_albert", "hybrid")


def worker(name: str, n: int) -> dict:
    import jax.numpy as jnp

    import agentgrad as ag
    from agentgrad.models.hybrid_population import hybrid_population

    build = {
        "erdos_renyi": lambda: ag.graphs.erdos_renyi(n, 10, key=0),
        "erdos_renyi[pairs]": lambda: ag.graphs.erdos_renyi(n, 10, key=0, method="pairs"),
        "watts_strogatz": lambda: ag.graphs.watts_strogatz(n, 10, 0.1, key=0),
        "barabasi_albert": lambda: ag.graphs.barabasi_albert(n, 5, key=0),
        "hybrid": lambda: hybrid_population(n, key=0).graph,
    }[name]
    jnp.zeros(1).block_until_ready()  # JAX's backend starts before the clock
    base = reset_peak()
    t0 = time.perf_counter()
    graph = build()
    seconds = time.perf_counter() - t0
    return {
        "seconds": seconds,
        "edges": graph.n_edges,
        "peak_mb": peak_since(base),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000")
    parser.add_argument("--generators", default=",".join(GENERATORS))
    parser.add_argument("--worker", nargs=2, metavar=("NAME", "N"))
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], int(args.worker[1]))))
        return
    names = args.generators.split(",")
    unknown = sorted(set(names) - set(GENERATORS))
    if unknown:
        parser.error(f"unknown generators {unknown}; choose from {', '.join(GENERATORS)}")
    print("| generator | nodes | seconds | undirected edges | peak MB above start |")
    print("|---|---:|---:|---:|---:|")
    for n in map(int, args.sizes.split(",")):
        times = {}
        for name in names:
            row = run_worker(__file__, name, n)
            times[name] = row["seconds"]
            print(
                f"| `{name}` | {n:.0e} | {row['seconds']:.2f} | {row['edges']:,} |"
                f" {row['peak_mb']:,.0f} |",
                flush=True,
            )
        if "erdos_renyi" in times and "erdos_renyi[pairs]" in times:
            ratio = times["erdos_renyi[pairs]"] / times["erdos_renyi"]
            print(f"\nErdős–Rényi at {n:.0e}: pairs / skip = {ratio:.1f}x\n")


if __name__ == "__main__":
    main()
