"""Gradient training of anything inside a model: neural substeps, per-agent parameter
arrays, scalars (`flame-framework-for-learning-in-abms` §3.6, modes 1-3).

:func:`train` minimises ``loss(x, key)`` over the trainable leaves of a pytree ``x``
(a model, a ``(model, params)`` pair, a dict of arrays...) with an optax optimiser:

    (x_trainable, x_fixed) = eqx.partition(x, trainable)
    for i in 0..n_steps-1:
        g = d loss(combine(x_trainable, x_fixed), fold_in(key, i)) / d x_trainable
        x_trainable <- optimiser update with g

The loss usually runs :func:`agentgrad.simulate` or :func:`agentgrad.ensemble`, so the
gradient flows through the model's discrete draws with the model's estimator
(straight-through, Gumbel-softmax or the smoothed stochastic derivative;
``StochasticDerivative`` needs :mod:`agentgrad.stochad`'s own estimates and says so).  One
optimiser step is one jitted call; the loop over steps is plain Python so that the
progress bar, the history and checkpoints are visible.  A non-finite loss or gradient
stops training with :class:`TrainingError`; the last good state is kept (returned on
the exception and written to the checkpoint).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from agentgrad.errors import AgentgradError

Loss = Callable[[Any, jax.Array], Any]


class TrainingError(AgentgradError):
    """Training stopped (non-finite loss or gradient); ``result`` holds the last good state."""

    def __init__(self, message: str, result: TrainResult) -> None:
        super().__init__(message)
        self.result = result


@dataclass
class TrainResult:
    """The trained pytree and the history (``loss`` and any auxiliary values, one entry
    per optimiser step: a float, or a list for array values)."""

    model: Any
    history: dict[str, list[float]] = field(default_factory=dict)

    @property
    def loss(self) -> np.ndarray:
        return np.asarray(self.history.get("loss", []))


def trainable_filter(x: Any, trainable: Callable[[Any], Any] | None) -> Any:
    """A boolean pytree like ``x``: True on the floating-point arrays of ``trainable(x)``
    (all of ``x`` when ``trainable`` is None)."""
    if trainable is None:
        return jax.tree.map(eqx.is_inexact_array, x)
    try:
        chosen = trainable(x)
    except (AttributeError, KeyError, IndexError, TypeError) as exc:
        raise AgentgradError(f"trainable could not select from the model: {exc}") from None
    spec = jax.tree.map(lambda _: False, x)
    spec = eqx.tree_at(trainable, spec, jax.tree.map(eqx.is_inexact_array, chosen))
    if not any(jax.tree.leaves(spec)):
        raise AgentgradError("trainable selects no floating-point arrays; nothing to train")
    return spec


def drive(model: Any, where: Callable[[Any], jax.Array], value: jax.Array) -> Any:
    """``model`` with the array ``where(model)`` replaced by ``value`` (e.g. a network's
    output driving a parameter array of a substep), after checking that the shapes
    match; the value is cast to the array's dtype.  Gradients flow through ``value``."""
    old = jnp.asarray(where(model))
    value = jnp.asarray(value)
    if value.shape != old.shape:
        raise AgentgradError(
            f"cannot drive an array of shape {old.shape} with a value of shape "
            f"{value.shape}; make the network output {old.shape}"
        )
    return eqx.tree_at(where, model, value.astype(old.dtype))


