"""Finite differences with common random numbers, AD gradients, and their comparison.

Every gradient here is of the ensemble mean of one scalar observable ``y_t`` at every
step ``t`` (`automatic-differentiation-of-abms` §5, eq. 55):
``d/dθ E[y_t(θ)]``, estimated from ``R`` runs with keys ``split(key, R)``.

* :func:`finite_differences` — central differences (eq. 56) with common random numbers:
  run ``r`` uses the same key at ``θ + h`` and ``θ - h``, so the per-run differences
  ``(y_t(θ+h) - y_t(θ-h)) / 2h`` are strongly correlated noise-wise and their mean has a
  small standard error.  A parameter within ``h`` of a bound uses a one-sided difference.
  The default step is the parameter's ``fd_step`` if it declares one (e.g. one day
  for policy times: hard gates move in whole steps), else ``h = rel_step * |θ|``
  (or ``rel_step * (upper - lower)`` for ``θ = 0`` with finite bounds, else ``rel_step``).
* :func:`ad_gradients` — per-run Jacobians ``d y_t / dθ`` by forward (``jacfwd``) or
  reverse (``jacrev``) mode through :func:`agentgrad.simulate`, averaged over runs.
* :func:`compare_estimators` — both, per estimator, with a summary: relative L2 error
  over steps and the largest bias z-score
  ``|ad_mean - fd_mean| / sqrt(ad_se^2 + fd_se^2)``.
* :func:`relaxed_gradcheck` — the check `ad-vs-sbi-for-abms` §1 describes for a
  Gumbel-softmax ABM: AD of the *relaxed* simulator (soft samples, fixed noise) against
  its own central differences ``(f_r(θ+h) - f_r(θ-h)) / 2h`` per run ``r``, in float64.
  It validates the derivative code exactly (the relaxed map is smooth), whereas
  :func:`compare_estimators` measures the estimator's bias against the discrete ABM:
  the two answer different questions and a Gumbel-softmax estimator can pass the first
  and be biased in the second.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

if TYPE_CHECKING:
    import pandas as pd

from agentgrad.engine import Model, ensemble, map_key_batches, simulate
from agentgrad.errors import AgentgradError, ParameterError
from agentgrad.estimators import Estimator, GumbelSoftmax
from agentgrad.params import ParamSpace
from agentgrad.stochad import StochasticDerivative, derivative_estimate

Mode = Literal["forward", "reverse"]


@dataclass(frozen=True)
class GradientEstimate:
    """Mean and standard error over runs of ``d E[y_t] / dθ`` for each parameter.

    ``mean[name]`` and ``se[name]`` have shape ``(n_steps,)``; ``n_simulations`` counts
    the simulations (forward runs, with or without tangents) used; ``nonzero[name]``
    ``(n_steps,)`` counts the runs whose value is not exactly zero (an unbiased
    stochastic-derivative estimate is zero in every run without an alternative path
    reaching the observable, so early steps may rest on a handful of runs).
    """

    mean: dict[str, np.ndarray]
    se: dict[str, np.ndarray]
    n_runs: int
    n_simulations: int
    nonzero: dict[str, np.ndarray] | None = None


def _observable_shapes(model: Model) -> dict[str, jax.ShapeDtypeStruct]:
    """Shapes of one step's observables (shape evaluation only, no simulation)."""
    return jax.eval_shape(lambda: simulate(model, None, jax.random.key(0), 1).observables)


def observable_names(model: Model) -> tuple[str, ...]:
    """Names of the model's observables."""
    return tuple(_observable_shapes(model))


def check_observable(model: Model, observable: str) -> None:
    """Raise a one-line error if ``observable`` is not a scalar-per-step observable."""
    shapes = _observable_shapes(model)
    if observable not in shapes:
        raise AgentgradError(
            f"unknown observable {observable!r}; valid names are: {', '.join(shapes)}"
        )
    if shapes[observable].shape != (1,):
        raise AgentgradError(f"observable {observable!r} is not a scalar per step")


