"""A trained GDN as an agentgrad :class:`~agentgrad.engine.Model`.

``GDNSurrogate(base, gdn)`` starts where ``base`` starts (or from ``initial_state``),
and each step samples every agent's next dynamic features from the GDN given the
current agents and their neighbours (App. A.4), then lets ``base`` decode them and apply
its deterministic bookkeeping (:meth:`with_dynamic`).  Observables are ``base``'s, so
``simulate``, ``ensemble`` and the command line work unchanged, and ``jax.grad`` runs
through a rollout to the initial agent states (the sampler is reparameterised; decoded
categories pass gradients straight through), though for categorical states those
gradients are close to zero (:mod:`agentgrad.surrogate.gdn`).

A parameter-conditioned GDN (``theta_names``) reads ``Theta`` from the parameters it is
simulated with, so ``jax.grad`` of a rollout's macro statistics with respect to those
parameters goes through the sampler (close to zero for categorical states; see
:mod:`agentgrad.surrogate.gdn`); the other parameters only reach ``base``'s
observables.

``GDNSurrogate(base, gdn, gradient="score")`` gives derivatives that do see agents
change category: the state also carries the running log-density of every sampled
denoising path (:meth:`~agentgrad.surrogate.gdn.Schedule.sample`), the observable
``log_prob`` reports it, and :func:`with_score` turns a batch of rollout statistics
into values whose mean has the likelihood-ratio estimate of ``grad E[statistic]`` as
its gradient (Williams 1992; with a leave-one-out baseline, Kool et al. 2019):

    grad E[f] = E[ f grad log q(path) ],   estimated by
    (1/R) sum_r (f_r - b_r) grad log q_r,  b_r = (1/(R-1)) sum_{s != r} f_s.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp

from agentgrad.engine import Model
from agentgrad.errors import AgentgradError
from agentgrad.params import Params, ParamSpace
from agentgrad.surrogate.data import agent_graph_inputs
from agentgrad.surrogate.gdn import GDN
from agentgrad.surrogate.view import require_agent_view

GRADIENTS = ("pathwise", "score")


class ScoredState(eqx.Module):
    """A surrogate state with the running log-density of its sampled paths."""

    state: Any
    log_prob: jax.Array


class GDNSurrogate(Model):
    """``base``'s agents, advanced by a trained :class:`GDN` (module docstring).

    ``gradient``: ``"pathwise"`` (reparameterised sampler, straight-through decoding)
    or ``"score"`` (states carry the paths' log-density; see :func:`with_score`)."""

    base: Model
    gdn: GDN
    initial_state: Any = None
    gradient: str = eqx.field(static=True, default="pathwise")

    def __check_init__(self) -> None:
        require_agent_view(self.base)
        if self.gradient not in GRADIENTS:
            raise AgentgradError(
                f"gradient must be one of {', '.join(GRADIENTS)}, got {self.gradient!r}"
            )

    def check_compatible(self, params: Params, key: jax.Array) -> None:
        """A one-line error when the GDN was trained on another model's features or
        parameters."""
        missing = [n for n in self.gdn.theta_names if n not in self.base.param_space.names]
        if missing:
            raise AgentgradError(
                f"surrogate conditioned on parameters {missing} that "
                f"{type(self.base).__name__} does not have: use the model it was trained on"
            )
        state = self.base.init(self.base.param_space.complete(params), key)
        static, dynamic = self.base.agent_features(state)
        if (static.shape[1], dynamic.shape[1]) != (self.gdn.static_dim, self.gdn.dynamic_dim):
            raise AgentgradError(
                f"surrogate trained on {self.gdn.static_dim} static + {self.gdn.dynamic_dim} "
                f"dynamic features; {type(self.base).__name__} has {static.shape[1]} + "
                f"{dynamic.shape[1]}: use the model it was trained on"
            )

    @property
    def observable_units(self):  # type: ignore[override]
        return self.base.observable_units

    @property
    def param_space(self) -> ParamSpace:
        return self.base.param_space

    def init(self, params: Params, key: jax.Array) -> Any:
        state = self.initial_state
        if state is None:
            state = self.base.init(params, key)
        if self.gradient == "score":
            return ScoredState(state, jnp.zeros((), jnp.float32))
        return state

    def step(self, state: Any, params: Params, key: jax.Array, t: jax.Array) -> Any:
        score = self.gradient == "score"
        inner = state.state if score else state
        z, aggregated, degree = agent_graph_inputs(self.base, inner)
        drawn = self.gdn.sample(z, aggregated, degree, key, self.theta(params), score=score)
        if not score:
            return self.base.with_dynamic(inner, drawn)
        dynamic, log_q = drawn
        log_prob = state.log_prob + log_q.astype(state.log_prob.dtype)
        return ScoredState(self.base.with_dynamic(inner, dynamic), log_prob)

    def theta(self, params: Params) -> jax.Array | None:
        """The conditioning parameters ``(p,)`` of a parameter-conditioned GDN, else None."""
        names = self.gdn.theta_names
        return jnp.stack([jnp.asarray(params[n], jnp.float32) for n in names]) if names else None

    def observe(self, state: Any, params: Params, t: jax.Array) -> dict[str, jax.Array]:
        if self.gradient == "score":
            return {**self.base.observe(state.state, params, t), "log_prob": state.log_prob}
        return self.base.observe(state, params, t)


def with_score(values: jax.Array, log_prob: jax.Array) -> jax.Array:
    """``values`` of ``R`` rollouts (axis 0), unchanged in value, whose mean over axis 0
    has the likelihood-ratio estimate of ``grad E[values]`` as its gradient.

    ``log_prob`` is the ``log_prob`` observable of the same rollouts (shape ``(R,)`` or
    broadcastable to ``values``, e.g. ``(R, T)`` for a series: use each step's own
    running log-density).  Returns ``y_r = v_r + stop_gradient(v_r - b_r) (l_r -
    stop_gradient(l_r))`` with the leave-one-out baseline ``b_r`` (module docstring),
    so that ``grad mean_r y_r = (1/R) sum_r (v_r - b_r) grad l_r`` plus whatever
    pathwise gradient ``values`` carry.  Any smooth function of the mean (a loss on a
    mean series) then gets the chain rule through that estimate.
    """
    values = jnp.asarray(values)
    if values.shape[0] < 2:
        raise AgentgradError("with_score needs at least 2 rollouts (for the baseline)")
    log_prob = jnp.asarray(log_prob, values.dtype)
    log_prob = log_prob.reshape(log_prob.shape + (1,) * (values.ndim - log_prob.ndim))
    fixed = jax.lax.stop_gradient(values)
    n = values.shape[0]
    baseline = (jnp.sum(fixed, axis=0, keepdims=True) - fixed) / (n - 1)
    return values + (fixed - baseline) * (log_prob - jax.lax.stop_gradient(log_prob))


__all__ = ["GDNSurrogate", "ScoredState", "with_score"]
