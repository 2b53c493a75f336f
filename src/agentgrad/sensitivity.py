"""One-shot local sensitivity analysis: Jacobians of observables over time.

`automatic-differentiation-of-abms` §5.4 ("Don't simulate twice"): the Jacobian
``J[p, t] = d E[y_t] / d θ_p`` of one observable at every step, for every parameter,
comes from ``R`` differentiated runs instead of the ``2 P R`` runs of one-at-a-time
finite differences.

* ``mode="forward"`` (``jacfwd``): one tangent per parameter; memory independent of the
  number of steps.
* ``mode="reverse"`` (``jacrev``): one cotangent per output step; memory grows with the
  number of steps (use ``checkpoint=True`` for sqrt-blocked rematerialisation).
* ``mode="auto"``: forward when ``P <= T`` (fewer parameters than outputs), else reverse.

The elasticity ``E[p, t] = θ_p / E[y_t] * J[p, t]`` (0 where ``E[y_t] = 0``) makes
parameters comparable; parameters are ranked by the mean of ``|E[p, t]|`` over steps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import jax
import numpy as np
import xarray as xr

from agentgrad.engine import Model, ensemble, warn_if_unvalidated
from agentgrad.errors import AgentgradError
from agentgrad.gradients import finite_differences, per_run_jacobians, select_parameters

SensitivityMode = Literal["auto", "forward", "reverse"]


def choose_mode(n_parameters: int, n_outputs: int, mode: SensitivityMode = "auto") -> str:
    """Resolve ``"auto"``: forward mode when ``n_parameters <= n_outputs``."""
    if mode not in ("auto", "forward", "reverse"):
        raise AgentgradError(f"mode must be auto, forward or reverse, got {mode!r}")
    if mode != "auto":
        return mode
    return "forward" if n_parameters <= n_outputs else "reverse"


def sensitivity(
    model: Model,
    params: Mapping[str, Any] | None,
    key: jax.Array,
    n_steps: int,
    n_runs: int,
    observable: str,
    *,
    parameters: Sequence[str] | None = None,
    mode: SensitivityMode = "auto",
    checkpoint: bool = False,
    compare_fd: bool = False,
    rel_step: float = 0.05,
    batch: int = 8,
) -> xr.Dataset:
    """Jacobian of ``observable`` over time w.r.t. every (selected) parameter.

    Returns a dataset with dimensions ``(parameter, step)``: ``jacobian`` and
    ``jacobian_se`` (mean and standard error over runs), ``elasticity``, ``value``
    (the ensemble mean of the observable, per step), ``rank`` (1 = most sensitive) and,
    with ``compare_fd=True``, ``fd_jacobian`` / ``fd_jacobian_se`` from one-at-a-time
    central finite differences with common random numbers.  Attributes record the mode
    and the number of simulations each method used.  Warns
    (:class:`~agentgrad.engine.GradientValidityWarning`) when the model's gradients are
    not validated for its estimator or for ``n_steps``.
    """
    warn_if_unvalidated(model, n_steps)
    space = model.param_space
    names = select_parameters(space, parameters)
    resolved = choose_mode(len(names), n_steps, mode)
    base = space.complete(params)
    per_run = per_run_jacobians(
        model,
        base,
        key,
        n_steps,
        n_runs,
        observable,
        parameters=names,
        mode=resolved,
        checkpoint=checkpoint,
        batch=batch,
    )
    keys = jax.random.split(key, n_runs)
    value = np.asarray(ensemble(model, base, keys, n_steps).observables[observable]).mean(0)
    jac = np.stack([per_run[n].mean(0) for n in names])
    se = np.stack(
        [
            per_run[n].std(0, ddof=1) / np.sqrt(n_runs) if n_runs > 1 else np.zeros(n_steps)
            for n in names
        ]
    )
    theta = np.array([float(base[n]) for n in names])[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        elasticity = np.where(value != 0, theta * jac / value, 0.0)
    score = np.abs(elasticity).mean(axis=1)
    rank = np.empty(len(names), int)
    rank[np.argsort(-score, kind="stable")] = np.arange(1, len(names) + 1)
    ds = xr.Dataset(
        {
            "jacobian": (("parameter", "step"), jac),
            "jacobian_se": (("parameter", "step"), se),
            "elasticity": (("parameter", "step"), elasticity),
            "mean_abs_elasticity": (("parameter",), score),
            "rank": (("parameter",), rank),
            "value": (("step",), value),
            "parameter_value": (("parameter",), theta[:, 0]),
        },
        coords={"parameter": names, "step": np.arange(1, n_steps + 1)},
        attrs={
            "observable": observable,
            "mode": resolved,
            "n_runs": n_runs,
            "ad_simulations": n_runs,
            "fd_simulations": 2 * len(names) * n_runs,
        },
    )
    if compare_fd:
        fd = finite_differences(
            model, base, key, n_steps, n_runs, observable, parameters=names, rel_step=rel_step
        )
        ds["fd_jacobian"] = (("parameter", "step"), np.stack([fd.mean[n] for n in names]))
        ds["fd_jacobian_se"] = (("parameter", "step"), np.stack([fd.se[n] for n in names]))
    return ds


def ranking(ds: xr.Dataset) -> list[tuple[str, float]]:
    """Parameters sorted by mean absolute elasticity (most sensitive first)."""
    order = np.argsort(ds["rank"].values)
    return [
        (str(ds["parameter"].values[i]), float(ds["mean_abs_elasticity"].values[i])) for i in order
    ]
