"""Benchmark: ``agentgrad.rng`` against ``jax.random`` (issue 12), and the SIR step.

Part 1: ms to draw ``n`` 32-bit random words with ``jax.random.bits`` (JAX lowers its
Threefry rounds as a rolled loop on CPU) and with ``agentgrad.rng.random_bits`` (the
same bits, rounds unrolled), then ``n`` standard normals with ``jax.random.normal``
and ``agentgrad.rng.normal`` (the same numbers); jitted, best of 10.  Part 2: one
``SIRNetwork`` step inside ``simulate`` (Erdős–Rényi, mean degree 10, 100 steps, best
of 3).  Run pinned to one core for the numbers in docs/benchmarks.md::

    taskset -c 0 python benchmarks/rng.py --sizes 10000,100000,1000000,3000000
"""

from __future__ import annotations

import argparse


def best_ms(fn, *args, repeats: int = 10) -> float:
    """Best of ``repeats`` calls in ms, after a compiling call (:func:`_timing.best_time`)."""
    from _timing import best_time

    return 1e3 * best_time(fn, *args, repeats=repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000,3000000")
    parser.add_argument("--agents", default="100000,1000000", help="SIR step sizes")
    args = parser.parse_args()

    import equinox as eqx
    import jax

    import agentgrad as ag

    key = jax.random.key(7)
    pairs = {"bits": (jax.random.bits, ag.rng.random_bits),
             "normal": (jax.random.normal, ag.rng.normal)}  # fmt: skip
    for name, (jax_draw, our_draw) in pairs.items():
        head = f"jax.random.{name} ms"
        print(f"{'n':>9} {head:>21} {'agentgrad.rng ms':>17} {'ratio':>6}")
        for n in map(int, args.sizes.split(",")):
            ours = best_ms(jax.jit(lambda k, n=n, f=our_draw: f(k, (n,))), key)
            theirs = best_ms(jax.jit(lambda k, n=n, f=jax_draw: f(k, (n,))), key)
            print(f"{n:>9} {theirs:>21.2f} {ours:>17.2f} {theirs / ours:>6.1f}")
        print()

    run = eqx.filter_jit(lambda m, p, k: ag.simulate(m, p, k, 100).observables)
    print(f"{'agents':>9} {'SIRNetwork step ms':>19}")
    for n in map(int, args.agents.split(",")):
        model = ag.models.SIRNetwork(graph=ag.graphs.erdos_renyi(n, 10.0, key=jax.random.key(0)))
        params = model.param_space.defaults()
        print(f"{n:>9} {best_ms(run, model, params, key, repeats=3) / 100:>19.2f}")


if __name__ == "__main__":
    main()
