"""Mean-field SIR references for validating the network model (§9).

* :func:`sir_ode` integrates ``dS/dt = -beta S I``, ``dI/dt = beta S I - gamma I``,
  ``dR/dt = gamma I`` (fractions of N, §9 eqs. 66-68) with RK4 and reports the values
  at integer multiples of ``dt`` and the flows ``S(t) - S(t + dt)`` ("new infections").
* :func:`sir_mean_field` iterates the ABM's own expected one-step map on the complete
  graph in the limit N -> infinity:
  ``new_inf = S (1 - exp(-beta I dt))``, ``new_rec = I (1 - exp(-gamma dt))``,
  which is what an ensemble of ``SIRNetwork`` on :func:`complete` converges to; it
  differs from the ODE by an O(dt) discretisation error.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _observables(ys: jax.Array, new_inf: jax.Array, new_rec: jax.Array) -> dict[str, jax.Array]:
    return {
        "new_infected": new_inf,
        "new_recovered": new_rec,
        "susceptible": ys[:, 0],
        "infected": ys[:, 1],
        "recovered": ys[:, 2],
    }


def sir_ode(
    beta: float,
    gamma: float,
    initial_infected: float,
    n_steps: int,
    dt: float = 1.0,
    substeps: int = 50,
) -> dict[str, jax.Array]:
    """RK4 solution of the SIR ODE sampled every ``dt``; arrays of shape ``(n_steps,)``."""
    h = dt / substeps

    def f(y):
        s, i, _ = y
        return jnp.stack([-beta * s * i, beta * s * i - gamma * i, gamma * i])

    def rk4(y, _):
        k1 = f(y)
        k2 = f(y + 0.5 * h * k1)
        k3 = f(y + 0.5 * h * k2)
        k4 = f(y + h * k3)
        return y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4), None

    def one_step(y, _):
        y_new, _ = jax.lax.scan(rk4, y, None, length=substeps)
        return y_new, (y_new, y[0] - y_new[0], y_new[2] - y[2])

    y0 = jnp.asarray([1.0 - initial_infected, initial_infected, 0.0], jnp.float32)
    _, (ys, new_inf, new_rec) = jax.lax.scan(one_step, y0, None, length=n_steps)
    return _observables(ys, new_inf, new_rec)


def sir_mean_field(
    beta: float, gamma: float, initial_infected: float, n_steps: int, dt: float = 1.0
) -> dict[str, jax.Array]:
    """The ABM's expected one-step map on the complete graph, iterated (N -> infinity)."""

    def one_step(y, _):
        s, i, r = y
        new_inf = s * -jnp.expm1(-beta * i * dt)
        new_rec = i * -jnp.expm1(-gamma * dt)
        y_new = jnp.stack([s - new_inf, i + new_inf - new_rec, r + new_rec])
        return y_new, (y_new, new_inf, new_rec)

    y0 = jnp.asarray([1.0 - initial_infected, initial_infected, 0.0], jnp.float32)
    _, (ys, new_inf, new_rec) = jax.lax.scan(one_step, y0, None, length=n_steps)
    return _observables(ys, new_inf, new_rec)
