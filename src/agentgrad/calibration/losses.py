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
* ``synthetic`` (the default of :class:`~agentgrad.calibration.GVI`): a *tempered*
  Gaussian synthetic negative log-likelihood that needs no knowledge of the
  observables' scale (see :class:`SyntheticLikelihood`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

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


@dataclass(frozen=True)
class SyntheticLikelihood:
    """Tempered Gaussian synthetic negative log-likelihood (scale-free; Wood 2010).

    For each observable ``k`` the ``n`` runs at ``theta`` give the mean series
    ``mu_kt`` and one noise variance pooled over steps,
    ``s2_k = mean_t var_j(x_jkt) + 1e-6 mean_t(y_kt^2)``; then

        d(theta) = lambda * sum_k sum_t [ (y_kt - mu_kt)^2 / (s2_k (1 + 1/n))
                                          + log(2 pi s2_k) ] / 2.

    Units cancel, so ``w = 1`` in ``E_q[d] + w KL`` is Bayes' rule with this
    likelihood.  The ``T K`` observed points are strongly correlated (an epidemic that
    starts late is late at every step); treating them as independent would make the
    posterior far too narrow.  ``lambda = d_eff / N`` tempers it to the effective number
    of independent observations: ``d_eff`` is the participation ratio
    ``(tr C)^2 / tr(C^2)`` of the correlation matrix ``C`` of the simulator's noise over
    the ``N`` non-constant observed points (:func:`effective_dimension`).  ``temper=None``
    means 1 until :func:`agentgrad.calibration.calibrate` estimates it from pilot runs.
    """

    temper: float | None = None

    def __call__(self, simulated, observed):
        total = jnp.zeros(())
        for name in observed:
            x, y = simulated[name], jnp.asarray(observed[name])
            n = x.shape[0]
            if n < 2:
                raise AgentgradError("the synthetic likelihood needs at least 2 runs per draw")
            mu = jnp.mean(x, axis=0)
            s2 = jnp.mean(jnp.var(x, axis=0, ddof=1)) + 1e-6 * jnp.mean(y**2) + 1e-30
            r2 = (y - mu) ** 2 / (s2 * (1 + 1 / n))
            total = total + 0.5 * jnp.sum(r2 + jnp.log(2 * jnp.pi * s2))
        return (1.0 if self.temper is None else self.temper) * total


def effective_dimension(noise: np.ndarray) -> tuple[float, int]:
    """``(d_eff, N)`` of simulator noise samples ``noise`` (m, points), mean zero.

    ``N`` counts the points whose noise is not identically zero; ``d_eff`` is the
    participation ratio ``(tr C)^2 / tr(C^2)`` of their (uncentred) correlation
    matrix, between 1 and ``min(m, N)``.
    """
    noise = np.asarray(noise, np.float64)
    rms = np.sqrt(np.mean(noise**2, axis=0))
    keep = rms > 1e-12 * max(float(rms.max(initial=0.0)), 1e-300)
    if not keep.any():
        return 1.0, 0
    z = noise[:, keep] / rms[keep]
    m = z.shape[0]
    gram = z @ z.T / m if m < z.shape[1] else z.T @ z / m  # C's non-zero spectrum
    eig = np.linalg.eigvalsh(gram)
    return float(eig.sum() ** 2 / max(np.sum(eig**2), 1e-300)), int(keep.sum())


LOSSES: dict[str, Loss] = {
    "mse": mse,
    "mmd": mmd,
    "gauss": gauss,
    "synthetic": SyntheticLikelihood(),
}


def get_loss(loss: str | Loss) -> Loss:
    """A loss by name (``synthetic``, ``mse``, ``mmd``, ``gauss``) or a user callable."""
    if callable(loss):
        return loss
    if loss not in LOSSES:
        raise AgentgradError(f"unknown loss {loss!r}; use {', '.join(LOSSES)} or a callable")
    return LOSSES[loss]
