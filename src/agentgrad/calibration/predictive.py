"""Posterior-predictive simulation and calibration metrics.

* :func:`posterior_predictive`: simulate the model once at each of ``n`` posterior draws.
* :func:`coverage`: the fraction of observed points inside the central ``level`` band of
  the predictive distribution at each step.
* :func:`nlpd`: negative log predictive density of held-out ground-truth runs under a
  Gaussian KDE of the posterior-predictive series (the selected observables concatenated
  over time), averaged over the held-out runs (`ad-vs-sbi-for-abms` Appendix B).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np

from agentgrad.calibration.problem import simulate_at


def posterior_predictive(
    posterior, key: jax.Array, n: int, n_steps: int, fixed: Mapping[str, Any] | None = None
) -> dict[str, np.ndarray]:
    """Observables (name -> array ``(n, n_steps)``) simulated at ``n`` posterior draws."""
    model = posterior.model
    base = model.param_space.complete(fixed)
    k_theta, k_sim = jax.random.split(key)
    theta = posterior.sample(k_theta, n)
    out = simulate_at(model, base, theta, jax.random.split(k_sim, n), n_steps)
    return {k: np.asarray(v) for k, v in out.items()}


def coverage(
    predictive: Mapping[str, np.ndarray], observed: Mapping[str, Any], level: float = 0.9
) -> float:
    """Fraction of observed points within the central ``level`` predictive band."""
    inside, total = 0, 0
    for name, obs in observed.items():
        lo, hi = np.percentile(predictive[name], [50 * (1 - level), 50 * (1 + level)], axis=0)
        obs = np.asarray(obs)
        inside += int(np.sum((obs >= lo) & (obs <= hi)))
        total += obs.size
    return inside / total


def nlpd(
    predictive: Mapping[str, np.ndarray],
    truth: Mapping[str, np.ndarray],
    names: Sequence[str] | None = None,
) -> float:
    """Mean negative log density of ground-truth runs (name -> (runs, T)) under a KDE."""
    names = list(names or truth)
    x = np.concatenate([predictive[n] for n in names], axis=1).astype(np.float64)
    y = np.concatenate([np.asarray(truth[n]) for n in names], axis=1).astype(np.float64)
    keep = x.std(axis=0) > 0  # constant coordinates carry no density information
    x, y = x[:, keep], y[:, keep]
    from scipy.stats import gaussian_kde  # lazily: scipy.stats is slow to import

    kde = gaussian_kde(x.T)
    return float(-np.mean(kde.logpdf(y.T)))
