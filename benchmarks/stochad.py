"""Benchmark: cost and variance of one StochasticDerivative directional estimate.

SIRNetwork on Erdős–Rényi graphs (mean degree 10), 60 steps, direction d/d beta of
total infections.  Prints, per size: forward simulation time, one StochasticDerivative
estimate (pass (i) jvp + pass (ii) alternative world), one straight-through jvp, their
ratios to the forward time (target for StochasticDerivative: <= 4x), and the standard
deviation over ``--samples`` keys of each estimator's estimates.

    python benchmarks/stochad.py --sizes 10000 100000
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
from _timing import best_time

import agentgrad as ag
from agentgrad.stochad import derivative_estimate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--steps", type=int, default=60)
    args = parser.parse_args()
    print(
        f"jax {jax.__version__} on {jax.devices()[0].platform}; {args.steps} steps, "
        f"d(total infections)/d beta; sd over {args.samples} keys"
    )
    print(
        f"{'agents':>8} {'forward s':>10} {'SAD s':>8} {'SAD/fwd':>8} {'ST jvp s':>9} "
        f"{'ST/fwd':>7} {'SAD sd':>9} {'ST sd':>9} {'SAD mean':>9} {'ST mean':>9}"
    )
    for n in args.sizes:
        measure(n, args.steps, args.samples)


def measure(n: int, n_steps: int, n_samples: int) -> None:
    graph = ag.graphs.erdos_renyi(n, 10, key=jax.random.key(0))
    sad = ag.models.SIRNetwork(graph=graph, estimator=ag.StochasticDerivative())
    st = ag.models.SIRNetwork(graph=graph, estimator=ag.StraightThrough())
    params = st.param_space.defaults()
    direction = {k: jnp.float32(k == "beta") for k in params}

    def total(model, p, k):
        return ag.simulate(model, p, k, n_steps).observables["new_infected"].sum()

    forward = jax.jit(lambda k: total(st, params, k))
    sad_est = jax.jit(
        lambda k: derivative_estimate(lambda p, kk: total(sad, p, kk), params, k, direction)
    )
    st_est = jax.jit(lambda k: jax.jvp(lambda p: total(st, p, k), (params,), (direction,))[1])
    key = jax.random.key(1)
    t_fwd, t_sad, t_st = (best_time(f, key) for f in (forward, sad_est, st_est))
    keys = jax.random.split(jax.random.key(2), n_samples)
    e_sad = np.array([float(sad_est(k)) for k in keys])
    e_st = np.array([float(st_est(k)) for k in keys])
    print(
        f"{n:>8} {t_fwd:>10.3f} {t_sad:>8.3f} {t_sad / t_fwd:>8.2f} {t_st:>9.3f} "
        f"{t_st / t_fwd:>7.2f} {e_sad.std():>9.3f} {e_st.std():>9.3f} "
        f"{e_sad.mean():>9.3f} {e_st.mean():>9.3f}",
        flush=True,
    )


if __name__ == "__main__":
    main()