def select_parameters(space: ParamSpace, parameters: Sequence[str] | None) -> list[str]:
    """Validate a parameter selection (``None`` = all, in declaration order)."""
    if parameters is None:
        return list(space.names)
    parameters = list(parameters)
    if not parameters:
        raise ParameterError("select at least one parameter")
    for name in parameters:
        space[name]  # raises ParameterError listing the valid names
    return parameters


def default_step_size(space: ParamSpace, name: str, value: float, rel_step: float) -> float:
    """Finite-difference step for parameter ``name`` at ``value`` (see module docstring)."""
    p = space[name]
    if p.fd_step is not None:
        return p.fd_step
    if value != 0:
        return rel_step * abs(value)
    if math.isfinite(p.lower) and math.isfinite(p.upper):
        return rel_step * (p.upper - p.lower)
    return rel_step


def _mean_se(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = x.shape[0]
    se = x.std(axis=0, ddof=1) / math.sqrt(n) if n > 1 else np.zeros(x.shape[1:])
    return x.mean(axis=0), se


def _relative_error(estimate: np.ndarray, reference: np.ndarray) -> float:
    """``||estimate - reference|| / ||reference||`` (0 if both vanish, inf if only it does)."""
    err = float(np.linalg.norm(estimate - reference))
    norm = float(np.linalg.norm(reference))
    return err / norm if norm > 0 else (0.0 if err == 0 else np.inf)


def _check_runs(n_runs: int) -> None:
    if isinstance(n_runs, bool) or not isinstance(n_runs, int) or n_runs < 1:
        raise AgentgradError(f"number of runs must be a positive integer, got {n_runs!r}")


def finite_differences(
    model: Model,
    params: Mapping[str, Any] | None,
    key: jax.Array,
    n_steps: int,
    n_runs: int,
    observable: str,
    *,
    parameters: Sequence[str] | None = None,
    step_sizes: Mapping[str, float] | None = None,
    rel_step: float = 0.05,
) -> GradientEstimate:
    """Central finite differences of ``E[observable_t]`` with common random numbers."""
    _check_runs(n_runs)
    check_observable(model, observable)
    space = model.param_space
    base = space.complete(params)
    names = select_parameters(space, parameters)
    if step_sizes:
        select_parameters(space, list(step_sizes))
    keys = jax.random.split(key, n_runs)

    def series(p):
        return np.asarray(ensemble(model, p, keys, n_steps).observables[observable])

    mean, se, n_sims = {}, {}, 0
    for name in names:
        value = float(base[name])
        h = (step_sizes or {}).get(name) or default_step_size(space, name, value, rel_step)
        if not h > 0:
            raise ParameterError(f"finite-difference step for {name!r} must be > 0, got {h}")
        lo, hi = space[name].lower, space[name].upper
        plus, minus = min(value + h, hi), max(value - h, lo)
        if plus - minus <= 0:
            raise ParameterError(f"cannot perturb {name!r}={value} within [{lo}, {hi}]")
        up = series({**base, name: jnp.float32(plus)})
        down = series({**base, name: jnp.float32(minus)}) if minus != value else series(base)
        mean[name], se[name] = _mean_se((up - down) / (plus - minus))
        n_sims += 2 * n_runs
    return GradientEstimate(mean, se, n_runs, n_sims)


def per_run_jacobians(
    model: Model,
    params: Mapping[str, Any] | None,
    key: jax.Array,
    n_steps: int,
    n_runs: int,
    observable: str,
    *,
    parameters: Sequence[str] | None = None,
    mode: Mode = "forward",
    checkpoint: bool = False,
    batch: int = 8,
) -> dict[str, np.ndarray]:
    """``d observable_t / dθ`` for every run: name -> array ``(n_runs, n_steps)``.

    Runs are processed ``batch`` at a time with ``vmap`` to bound memory.  A model
    drawing with :class:`~agentgrad.stochad.StochasticDerivative` gets one unbiased
    two-pass estimate per parameter direction (``mode`` does not apply).
    """
    _check_runs(n_runs)
    check_observable(model, observable)
    if mode not in ("forward", "reverse"):
        raise AgentgradError(f"mode must be 'forward' or 'reverse', got {mode!r}")
    space = model.param_space
    base = space.complete(params)
    names = select_parameters(space, parameters)
    jac = jax.jacfwd if mode == "forward" else jax.jacrev
    unbiased = isinstance(getattr(model, "estimator", None), StochasticDerivative)

    @eqx.filter_jit
    def jacobians(model, base, keys):
        def one(k):
            def series(theta, key=k):
                full = {**base, **theta}
                return simulate(model, full, key, n_steps, checkpoint=checkpoint).observables[
                    observable
                ]

            theta = {n: base[n] for n in names}
            if not unbiased:
                return jac(series)(theta)
            # stochastic derivatives: one two-pass estimate per parameter direction
            basis = jnp.eye(len(names), dtype=jnp.float32)
            est = jax.vmap(
                lambda e: derivative_estimate(series, theta, k, dict(zip(names, e, strict=True)))
            )(basis)
            return {n: est[i] for i, n in enumerate(names)}

        return jax.vmap(one)(keys)

    keys = jax.random.split(key, n_runs)
    return map_key_batches(lambda k: jacobians(model, base, k), keys, batch)


def ad_gradients(
    model: Model,
    params: Mapping[str, Any] | None,
    key: jax.Array,
    n_steps: int,
    n_runs: int,
    observable: str,
    *,
    parameters: Sequence[str] | None = None,
    mode: Mode = "forward",
    checkpoint: bool = False,
    batch: int = 8,
) -> GradientEstimate:
    """Mean and standard error over runs of the AD gradient of ``observable_t``."""
    per_run = per_run_jacobians(
        model,
        params,
        key,
        n_steps,
        n_runs,
        observable,
        parameters=parameters,
        mode=mode,
        checkpoint=checkpoint,
        batch=batch,
    )
    mean, se, nonzero = {}, {}, {}
    for name, values in per_run.items():
        mean[name], se[name] = _mean_se(values)
        nonzero[name] = np.count_nonzero(values, axis=0)
    return GradientEstimate(mean, se, n_runs, n_runs, nonzero)


def _pd():
    """pandas, imported on first use (it costs ~0.4 s at import time)."""
    import pandas

    return pandas


def with_estimator(model: Model, estimator: Estimator) -> Model:
    """A copy of ``model`` drawing with ``estimator``: every :class:`Estimator` in the
    model (its ``estimator`` field and those of its substeps) is replaced."""
    if not hasattr(model, "estimator"):
        raise AgentgradError(
            f"{type(model).__name__} makes no parameter-dependent random draws, so gradient "
            "estimators do not apply; compare its own surrogate gradient (estimator label "
            "'model')"
        )

    def is_estimator(x) -> bool:
        return isinstance(x, Estimator)

    return jax.tree.map(lambda x: estimator if is_estimator(x) else x, model, is_leaf=is_estimator)


@dataclass(frozen=True)
class GradcheckResult:
    """AD estimates beside finite differences.

    ``table`` has columns ``estimator, parameter, step, ad_mean, ad_se, fd_mean, fd_se,
    ad_nonzero_runs, z``; ``summary`` has one row per (estimator, parameter) with
    ``rel_error`` (L2 over steps), ``max_abs_z`` (largest bias z-score over the steps
    tested) and ``steps_tested`` (steps with at least :data:`MIN_NONZERO_RUNS` non-zero
    AD runs, or where FD is zero; see :func:`_z_scores`).
    """

    table: pd.DataFrame
    summary: pd.DataFrame

    def biased(self, estimators: Sequence[str], z_threshold: float = 4.0) -> list[str]:
        """Labels among ``estimators`` whose ``max_abs_z`` exceeds ``z_threshold``."""
        rows = self.summary[self.summary["estimator"].isin(list(estimators))]
        return sorted(set(rows.loc[rows["max_abs_z"] > z_threshold, "estimator"]))


MIN_NONZERO_RUNS = 10
"""Steps where fewer AD runs than this are non-zero get no z-score (NaN)."""


def _z_scores(ad_mean, ad_se, fd_mean, fd_se, ad_nonzero=None) -> np.ndarray:
    """``|AD - FD| / sqrt(se_AD² + se_FD²)`` per step; NaN where the AD sample has fewer
    than :data:`MIN_NONZERO_RUNS` non-zero runs but FD is not zero there (unless AD is
    zero in every run at every step: then every z-score is kept).

    A heavy-tailed estimate made of a few rare non-zero runs (a stochastic derivative
    at the first steps, before alternative paths reach the observable) has a sample
    standard error that is not yet a standard error (it is exactly 0 with no event), so
    a z-score there would flag an unbiased estimator; the relative error over the whole
    series still counts those steps.
    """
    diff = np.abs(ad_mean - fd_mean)
    scale = np.sqrt(ad_se**2 + fd_se**2)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(scale > 0, diff / scale, np.where(diff > 1e-12, np.inf, 0.0))
    if ad_nonzero is not None and np.any(ad_nonzero > 0):  # an estimator that is zero in
        # every run at every step never sees the derivative: keep its z-scores
        z = np.where((ad_nonzero < MIN_NONZERO_RUNS) & (np.abs(fd_mean) > 0), np.nan, z)
    return z


def compare_estimators(
    model: Model,
    estimators: Mapping[str, Estimator | None],
    params: Mapping[str, Any] | None,
    key: jax.Array,
    n_steps: int,
    n_runs: int,
    observable: str,
    *,
    parameters: Sequence[str] | None = None,
    fd_runs: int | None = None,
    step_sizes: Mapping[str, float] | None = None,
    rel_step: float = 0.05,
    mode: Mode = "forward",
) -> GradcheckResult:
    """AD gradients of ``observable_t`` under each estimator beside finite differences.

    An estimator ``None`` means the model as given (its own surrogates, e.g. for models
    without random draws).  The finite differences use ``fd_runs`` runs (default
    ``n_runs``) of the model as given (the estimator does not change the primal
    simulation).  AD and FD use independent keys.
    """
    if not estimators:
        raise AgentgradError("give at least one estimator")
    names = select_parameters(model.param_space, parameters)
    k_fd, k_ad = jax.random.split(key)
    fd = finite_differences(
        model,
        params,
        k_fd,
        n_steps,
        fd_runs or n_runs,
        observable,
        parameters=names,
        step_sizes=step_sizes,
        rel_step=rel_step,
    )
    rows, summary = [], []
    steps = np.arange(1, n_steps + 1)
    for label, est in estimators.items():
        ad = ad_gradients(
            model if est is None else with_estimator(model, est),
            params,
            k_ad,
            n_steps,
            n_runs,
            observable,
            parameters=names,
            mode=mode,
        )
        for name in names:
            nonzero = ad.nonzero[name]  # ad_gradients always counts them
            z = _z_scores(ad.mean[name], ad.se[name], fd.mean[name], fd.se[name], nonzero)
            rel = _relative_error(ad.mean[name], fd.mean[name])
            tested = ~np.isnan(z)
            summary.append(
                {
                    "estimator": label,
                    "parameter": name,
                    "rel_error": rel,
                    "max_abs_z": float(np.max(z[tested])) if tested.any() else np.nan,
                    "steps_tested": int(tested.sum()),
                }
            )
            rows.append(
                _pd().DataFrame(
                    {
                        "estimator": label,
                        "parameter": name,
                        "step": steps,
                        "ad_mean": ad.mean[name],
                        "ad_se": ad.se[name],
                        "fd_mean": fd.mean[name],
                        "fd_se": fd.se[name],
                        "ad_nonzero_runs": nonzero,
                        "z": z,
                    }
                )
            )
    pandas = _pd()
    return GradcheckResult(pandas.concat(rows, ignore_index=True), pandas.DataFrame(summary))


def check_float64(model: Model) -> None:
    """Raise a one-line error unless ``model`` runs in float64 under ``jax.enable_x64()``
    (shape evaluation of two steps only; models that fix float32 in their state fail)."""
    with jax.enable_x64(True):
        try:
            jax.eval_shape(lambda: simulate(model, None, jax.random.key(0), 2).observables)
        except TypeError as err:
            raise AgentgradError(
                f"{type(model).__name__} does not run in float64 (its state or draws fix "
                f"float32), so its relaxed check cannot be taken: {str(err).splitlines()[0]}"
            ) from None


RELAXED_FD_STEPS = (1e-4, 1e-5, 1e-6, 1e-7, 1e-8)


def relaxed_gradcheck(
    model: Model,
    params: Mapping[str, Any] | None,
    key: jax.Array,
    n_steps: int,
    n_runs: int,
    observable: str,
    *,
    parameters: Sequence[str] | None = None,
    fd_steps: Sequence[float] = RELAXED_FD_STEPS,
) -> pd.DataFrame:
    """AD of the relaxed simulator against its finite differences at fixed noise (float64).

    ``model`` must draw with :class:`GumbelSoftmax`; its soft version (``hard=False``,
    same temperature) is the relaxed simulator ``f_r(θ)`` (run ``r`` = key ``r``).  For
    each parameter and step ``h`` the pathwise relative error
    ``||FD_h - AD||_F / ||AD||_F`` over runs and time steps is reported, with central
    differences (one-sided where ``θ ± h`` leaves the bounds).  Everything runs inside
    ``jax.enable_x64()``.  Columns: ``parameter, fd_step, rel_error``.
    """
    _check_runs(n_runs)
    estimator = getattr(model, "estimator", None)
    if not isinstance(estimator, GumbelSoftmax):
        raise AgentgradError(
            "the relaxed check needs a model drawing with Gumbel-softmax (estimator gs:TAU): "
            f"its relaxation is the simulator being differentiated; got {estimator!r}"
        )
    check_observable(model, observable)
    check_float64(model)
    soft = with_estimator(model, GumbelSoftmax(estimator.temperature, hard=False))
    space = model.param_space
    names = select_parameters(space, parameters)
    with jax.enable_x64(True):
        base = space.complete(params)
        theta0 = jnp.stack([base[n] for n in names])
        keys = jax.random.split(key, n_runs)

        def series(model: Model, theta: jax.Array, k: jax.Array) -> jax.Array:
            p = {**base, **{n: theta[i] for i, n in enumerate(names)}}
            return simulate(model, p, k, n_steps).observables[observable]

        @eqx.filter_jit  # the model as an argument, not a constant closed over
        def runs(model, theta, keys):
            return jax.vmap(lambda k: series(model, theta, k))(keys)

        @eqx.filter_jit
        def jacobians(model, theta, keys):
            return jax.vmap(lambda k: jax.jacfwd(lambda t: series(model, t, k))(theta))(keys)

        jac = np.asarray(jacobians(soft, theta0, keys))
        centre = runs(soft, theta0, keys)  # the side a one-sided difference keeps
        rows = []
        for i, name in enumerate(names):
            p, value = space[name], float(theta0[i])
            for h in fd_steps:
                up, down = value + h <= p.upper, value - h >= p.lower
                e = jnp.zeros(len(names)).at[i].set(h)
                hi = runs(soft, theta0 + e, keys) if up else centre
                lo = runs(soft, theta0 - e, keys) if down else centre
                fd = np.asarray(hi - lo) / (h * (int(up) + int(down)))
                rel = _relative_error(fd, jac[..., i])
                rows.append({"parameter": name, "fd_step": h, "rel_error": rel})
    return _pd().DataFrame(rows)
