"""Evaluating a surrogate against its ABM (`graph-diffusion-networks-for-abms` §4.1,
App. C.4-C.5).

**Micro** (:func:`micro_emd`): for every condition ``t`` of a test ramification and
every agent ``i``, the earth mover's distance between the ``R`` outcomes of the ABM and
``R`` outcomes drawn from the surrogate, per marginal the model declares
(``model.marginals(dynamic)``: categorical blocks with unit ground distance, computed by
POT's ``ot.emd2`` on the histograms; ordinal coordinates by
``scipy.stats.wasserstein_distance``).  Reported overall and split by rule type:
agents whose transition is stochastic (``model.stochastic_agents``, stored with the
data; e.g. Alive
predators and prey) and the rest (deterministic rules).

**Macro** (:func:`macro_smape`): ``runs`` free rollouts of ``steps`` steps of the ABM and
of the surrogate from the same state; sMAPE (Eq. 6) between the mean trajectories of each
observable, averaged over observables (Eq. 7).

**AR(1)** (:func:`ar1_forecast`): ``x_t = phi x_{t-1} + eps``, ``eps ~ N(0, sigma^2)``,
fitted by least squares per macro variable on the training series, then simulated
(App. C.5).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from agentgrad.engine import Model, ensemble
from agentgrad.errors import AgentgradError
from agentgrad.metrics import smape
from agentgrad.params import Params
from agentgrad.surrogate.data import Ramifications


def _ot():
    try:
        import ot
    except ImportError:
        raise AgentgradError(
            'surrogate evaluation needs POT: pip install "agentgrad[surrogate]"'
        ) from None
    return ot


def categorical_emd(a: np.ndarray, b: np.ndarray, n_categories: int) -> float:
    """EMD between the empirical laws of integer samples ``a`` and ``b`` over
    ``n_categories`` categories with unit ground distance (POT)."""
    ot = _ot()
    p = np.bincount(a, minlength=n_categories).astype(np.float64)
    q = np.bincount(b, minlength=n_categories).astype(np.float64)
    cost = 1.0 - np.eye(n_categories)
    return float(ot.emd2(p / p.sum(), q / q.sum(), cost))


def ordinal_emd(a: np.ndarray, b: np.ndarray) -> float:
    """1-D Wasserstein distance between two samples (scipy)."""
    from scipy.stats import wasserstein_distance

    return float(wasserstein_distance(a, b))


def micro_emd(model: Any, network: Any, test: Ramifications, key: jax.Array) -> dict[str, float]:
    """Mean EMD over agents and conditions, per marginal and by rule type
    (``test.stochastic``); the surrogate draws ``test.n_branches`` outcomes per
    condition (given the condition's ``test.theta`` for a parameter-conditioned one)."""
    sample = eqx.filter_jit(
        eqx.filter_vmap(
            lambda z, a, d, k, th: network.sample(z, a, d, k, th),
            in_axes=(None, None, None, 0, None),
        )
    )
    rows: dict[str, list[float]] = {"stochastic": [], "deterministic": []}
    per_marginal: dict[str, list[float]] = {}
    for t in range(test.n_transitions):
        z, agg, deg = (jnp.asarray(x[t]) for x in (test.context, test.aggregated, test.degree))
        theta = None if test.theta is None else jnp.asarray(test.theta[t])
        keys = jax.random.split(jax.random.fold_in(key, t), test.n_branches)
        draws = np.asarray(sample(z, agg, deg, keys, theta))
        true = model.marginals(test.targets[t])  # name -> (values (R, N), n_categories)
        fake = model.marginals(draws)
        stochastic = test.stochastic[t]
        for i in range(z.shape[0]):
            total = 0.0
            for name, (values, n_cat) in true.items():
                a, b = values[:, i], fake[name][0][:, i]
                d = categorical_emd(a, b, n_cat) if n_cat else ordinal_emd(a, b)
                per_marginal.setdefault(name, []).append(d)
                total += d
            rows["stochastic" if stochastic[i] else "deterministic"].append(total)
    out = {f"emd_{k}": float(np.mean(v)) for k, v in per_marginal.items()}
    out["emd"] = float(np.mean(rows["stochastic"] + rows["deterministic"]))
    for k, v in rows.items():
        out[f"emd_{k}"] = float(np.mean(v)) if v else float("nan")
    return out


class FromState(Model):
    """``base`` started from a given ``state`` (for rollouts from the last training
    state)."""

    base: Model
    state: Any

    @property
    def param_space(self):
        return self.base.param_space

    def init(self, params: Params, key: jax.Array) -> Any:
        return self.state

    def step(self, state: Any, params: Params, key: jax.Array, t: jax.Array) -> Any:
        return self.base.step(state, params, key, t)

    def observe(self, state: Any, params: Params, t: jax.Array) -> dict[str, jax.Array]:
        return self.base.observe(state, params, t)


def macro_smape(
    model: Any,
    surrogate: Any,
    params: Params,
    key: jax.Array,
    steps: int = 25,
    runs: int = 100,
    observables: Sequence[str] | None = None,
) -> tuple[float, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """sMAPE (Eq. 6-7) of the mean of ``runs`` rollouts; returns ``(smape, abm, sur)``
    with the run-by-step series of each observable.  ``model`` and ``surrogate`` must
    start from the same state (e.g. ``GDNSurrogate(base, net, initial_state=s)`` and a
    model whose ``init`` returns ``s``)."""
    k_abm, k_sur = jax.random.split(key)
    abm = ensemble(model, params, k_abm, steps, runs).observables
    sur = ensemble(surrogate, params, k_sur, steps, runs).observables
    names = list(observables or abm)
    unknown = [n for n in names if n not in abm]
    if unknown:
        raise AgentgradError(f"unknown observables {unknown}; the model has {sorted(abm)}")
    abm = {n: np.asarray(abm[n]) for n in names}
    sur = {n: np.asarray(sur[n]) for n in names}
    error = float(np.mean([smape(abm[n].mean(0), sur[n].mean(0)) for n in names]))
    return error, abm, sur


def ar1_forecast(series: np.ndarray, steps: int, runs: int, key: jax.Array) -> np.ndarray:
    """AR(1) without intercept fitted by least squares to ``series`` (1-D) and simulated
    ``runs`` times for ``steps`` steps from its last value; ``(runs, steps)``."""
    x = np.asarray(series, np.float64)
    if x.ndim != 1 or x.size < 3:
        raise AgentgradError("AR(1) needs a 1-D training series of at least 3 points")
    prev, nxt = x[:-1], x[1:]
    phi = float(prev @ nxt / max(prev @ prev, 1e-12))
    sigma = float(np.std(nxt - phi * prev, ddof=1))
    eps = sigma * np.asarray(jax.random.normal(key, (runs, steps)))
    out = np.empty((runs, steps))
    level = np.full(runs, x[-1])
    for t in range(steps):  # a loop over forecast steps of a scalar series, not agents
        level = phi * level + eps[:, t]
        out[:, t] = level
    return out
