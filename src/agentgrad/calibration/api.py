"""One entry point for every calibration method: :func:`calibrate`.

``calibrate(model, observed, key, method=GVI())`` — the method is a small object
carrying its own settings (:class:`~agentgrad.calibration.GVI`, or the simulation-based
:class:`~agentgrad.calibration.sbi.NPE`, ``NLE``, ``NRE``, ``SNPE``, ``SNLE``, ``SNVI``,
``ABC``).  Every method spends at most ``budget`` simulator runs (one run = one
simulation of ``T`` steps at one parameter value) and returns a
:class:`~agentgrad.calibration.posterior.CalibratedPosterior` whose ``diagnostics``
say how much each parameter contracted and whether the method converged.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import jax

from agentgrad.calibration.gvi import GVI
from agentgrad.calibration.posterior import CalibratedPosterior, diagnose
from agentgrad.calibration.problem import make_problem
from agentgrad.engine import Model, warn_if_unvalidated
from agentgrad.errors import AgentgradError
from agentgrad.params import Prior


def calibrate(
    model: Model,
    observed: Mapping[str, Any],
    key: jax.Array,
    method: Any = None,
    *,
    parameters: Sequence[str] | None = None,
    fixed: Mapping[str, float] | None = None,
    priors: Mapping[str, Prior] | None = None,
    budget: int | None = None,
    progress: bool = False,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int = 25,
    resume: bool = False,
    **gvi_options: Any,
) -> CalibratedPosterior:
    """Calibrate ``parameters`` (default: all) of ``model`` to ``observed``.

    ``observed`` maps observable names to series of length ``T`` (the number of
    steps).  The other parameters stay at ``fixed`` or their defaults; ``priors``
    overrides the model's priors by name.  ``method`` defaults to :class:`GVI`; the
    keyword arguments of :class:`GVI` may be given directly instead (``loss=``,
    ``family=``, ``kl_weight=``, ``epochs=``, ...).  ``budget`` caps the simulator runs
    (methods say their minimum).  ``checkpoint``/``resume`` apply to GVI (see
    :meth:`GVI.fit`).  The returned posterior carries ``history`` and ``diagnostics``
    (:func:`~agentgrad.calibration.posterior.diagnose`).
    """
    if method is None:
        method = GVI(**gvi_options)
    elif gvi_options:
        raise AgentgradError(
            f"give the settings of {type(method).__name__} to the method object, not to "
            f"calibrate(): {', '.join(gvi_options)}"
        )
    if not hasattr(method, "fit"):
        raise AgentgradError(f"method must be a calibration method (ag.GVI(), ...), got {method!r}")
    if budget is not None:
        if not isinstance(budget, int) or budget < 1:
            raise AgentgradError(f"budget must be a positive number of simulator runs: {budget}")
        minimum = method.minimum_budget()
        if budget < minimum:
            raise AgentgradError(
                f"budget {budget} is too small for {type(method).__name__}: it needs at least "
                f"{minimum} simulator runs"
            )
    problem = make_problem(model, observed, parameters, fixed, priors)
    options = {}
    if isinstance(method, GVI):  # the gradient-free methods do not use the estimators
        warn_if_unvalidated(model, problem.n_steps)
        options = {"checkpoint": checkpoint, "checkpoint_every": checkpoint_every, "resume": resume}
    elif checkpoint is not None or resume:
        raise AgentgradError(f"checkpoint/resume apply to GVI only, not {type(method).__name__}")
    k_fit, k_diag = jax.random.split(key)
    posterior = method.fit(problem, k_fit, budget=budget, progress=progress, **options)
    diagnose(posterior, k_diag)
    return posterior
