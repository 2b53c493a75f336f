"""Models assembled from substeps (`flame-framework-for-learning-in-abms` §3.2-3.3).

A step of an agent-based model is an ordered list of *substeps*; each substep runs

    observation = observe(state, params, t)
    action      = policy(observation, state, params, key, t)
    updates     = transition(state, action, params, key, t)     # {field: new value}
    state       = state with ``updates`` written in

so the agents' perception, decision and the resulting change of the shared state are
three small pure functions, any of which may be the identity (the defaults).  A substep
is an :class:`equinox.Module`, so it may carry arrays, per-agent parameter arrays and
neural networks (trainable with :func:`agentgrad.train`).

:class:`SubstepModel` is a :class:`~agentgrad.engine.Model` whose ``step`` runs its
``substeps`` in order.  Substep ``k`` of a step gets key ``split(step_key, n)[k]``
(``n`` substeps); its policy and transition share that key, so a substep that draws in
both must split it.  Replacing a substep (:meth:`SubstepModel.with_substep`) keeps the
other substeps' keys, hence their draws.  The state is a dict of arrays or an
equinox module; a substep that writes a field the state does not have, or a value of
another shape, is stopped with a one-line :class:`~agentgrad.errors.AgentgradError`
when the step is traced.

Substeps may declare parameters of their own (``param_space``); the model's
``param_space`` is its ``own_params`` followed by those of its substeps.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp

from agentgrad.engine import Model, State
from agentgrad.errors import AgentgradError
from agentgrad.params import Params, ParamSpace


class Substep(eqx.Module):
    """One substep: ``observe`` -> ``policy`` -> ``transition`` (each overridable).

    ``name`` identifies the substep inside a model (``with_substep``, error messages).
    """

    name: ClassVar[str] = "substep"
    param_space: ClassVar[ParamSpace] = ParamSpace()

    def observe(self, state: State, params: Params, t: jax.Array) -> Any:
        """What the agents perceive (default: the whole state)."""
        return state

    def policy(self, observation: Any, state: State, params: Params, key: jax.Array, t) -> Any:
        """The agents' decision from their observation (default: the observation)."""
        return observation

    def transition(
        self, state: State, action: Any, params: Params, key: jax.Array, t: jax.Array
    ) -> Mapping[str, jax.Array]:
        """The state fields this substep changes, ``{name: new value}`` (default: none)."""
        return {}

    def __call__(self, state: State, params: Params, key: jax.Array, t: jax.Array) -> State:
        action = self.policy(self.observe(state, params, t), state, params, key, t)
        return write_fields(state, self.transition(state, action, params, key, t), self.name)


def state_fields(state: State) -> dict[str, Any]:
    """The named fields of a state (a dict or a dataclass such as an equinox module)."""
    if isinstance(state, Mapping):
        return dict(state)
    if dataclasses.is_dataclass(state):
        return {f.name: getattr(state, f.name) for f in dataclasses.fields(state)}
    raise AgentgradError(
        f"a substep model's state must be a dict or an equinox module, got {type(state).__name__}"
    )


def write_fields(state: State, updates: Mapping[str, jax.Array], who: str = "substep") -> State:
    """``state`` with ``updates`` written in, after checking each name and shape."""
    if not isinstance(updates, Mapping):
        raise AgentgradError(
            f"substep {who!r}: transition must return a dict of state fields, "
            f"got {type(updates).__name__}"
        )
    if not updates:
        return state
    current = state_fields(state)
    for name, value in updates.items():
        if name not in current:
            raise AgentgradError(
                f"substep {who!r} writes state field {name!r}, which the state does not "
                f"have; fields are: {', '.join(current)}"
            )
        old, new = jnp.asarray(current[name]), jnp.asarray(value)
        if old.shape != new.shape:
            raise AgentgradError(
                f"substep {who!r} writes state field {name!r} with shape {new.shape}, "
                f"but the field has shape {old.shape}; fix the substep's output shape"
            )
        if old.dtype != new.dtype:
            raise AgentgradError(
                f"substep {who!r} writes state field {name!r} as {new.dtype}, but the field "
                f"is {old.dtype}; cast the value (.astype({old.dtype}))"
            )
    if isinstance(state, Mapping):
        return {**state, **updates}
    names = tuple(updates)
    return eqx.tree_at(
        lambda s: tuple(getattr(s, n) for n in names), state, tuple(updates[n] for n in names)
    )


class SubstepModel(Model):
    """A model whose step is its ``substeps`` run in order.

    Subclasses set ``substeps`` (a tuple of :class:`Substep`) and implement ``init``,
    ``observe`` and, where the model has parameters of its own, ``own_params``.
    """

    substeps: tuple[Substep, ...]
    own_params: ClassVar[ParamSpace] = ParamSpace()

    def __check_init__(self) -> None:
        names = [s.name for s in self.substeps]
        if len(set(names)) != len(names):
            raise AgentgradError(f"substep names must be unique, got {names}")

    @property
    def param_space(self) -> ParamSpace:
        merged = dict(self.own_params.params)
        for sub in self.substeps:
            for name, param in sub.param_space.params.items():
                if name in merged and merged[name] != param:
                    raise AgentgradError(
                        f"substep {sub.name!r} declares parameter {name!r} differently "
                        "from the model or an earlier substep; give it another name"
                    )
                merged[name] = param
        return ParamSpace(merged)

    def step(self, state: State, params: Params, key: jax.Array, t: jax.Array) -> State:
        keys = jax.random.split(key, len(self.substeps))
        for k, sub in enumerate(self.substeps):  # a few substeps, unrolled at trace time
            state = sub(state, params, keys[k], t)
        return state

    def substep(self, name: str) -> Substep:
        """The substep called ``name``."""
        for sub in self.substeps:
            if sub.name == name:
                return sub
        raise AgentgradError(
            f"no substep named {name!r}; substeps are: {', '.join(s.name for s in self.substeps)}"
        )

    def with_substep(self, name: str, new: Substep) -> SubstepModel:
        """A copy of the model with substep ``name`` replaced by ``new`` (same position,
        same key)."""
        position = [s.name for s in self.substeps].index(self.substep(name).name)
        substeps = self.substeps[:position] + (new,) + self.substeps[position + 1 :]
        if [s.name for s in substeps].count(new.name) > 1:
            raise AgentgradError(f"the model already has a substep named {new.name!r}")
        return eqx.tree_at(lambda m: m.substeps, self, substeps)


__all__ = ["Substep", "SubstepModel", "state_fields", "write_fields"]
