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
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from agentgrad.engine import Model
from agentgrad.errors import AgentgradError
from agentgrad.params import Params, ParamSpace
from agentgrad.surrogate.data import agent_graph_inputs
from agentgrad.surrogate.gdn import GDN
from agentgrad.surrogate.view import require_agent_view


class GDNSurrogate(Model):
    """``base``'s agents, advanced by a trained :class:`GDN` (module docstring)."""

    base: Model
    gdn: GDN
    initial_state: Any = None

    def __check_init__(self) -> None:
        require_agent_view(self.base)

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
        if self.initial_state is not None:
            return self.initial_state
        return self.base.init(params, key)

    def step(self, state: Any, params: Params, key: jax.Array, t: jax.Array) -> Any:
        z, aggregated, degree = agent_graph_inputs(self.base, state)
        dynamic = self.gdn.sample(z, aggregated, degree, key, self.theta(params))
        return self.base.with_dynamic(state, dynamic)

    def theta(self, params: Params) -> jax.Array | None:
        """The conditioning parameters ``(p,)`` of a parameter-conditioned GDN, else None."""
        names = self.gdn.theta_names
        return jnp.stack([jnp.asarray(params[n], jnp.float32) for n in names]) if names else None

    def observe(self, state: Any, params: Params, t: jax.Array) -> dict[str, jax.Array]:
        return self.base.observe(state, params, t)


__all__ = ["GDNSurrogate"]
