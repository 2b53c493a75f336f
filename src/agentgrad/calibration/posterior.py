"""The posterior every calibration method returns, and its diagnostics.

:class:`CalibratedPosterior` is the common interface: ``sample``, ``log_prob`` (where
the method has a density), ``predictive`` (posterior-predictive runs), ArviZ
``InferenceData`` with ``posterior``, ``posterior_predictive`` and ``observed_data``
groups, and :func:`diagnose`:

* contraction ``1 - sd_post / sd_prior`` per parameter (sds in the constrained space,
  by sampling); below 10% the data did not inform the parameter.  Variational
  families start narrower than the prior, so GVI also records the sds its optimiser
  reaches in the same number of epochs with no data (``history["reference_sd"]``); a
  posterior less than 10% narrower than that reference is reported the same way;
* whether the method's objective converged and whether any step was non-finite.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import numpy as np

from agentgrad.errors import AgentgradError
from agentgrad.params import ParamSpace

UNINFORMED = 0.1  # contraction below which a parameter is reported as not informed


class CalibratedPosterior:
    """Common interface of the posteriors of every calibration method."""

    model: Any
    names: list[str]
    history: dict[str, Any]
    space: ParamSpace | None
    diagnostics: dict[str, Any]

    @property
    def param_space(self) -> ParamSpace:
        return self.space if self.space is not None else self.model.param_space

    def sample(self, key: jax.Array, n: int) -> dict[str, jax.Array]:
        """``n`` posterior draws, name -> array (n,)."""
        raise NotImplementedError

    def log_prob(self, theta: Mapping[str, jax.Array]) -> jax.Array:
        """Posterior log-density of ``theta`` (name -> array)."""
        raise AgentgradError(f"{type(self).__name__} has no density (log_prob)")

    def predictive(
        self, key: jax.Array, n: int, n_steps: int, fixed: Mapping[str, Any] | None = None
    ) -> dict[str, np.ndarray]:
        """Observables (name -> (n, n_steps)) of one run at each of ``n`` draws."""
        from agentgrad.calibration.predictive import posterior_predictive

        return posterior_predictive(self, key, n, n_steps, fixed)

    def to_inference_data(
        self,
        key: jax.Array,
        n: int = 1000,
        observed: Mapping[str, Any] | None = None,
        predictive: Mapping[str, np.ndarray] | None = None,
    ):
        """ArviZ ``InferenceData``: ``n`` posterior draws (one chain) and, when given,
        ``posterior_predictive`` (name -> (draws, T)) and ``observed_data``."""
        import arviz as az

        samples = self.sample(key, n)
        groups: dict[str, Any] = {"posterior": {k: np.asarray(v)[None] for k, v in samples.items()}}
        dims: dict[str, list[str]] = {}
        if predictive is not None:
            groups["posterior_predictive"] = {k: np.asarray(v)[None] for k, v in predictive.items()}
            dims.update({k: ["time"] for k in predictive})
        if observed is not None:
            groups["observed_data"] = {k: np.asarray(v) for k, v in observed.items()}
            dims.update({k: ["time"] for k in observed})
        return az.from_dict(**groups, dims=dims or None)


def prior_sd(space: ParamSpace, names: list[str], key: jax.Array, n: int = 20_000):
    """Prior standard deviation of each name, by sampling."""
    from agentgrad.calibration.problem import sample_priors

    return {k: float(np.std(np.asarray(v))) for k, v in sample_priors(space, names, key, n).items()}


def diagnose(posterior: CalibratedPosterior, key: jax.Array, n: int = 4000) -> dict[str, Any]:
    """Contraction per parameter and warnings (stored in ``posterior.diagnostics``)."""
    k_prior, k_post = jax.random.split(key)
    names = posterior.names
    before = prior_sd(posterior.param_space, names, k_prior)
    draws = posterior.sample(k_post, n)
    ratio = {
        name: float(np.std(np.asarray(draws[name]))) / max(before[name], 1e-300) for name in names
    }
    reference = posterior.history.get("reference_sd") or {}
    vs_reference = {
        name: float(np.std(np.asarray(draws[name]))) / max(reference[name], 1e-300)
        for name in names
        if name in reference
    }
    warnings = []
    for name, r in ratio.items():
        r_ref = vs_reference.get(name, 0.0)
        if 1 - r < UNINFORMED or 1 - r_ref < UNINFORMED:
            what = f"{r:.0%} of the prior's" + (
                f" and {r_ref:.0%} of what the optimiser reaches with no data"
                if name in vs_reference
                else ""
            )
            warnings.append(
                f"the data did not inform {name}: its posterior sd is {what}; calibrate "
                f"{name} from an observable it affects, or fix it (--param {name}=VALUE)"
            )
    history = posterior.history
    if history.get("converged") is False:
        warnings.append(
            "training did not converge (objective or posterior sds still moving) in "
            f"{len(history.get('validation', []))} epochs; "
            "give a larger --budget (or --epochs) or a larger --learning-rate"
        )
    spikes = history.get("spike_epochs", [0])[0]
    if spikes:
        warnings.append(
            f"{spikes} epochs had an objective far above the recent ones (a rare draw); "
            "their updates were skipped"
        )
    bad = history.get("non_finite_epochs", [0])[0]
    if bad:
        warnings.append(
            f"{bad} epochs had a NaN or infinite objective or gradient (their updates "
            "were skipped); a smaller --learning-rate or the pathwise gradient may help"
        )
    result = {
        "sd_ratio": ratio,
        "contraction": {k: 1 - r for k, r in ratio.items()},
        "contraction_vs_no_data": {k: 1 - r for k, r in vs_reference.items()},
        "converged": history.get("converged"),
        "simulations": history.get("simulations"),
        "warnings": warnings,
    }
    posterior.diagnostics = result
    return result
