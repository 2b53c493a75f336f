"""Losses between simulated and observed observables (`automatic-differentiation-of-abms` §6.1).

Each loss takes ``simulated``: name -> array (n_sims, T) from ``n_sims`` runs at one
parameter value, and ``observed``: name -> array (T,), and returns a scalar.  The
selected observables are concatenated along time.

* ``mse``:  mean over runs and steps of the squared error.
* ``mmd``:  squared maximum mean discrepancy with a Gaussian kernel between the
  simulated series and the observed one (whole series as vectors), bandwidth by the
  median heuristic on the pooled pairwise distances, computed without gradients
  (§10.2.2); needs ``n_sims >= 2``.
* ``gauss``: Gaussian synthetic negative log-likelihood, per step mean and variance
  estimated from the runs (variance floored at ``1e-8``); needs ``n_sims >= 2``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp

from agentgrad.errors import AgentgradError

Loss = Callable[[Mapping[str, jax.Array], Mapping[str, jax.Array]], jax.Array]


def _stack(simulated, observed):
    names = list(observed)
    x = jnp.concatenate([simulated[n] for n in names], axis=-1)
    y = jnp.concatenate([jnp.asarray(observed[n]) for n in names], axis=-1)
    return x, y


def mse(simulated, observed):
    x, y = _stack(simulated, observed)
    return jnp.mean((x - y) ** 2)


def mmd(simulated, observed):
    x, y = _stack(simulated, observed)
    if x.shape[0] < 2:
        raise AgentgradError("the MMD loss needs at least 2 simulator runs per parameter value")
    pooled = jnp.concatenate([x, y[None]], axis=0)
    d2 = jnp.sum((pooled[:, None] - pooled[None]) ** 2, axis=-1)
    m = pooled.shape[0]
    off = jnp.where(jnp.eye(m, dtype=bool), jnp.nan, d2)
    bandwidth = jax.lax.stop_gradient(jnp.maximum(jnp.nanmedian(off), 1e-12))
    k = jnp.exp(-d2 / bandwidth)
    n = x.shape[0]
    kxx = (jnp.sum(k[:n, :n]) - jnp.trace(k[:n, :n])) / (n * (n - 1))
    kxy = jnp.mean(k[:n, n])
    return kxx - 2 * kxy + 1.0


def gauss(simulated, observed):
    x, y = _stack(simulated, observed)
    if x.shape[0] < 2:
        raise AgentgradError("the Gaussian synthetic likelihood needs at least 2 runs")
    mean = jnp.mean(x, axis=0)
    var = jnp.maximum(jnp.var(x, axis=0, ddof=1), 1e-8)
    return 0.5 * jnp.sum((y - mean) ** 2 / var + jnp.log(2 * jnp.pi * var))


LOSSES: dict[str, Loss] = {"mse": mse, "mmd": mmd, "gauss": gauss}


def get_loss(loss: str | Loss) -> Loss:
    """A loss by name (``mse``, ``mmd``, ``gauss``) or a user callable."""
    if callable(loss):
        return loss
    if loss not in LOSSES:
        raise AgentgradError(f"unknown loss {loss!r}; use {', '.join(LOSSES)} or a callable")
    return LOSSES[loss]
