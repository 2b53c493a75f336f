"""Generalised variational inference with pathwise gradients (§6.1, eq. 58; §10.2).

Objective (our convention, the issue's eq. 58 form):

    L(phi) = E_{q_phi}[ loss(theta, y) ] + w * KL(q_phi || prior),

with ``theta ~ q_phi`` reparameterised (``theta = T(u)``, ``u`` from the family), the
expectation and the KL by Monte Carlo over ``n_samples`` draws per step
(``KL = E_q[log q(theta) - log prior(theta)]``), and ``loss`` averaged over
``n_sims`` simulator runs per draw.  Gradients are pathwise: ``jax.grad`` through the
family, the bijection and the differentiable simulator (reverse mode).  Optimiser:
AdamW with gradient-norm clipping (§10.2.2).  Each epoch evaluates the objective on a
fixed validation key; the weights with the lowest validation objective are kept.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from agentgrad.calibration.families import (
    DiagonalGaussian,
    Family,
    initial_mean,
    support_param,
    to_params,
)
from agentgrad.calibration.losses import Loss, get_loss
from agentgrad.engine import Model, simulate
from agentgrad.errors import AgentgradError
from agentgrad.gradients import select_parameters


@dataclass
class Posterior:
    """A fitted variational posterior over the named parameters."""

    family: Family
    model: Model
    names: list[str]
    history: dict[str, list[float]] = field(default_factory=dict)

    def sample(self, key: jax.Array, n: int) -> dict[str, jax.Array]:
        u, _ = self.family.sample_and_log_prob(key, n)
        theta, _ = to_params(self.model.param_space, self.names, u)
        return theta

    def log_prob(self, theta: Mapping[str, jax.Array]) -> jax.Array:
        """Log-density in the constrained space (includes the bijection's Jacobian)."""
        space = self.model.param_space
        u = jnp.stack(
            [
                support_param(space, n).to_unconstrained(jnp.asarray(theta[n], jnp.float32))
                for n in self.names
            ],
            axis=-1,
        )
        _, log_det = to_params(space, self.names, u)
        return self.family.log_prob(u) - log_det


def calibrate(
    model: Model,
    observed: Mapping[str, Any],
    key: jax.Array,
    *,
    parameters: Sequence[str] | None = None,
    fixed: Mapping[str, float] | None = None,
    loss: str | Loss = "mse",
    family: str | Family = "gaussian",
    kl_weight: float = 1.0,
    n_samples: int = 5,
    n_sims: int = 2,
    epochs: int = 200,
    learning_rate: float = 1e-2,
    clip_norm: float = 1.0,
    patience: int | None = None,
) -> Posterior:
    """Fit a variational posterior to ``observed`` (name -> series of length T).

    ``parameters`` are calibrated (default: all); the others stay at ``fixed`` or their
    defaults.  ``family`` is ``"gaussian"``, ``"flow"`` or a :class:`Family`.
    """
    space = model.param_space
    names = select_parameters(space, parameters)
    base = space.complete(fixed)
    observed = {k: jnp.asarray(v, jnp.float32) for k, v in observed.items()}
    if not observed:
        raise AgentgradError("observed data must contain at least one observable")
    lengths = {v.shape for v in observed.values()}
    if len(lengths) != 1 or len(next(iter(lengths))) != 1:
        raise AgentgradError("every observed series must be 1-D with the same length")
    n_steps = next(iter(lengths))[0]
    loss_fn = get_loss(loss)
    k_init, k_val, k_train = jax.random.split(key, 3)
    if isinstance(family, str):
        if family == "gaussian":
            family = DiagonalGaussian(len(names), initial_mean(space, names))
        elif family == "flow":
            from agentgrad.calibration.families import MaskedAutoregressiveFlow

            family = MaskedAutoregressiveFlow(len(names), k_init, shift=initial_mean(space, names))
        else:
            raise AgentgradError(f"unknown family {family!r}; use gaussian or flow")

    def objective(fam, k):
        k_q, k_sim = jax.random.split(k)
        u, log_q = fam.sample_and_log_prob(k_q, n_samples)
        theta, log_det = to_params(space, names, u)
        log_prior = sum(space[n].prior.log_prob(theta[n]) for n in names)
        kl = jnp.mean(log_q - log_det - log_prior)

        def one(i):
            params = {**base, **{n: theta[n][i] for n in names}}
            keys = jax.random.split(jax.random.fold_in(k_sim, i), n_sims)
            sims = jax.vmap(lambda kk: simulate(model, params, kk, n_steps).observables)(keys)
            return loss_fn({n: sims[n] for n in observed}, observed)

        data_term = jnp.mean(jax.vmap(one)(jnp.arange(n_samples)))
        return data_term + kl_weight * kl

    params, static = eqx.partition(family, eqx.is_inexact_array)
    optimizer = optax.chain(
        optax.clip_by_global_norm(clip_norm), optax.adamw(learning_rate, b1=0.9, b2=0.999)
    )
    with jax.numpy_dtype_promotion("standard"):
        opt_state = optimizer.init(params)

    @jax.jit
    def step(params, opt_state, k):
        value, grads = jax.value_and_grad(lambda p: objective(eqx.combine(p, static), k))(params)
        with jax.numpy_dtype_promotion("standard"):  # optax mixes int counts and floats
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), opt_state, value

    validate = jax.jit(lambda p: objective(eqx.combine(p, static), k_val))
    history = {"train": [], "validation": []}
    best, best_value, since_best, n_bad = params, np.inf, 0, 0
    for epoch in range(epochs):
        params, opt_state, value = step(params, opt_state, jax.random.fold_in(k_train, epoch))
        val = float(validate(params))
        history["train"].append(float(value))
        history["validation"].append(val)
        if not np.isfinite(value) or not np.isfinite(val):
            n_bad += 1
        if np.isfinite(val) and val < best_value:
            best, best_value, since_best = params, val, 0
        else:
            since_best += 1
        if patience is not None and since_best >= patience:
            break
    history["non_finite_epochs"] = [n_bad]
    return Posterior(eqx.combine(best, static), model, list(names), history)
