"""Training a GDN on a ramification dataset (`graph-diffusion-networks-for-abms`
Algorithm 1, with the reference code's epoch: every ``(t, r)`` pair once, in random
order, one optimiser step per pair over all agents).

Datasets that store parameters (``data.theta``, drawn with ``condition_on``) train a
parameter-conditioned network: each transition's ``theta`` is fed with it.

Two Adam optimisers as in Table 1: ``learning_rate`` for the denoiser (paper 1e-5) and
``gnn_learning_rate`` (default twice that) for the GNN, which is trained only through
the condition.  Each epoch is one ``lax.scan``; ``history["loss"]`` holds the mean loss
per epoch.

Two options the paper and its code do not use (both off by default), for short
training at large learning rates, where the last iterate of Adam jitters around the
optimum and its one-step biases compound over a rollout:

* ``schedule="cosine"``: both learning rates decay as ``lr_k = lr (1 + cos(pi k /
  K)) / 2`` over the ``K = epochs T R`` optimiser steps (``optax.cosine_decay_schedule``).
* ``ema=d``: the returned network is the exponential moving average of the iterates,
  ``bar_theta_k = d_k bar_theta_{k-1} + (1 - d_k) theta_k`` with ``d_k = min(d, (1 + k) /
  (10 + k))`` (the warm-up of TensorFlow's ``ExponentialMovingAverage``), as used by
  denoising diffusion models since Ho et al. (2020, App. B: ``d = 0.9999``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from agentgrad.calibration.gvi import progress_bar
from agentgrad.errors import AgentgradError
from agentgrad.surrogate.data import Ramifications
from agentgrad.surrogate.gdn import GDN, GNNOnly, load_gdn, save_gdn

SCHEDULES = ("constant", "cosine")


def _check_rate(name: str, value: float) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
        raise AgentgradError(f"{name} must be a positive finite number, got {value!r}")


def train_gdn(
    gdn: GDN | GNNOnly,
    data: Ramifications,
    key: jax.Array,
    epochs: int = 100,
    learning_rate: float = 1e-5,
    gnn_learning_rate: float | None = None,
    progress: bool = False,
    checkpoint: str | Path | None = None,
    checkpoint_every: int = 10,
    schedule: str = "constant",
    ema: float | None = None,
) -> tuple[GDN | GNNOnly, dict[str, list[float]]]:
    """Train ``gdn`` on ``data`` for ``epochs`` epochs; returns ``(gdn, history)``.

    ``schedule``: ``"constant"`` learning rates (the paper's) or ``"cosine"`` decay to 0;
    ``ema``: average the iterates with this decay in (0, 1) and return the average
    (module docstring).  With ``checkpoint`` the network (the average, with ``ema``) and
    history are written every ``checkpoint_every`` epochs and at the end
    (:func:`~agentgrad.surrogate.gdn.save_gdn`).
    """
    if not isinstance(epochs, int) or epochs < 1:
        raise AgentgradError(f"epochs must be an integer >= 1, got {epochs!r}")
    if schedule not in SCHEDULES:
        raise AgentgradError(f"schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")
    if ema is not None and not (isinstance(ema, int | float) and 0 < ema < 1):
        raise AgentgradError(f"ema must be a decay in (0, 1) (e.g. 0.999), got {ema!r}")
    gnn_learning_rate = 2 * learning_rate if gnn_learning_rate is None else gnn_learning_rate
    _check_rate("learning_rate", learning_rate)
    _check_rate("gnn_learning_rate", gnn_learning_rate)
    s, d = data.static_dim, data.targets.shape[-1]
    if (gdn.static_dim, gdn.dynamic_dim) != (s, d):
        raise AgentgradError(
            f"the network expects {gdn.static_dim} static + {gdn.dynamic_dim} dynamic features "
            f"but the data have {s} + {d}: data and surrogate come from different models"
        )
    if tuple(gdn.theta_names) != data.theta_names:
        raise AgentgradError(
            f"the network is conditioned on {list(gdn.theta_names)} but the data store "
            f"{list(data.theta_names)}: draw the data with condition_on= the network's "
            "theta_names"
        )
    theta = None if data.theta is None else jnp.asarray(data.theta, jnp.float32)
    context, aggregated = jnp.asarray(data.context), jnp.asarray(data.aggregated)
    degree, targets = jnp.asarray(data.degree), jnp.asarray(data.targets)
    T, R = data.n_transitions, data.n_branches

    params, static = eqx.partition(gdn, eqx.is_inexact_array)
    labels = jax.tree.map(lambda _: "denoiser", params)
    gnn_labels = jax.tree.map(lambda _: "gnn", labels.gnn)
    labels = eqx.tree_at(lambda g: g.gnn, labels, gnn_labels)

    def rate(lr: float) -> Any:
        return lr if schedule == "constant" else optax.cosine_decay_schedule(lr, epochs * T * R)

    optimiser = optax.multi_transform(
        {"denoiser": optax.adam(rate(learning_rate)), "gnn": optax.adam(rate(gnn_learning_rate))},
        labels,
    )
    with jax.numpy_dtype_promotion("standard"):
        opt_state = optimiser.init(params)
    average = params if ema is not None else None

    def loss_fn(p, t, r, k):
        g = eqx.combine(p, static)
        th = None if theta is None else theta[t]
        return g.loss(context[t], aggregated[t], degree[t], targets[t, r], k, th)

    def averaged(average, params, n):
        if average is None:
            return None
        k = n.astype(jnp.float32)
        d = jnp.minimum(jnp.float32(ema), (1.0 + k) / (10.0 + k))
        return jax.tree.map(lambda a, p: d * a + (1 - d) * p, average, params)

    @eqx.filter_jit
    def epoch(params, opt_state, average, e, k):
        k_order, k_steps = jax.random.split(k)
        pairs = jax.random.permutation(k_order, T * R)
        steps = e * (T * R) + jnp.arange(T * R)  # optimiser step numbers, for the EMA warm-up

        def one(carry, inp):
            params, opt_state, average = carry
            pair, kk, n = inp
            value, grads = jax.value_and_grad(loss_fn)(params, pair // R, pair % R, kk)
            with jax.numpy_dtype_promotion("standard"):  # optax mixes int counts and floats
                updates, opt_state = optimiser.update(grads, opt_state, params)
                params = optax.apply_updates(params, updates)
            return (params, opt_state, averaged(average, params, n)), value

        carry, losses = jax.lax.scan(
            one, (params, opt_state, average), (pairs, jax.random.split(k_steps, T * R), steps)
        )
        return *carry, jnp.mean(losses)

    history: dict[str, list[float]] = {"loss": []}

    def current() -> GDN | GNNOnly:
        return eqx.combine(params if average is None else average, static)

    def save() -> None:
        if checkpoint is not None:
            from agentgrad.outputs import write_atomic

            meta = {"history": history, "data": data.meta}
            write_atomic(checkpoint, lambda p: save_gdn(p, current(), meta))

    with progress_bar(progress, epochs, "training") as bar:
        for e in range(epochs):
            params, opt_state, average, loss = epoch(
                params, opt_state, average, jnp.int32(e), jax.random.fold_in(key, e)
            )
            history["loss"].append(float(loss))
            bar(e + 1, f"epoch {e + 1}/{epochs} loss {float(loss):.4g}")
            if checkpoint is not None and (e + 1) % checkpoint_every == 0:
                save()
    save()
    if not np.all(np.isfinite(history["loss"])):
        raise AgentgradError("training diverged (non-finite loss); lower the learning rate")
    return current(), history


def load_history(path: str | Path) -> dict[str, Any]:
    """The training history stored beside a checkpoint."""
    _, meta = load_gdn(path)
    return meta.get("history", {})


__all__ = ["load_history", "train_gdn"]