def _check_options(n_steps: int, checkpoint_every: int) -> None:
    for name, value in (("n_steps", n_steps), ("checkpoint_every", checkpoint_every)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise AgentgradError(f"{name} must be a positive integer, got {value!r}")


def _save(path: Path, leaves: list, step: int, history: dict[str, list[float]]) -> None:
    from agentgrad.outputs import write_atomic

    arrays = {f"leaf_{i}": np.asarray(leaf) for i, leaf in enumerate(leaves)}
    arrays.update({f"history_{k}": np.asarray(v, np.float64) for k, v in history.items()})

    def write(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            np.savez(fh, step=np.int64(step), **arrays)

    write_atomic(path, write)


def _load(path: Path, leaves: list) -> tuple[list, int, dict[str, list[float]]]:
    try:
        with np.load(path) as data:
            stored = [data[f"leaf_{i}"] for i in range(len(leaves))]
            extra = [k for k in data.files if k.startswith("leaf_")]
            history = {
                k.removeprefix("history_"): data[k].tolist()
                for k in data.files
                if k.startswith("history_")
            }
            step = int(data["step"])
    except (OSError, KeyError, ValueError) as exc:
        raise AgentgradError(f"cannot resume from {path}: {exc}") from None
    if len(extra) != len(leaves) or any(
        np.shape(a) != np.shape(b) for a, b in zip(stored, leaves, strict=True)
    ):
        raise AgentgradError(
            f"checkpoint {path} was written for another model or trainable set; "
            "delete it or pass another checkpoint path"
        )
    restored = [jnp.asarray(a, jnp.result_type(b)) for a, b in zip(stored, leaves, strict=True)]
    return restored, step, history


def make_update(loss: Loss, optimizer: optax.GradientTransformation, has_aux: bool = False):
    """The jitted optimiser step of :func:`train`:
    ``update(params, static, opt_state, key) -> (params, opt_state, loss, aux, finite)``
    where ``params, static = eqx.partition(model, trainable_filter(model, ...))`` and
    ``finite`` says whether the loss and every gradient are finite."""

    def objective(params, static, key):
        out = loss(eqx.combine(params, static), key)
        value, aux = out if has_aux else (out, {})
        if jnp.shape(value) != ():
            raise AgentgradError(
                f"loss must return a scalar, got shape {jnp.shape(value)}; reduce it "
                "(e.g. jnp.mean)" + ("" if has_aux else " or pass has_aux=True")
            )
        return value, aux

    @eqx.filter_jit
    def update(params, static, opt_state, key):
        (value, aux), grads = jax.value_and_grad(objective, has_aux=True)(params, static, key)
        finite = jnp.isfinite(value)
        for g in jax.tree.leaves(grads):
            finite = finite & jnp.all(jnp.isfinite(g))
        with jax.numpy_dtype_promotion("standard"):
            updates, new_state = optimizer.update(grads, opt_state, params)
            new_params = optax.apply_updates(params, updates)
        return new_params, new_state, value, aux, finite

    return update


def train(
    model: Any,
    loss: Loss,
    key: jax.Array,
    n_steps: int,
    *,
    trainable: Callable[[Any], Any] | None = None,
    optimizer: optax.GradientTransformation | None = None,
    has_aux: bool = False,
    checkpoint: str | Path | None = None,
    checkpoint_every: int = 50,
    progress: bool = False,
) -> TrainResult:
    """Minimise ``loss(model, key)`` over the trainable arrays of ``model``.

    Args:
        model: any pytree (a model with neural substeps, per-agent arrays, ...).
        loss: ``loss(model, key) -> scalar`` (or ``(scalar, {name: value})`` with
            ``has_aux``; the auxiliary values, scalars or small arrays such as a few
            agents' parameters, are recorded in the history).
        key: PRNG key; step ``i`` uses ``fold_in(key, i)``.
        n_steps: optimiser steps.
        trainable: ``lambda m: m.some.subtree`` (or a tuple of subtrees) selecting what
            to train; default: every floating-point array of ``model``.
        optimizer: an optax optimiser (default ``optax.adam(1e-2)``).
        checkpoint: an ``.npz`` path; the trainable leaves, optimiser state and history
            are written there atomically every ``checkpoint_every`` steps and at the end,
            and training resumes from it when it exists.
        progress: draw a progress bar.

    Returns:
        :class:`TrainResult` with the trained model and the history.

    Raises:
        TrainingError: the loss or a gradient became non-finite; training stops, the last
            good state is in ``error.result`` (and in the checkpoint).
    """
    _check_options(n_steps, checkpoint_every)
    optimizer = optax.adam(1e-2) if optimizer is None else optimizer
    spec = trainable_filter(model, trainable)
    params, static = eqx.partition(model, spec)
    with jax.numpy_dtype_promotion("standard"):
        opt_state = optimizer.init(params)
    history: dict[str, list[float]] = {"loss": []}
    start = 0
    path = None if checkpoint is None else Path(checkpoint)
    if path is not None and path.exists():
        leaves, treedef = jax.tree.flatten((params, opt_state))
        leaves, start, history = _load(path, leaves)
        params, opt_state = jax.tree.unflatten(treedef, leaves)

    update = make_update(loss, optimizer, has_aux)

    def save(step: int) -> None:
        if path is not None:
            _save(path, jax.tree.leaves((params, opt_state)), step, history)

    from agentgrad.calibration.gvi import progress_bar

    previous = (params, opt_state)
    with progress_bar(progress, n_steps, "training") as bar:
        for i in range(start, n_steps):
            new_params, new_state, value, aux, finite = update(
                params, static, opt_state, jax.random.fold_in(key, i)
            )
            if not bool(finite):
                done = i
                if not math.isfinite(float(value)) and i > start:  # back to the last good
                    params, opt_state, done = *previous, i - 1
                    for values in history.values():
                        del values[done:]
                save(done)
                where = f"; last good state saved to {path}" if path is not None else ""
                raise TrainingError(
                    f"training stopped at step {i}: the loss ({float(value):.4g}) or its "
                    f"gradient is not finite (lower the learning rate or check the "
                    f"loss){where}",
                    TrainResult(eqx.combine(params, static), history),
                )
            previous = (params, opt_state)
            params, opt_state = new_params, new_state
            history["loss"].append(float(value))
            for name, v in aux.items():
                v = np.asarray(v)
                history.setdefault(name, []).append(float(v) if v.ndim == 0 else v.tolist())
            bar(i + 1, f"step {i + 1}/{n_steps} loss {float(value):.4g}")
            if (i + 1) % checkpoint_every == 0:
                save(i + 1)
    save(n_steps)
    return TrainResult(eqx.combine(params, static), history)


__all__ = ["TrainResult", "TrainingError", "drive", "make_update", "train", "trainable_filter"]
