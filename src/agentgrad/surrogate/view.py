"""The agent view: what a model exposes so that a surrogate can learn it agent by agent.

A Graph Diffusion Network (`graph-diffusion-networks-for-abms` §3) models each agent's
next state given its own state and its neighbours', ``Z_{t+1}^i ~ P(. | Z_t^i,
{Z_t^j}_{j in N_t^i})`` (Eq. 1).  A model opts in by implementing three methods:

``agent_features(state) -> (static, dynamic)``
    ``static`` ``(N, s)``: features that never change (kind, colour), one-hot or scaled;
    ``dynamic`` ``(N, d)``: the features the surrogate predicts (phase one-hot, position
    scaled to [-1, 1]), floats.
``neighbour_sum(state, x) -> (N, f)``
    ``sum_{j in N_t^i} x_j`` over the interaction graph of ``state``, for any per-agent
    features ``x`` ``(N, f)``.  This is the GNN's message passing with ``Message(x_j) =
    x_j`` (Table 1); a model computes it with its own spatial structure (cell sums on a
    grid, segment sums on a network), so no edge list of fixed capacity is needed even
    when many agents share a cell.
``with_dynamic(state, dynamic) -> state``
    The state whose dynamic features are ``dynamic`` (decoded: argmax of one-hot
    blocks, positions binned back to cells), with the model's deterministic
    bookkeeping applied (e.g. predator-prey's reserved children).  Used by rollouts.

For evaluation (:mod:`agentgrad.surrogate.evaluate`) a model also declares
``marginals(dynamic) -> {name: (values, n_categories)}`` (integer values per agent;
``n_categories`` for a categorical block, ``None`` for an ordinal coordinate) and
``stochastic_agents(state, params) -> (N,) bool`` (agents whose transition is random;
stored with the ramification data).

``features(model, state)`` concatenates ``[static, dynamic]``, the agent state ``Z``.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import jax
import jax.numpy as jnp

from agentgrad.errors import AgentgradError

METHODS = ("agent_features", "neighbour_sum", "with_dynamic")


@runtime_checkable
class AgentView(Protocol):
    """A model that exposes its agents to a surrogate (module docstring)."""

    def agent_features(self, state: Any) -> tuple[jax.Array, jax.Array]: ...

    def neighbour_sum(self, state: Any, x: jax.Array) -> jax.Array: ...

    def with_dynamic(self, state: Any, dynamic: jax.Array) -> Any: ...


def require_agent_view(model: Any) -> None:
    """A one-line error unless ``model`` implements the agent view."""
    missing = [m for m in METHODS if not callable(getattr(model, m, None))]
    if missing:
        raise AgentgradError(
            f"{type(model).__name__} has no agent view (missing {', '.join(missing)}); "
            "surrogates need a model that implements agentgrad.surrogate.AgentView "
            "(PredatorPrey and SIRNetwork do)"
        )


def features(model: AgentView, state: Any) -> jax.Array:
    """The full agent state ``Z = [static, dynamic]``, ``(N, s + d)``."""
    static, dynamic = model.agent_features(state)
    return jnp.concatenate([static, dynamic], axis=1)


def scale_cells(cell: jax.Array, size: int) -> jax.Array:
    """Cell index ``0 .. size-1`` to ``((cell + 1) / size - 0.5) * 2`` in ``(-1, 1]``; the
    reference code's scaling, which maps "off the grid" (cell -1) to -1."""
    return ((cell.astype(jnp.float32) + 1.0) / size - 0.5) * 2.0


def unscale_cells(value: jax.Array, size: int) -> jax.Array:
    """Inverse of :func:`scale_cells`, rounded to the nearest cell; -1 = off the grid."""
    cell = jnp.round((value * 0.5 + 0.5) * size - 1.0).astype(jnp.int32)
    return jnp.clip(cell, -1, size - 1)
