"""Predator-prey ecosystem (`graph-diffusion-networks-for-abms` Appendix B.2, Algorithm 3,
Tables 5-8; after Tang et al. 2022 and Wilensky's NetLogo wolf-sheep model).

A fixed capacity of ``n_agents`` agents on a ``size x size`` torus; each has a kind (prey
or predator, uniform), a life phase Unborn / Alive / Pregnant / Dead (held as four one-hot
float channels) and a cell.  Initially each agent is Alive or Unborn with probability 1/2;
an Unborn agent gets a parent: a uniformly drawn Alive agent of its kind.  Each step,
synchronously (Algorithm 3):

* an Alive agent sees whether an Alive or Pregnant agent of the other kind is in one of
  its four von Neumann neighbour cells, and draws die / move / turn pregnant from the row
  of ``Psi`` for its kind and that condition (by :func:`agentgrad.categorical` with the
  model's estimator; rows need not be normalised).  Movers step to a uniformly random
  neighbour cell; pregnant agents stay; the dead leave the grid;
* Pregnant becomes Alive; Dead stays Dead;
* Unborn becomes Alive, on a uniformly random neighbour cell of its parent, when the
  parent is Pregnant (several children of one parent are born together); otherwise
  it stays Unborn.  An Unborn agent's parent is always Alive or Pregnant (B.2): when it
  dies the child is assigned a new uniformly drawn active parent of its kind.

The 12 stochastic entries of ``Psi`` are the parameters, named
``{predator,prey}_{with,without}_{die,move,pregnant}`` ("with" = an opposite-kind
neighbour is present); presets ``psi1`` ... ``psi4`` are Tables 5-8 (defaults: ``psi1``).
Gradients flow through the categorical draws (estimator tangent), and births through the
parent's Pregnant channel, so a parameter change that makes a parent pregnant also
carries its children's births.

Observables: ``predators`` and ``prey``, the numbers of active (Alive or Pregnant) agents.
"""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp

from agentgrad.engine import Model
from agentgrad.estimators import Estimator, StraightThrough
from agentgrad.models._checks import require_int
from agentgrad.params import Param, Params, ParamSpace, real_dtype
from agentgrad.sampling import categorical
from agentgrad.spaces.grid import Grid

KINDS = ("predator", "prey")
CONDITIONS = ("with", "without")
OUTCOMES = ("die", "move", "pregnant")
UNBORN, ALIVE, PREGNANT, DEAD = range(4)

#: Tables 5-8: rows (predator with prey, predator without, prey with predator, prey without)
PRESETS: dict[str, tuple[tuple[float, float, float], ...]] = {
    "psi1": ((0.15, 0.45, 0.40), (0.25, 0.55, 0.20), (0.30, 0.45, 0.25), (0.15, 0.40, 0.45)),
    "psi2": ((0.35, 0.45, 0.20), (0.25, 0.60, 0.15), (0.45, 0.50, 0.05), (0.35, 0.35, 0.30)),
    "psi3": ((0.15, 0.30, 0.55), (0.30, 0.55, 0.15), (0.70, 0.20, 0.10), (0.10, 0.40, 0.50)),
    "psi4": ((0.15, 0.35, 0.50), (0.25, 0.45, 0.30), (0.45, 0.40, 0.15), (0.30, 0.40, 0.30)),
}


def psi_names() -> list[str]:
    """Parameter names in row order (kind, condition) and column order (outcome)."""
    return [f"{k}_{c}_{o}" for k in KINDS for c in CONDITIONS for o in OUTCOMES]


def preset(name: str) -> dict[str, float]:
    """The parameter values of preset ``psi1`` ... ``psi4`` (Tables 5-8)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    values = [p for row in PRESETS[name] for p in row]
    return dict(zip(psi_names(), values, strict=True))


PREDATOR_PREY_PARAMS = ParamSpace(
    {
        name: Param(value, 0.0, 1.0, None, "Psi entry: " + name.replace("_", " "))
        for name, value in preset("psi1").items()
    }
)


def draw_parents(key: jax.Array, kind: jax.Array, active: jax.Array) -> jax.Array:
    """For every agent, a uniformly drawn ``active`` agent of its kind (-1 if none)."""
    N = kind.shape[0]
    order = jnp.argsort(2 * kind + (~active).astype(jnp.int32), stable=True)
    n_active = jnp.stack([jnp.sum(active & (kind == k)) for k in (0, 1)]).astype(jnp.int32)
    start = jnp.stack([jnp.int32(0), jnp.sum(kind == 0).astype(jnp.int32)])
    u = jax.random.uniform(key, (N,))
    pick = start[kind] + jnp.floor(u * n_active[kind].astype(real_dtype())).astype(jnp.int32)
    return jnp.where(n_active[kind] > 0, order[jnp.clip(pick, 0, N - 1)], -1).astype(jnp.int32)


class PredatorPreyState(eqx.Module):
    """Kind (0 predator, 1 prey), phase channels ``(4, N)``, cell, parent."""

    kind: jax.Array  # (N,) int32
    phase: jax.Array  # (4, N) one-hot float: unborn, alive, pregnant, dead
    x: jax.Array  # (N,) int32
    y: jax.Array  # (N,) int32
    parent: jax.Array  # (N,) int32, -1 = none


class PredatorPrey(Model):
    """Predator-prey with birth through parent links (see module docstring)."""

    observable_units: ClassVar[dict[str, str]] = {"predators": "agents", "prey": "agents"}

    def gradient_warning(self, n_steps: int) -> str | None:
        """Validated: own-kind Psi entries over 8 steps (straight-through)."""
        from agentgrad.stochad import StochasticDerivative

        if isinstance(self.estimator, StochasticDerivative):
            return (
                None
                if n_steps <= 8
                else (
                    f"predator-prey: stochastic-derivative gradients are validated over 8 steps, "
                    f"not {n_steps}; check with `agentgrad gradcheck predator-prey`"
                )
            )
        return (
            f"predator-prey: with {type(self.estimator).__name__} the effect of one kind's "
            "Psi entries on the other kind is exactly 0 (it acts through who stands next to "
            "whom); own-kind entries are validated over 8 steps (relative error 5-28%); use "
            "--estimator sad for cross-kind effects"
        )

    size: int = eqx.field(static=True, default=32)
    n_agents: int = eqx.field(static=True, default=2048)
    estimator: Estimator = StraightThrough()

    def __check_init__(self) -> None:
        require_int("size", self.size, 3)
        require_int("n_agents", self.n_agents, 2)

    @property
    def param_space(self) -> ParamSpace:
        return PREDATOR_PREY_PARAMS

    @property
    def grid(self) -> Grid:
        return Grid(self.size, self.size, "von_neumann", 1, periodic=True)

    def init(self, params: Params, key: jax.Array) -> PredatorPreyState:
        N, L = self.n_agents, self.size
        k_kind, k_phase, k_x, k_y, k_parent = jax.random.split(key, 5)
        kind = jax.random.bernoulli(k_kind, 0.5, (N,)).astype(jnp.int32)
        alive = jax.random.bernoulli(k_phase, 0.5, (N,))
        parent = jnp.where(alive, -1, draw_parents(k_parent, kind, alive))
        phase = jax.nn.one_hot(jnp.where(alive, ALIVE, UNBORN), 4, axis=0, dtype=real_dtype())
        return PredatorPreyState(
            kind=kind,
            phase=phase,
            x=jax.random.randint(k_x, (N,), 0, L),
            y=jax.random.randint(k_y, (N,), 0, L),
            parent=parent.astype(jnp.int32),
        )

    def psi(self, params: Params) -> jax.Array:
        """``Psi`` as a ``(kind, condition, outcome)`` array (2, 2, 3)."""
        return jnp.stack([params[n] for n in psi_names()]).reshape(2, 2, 3)

    def opposite_neighbour(self, s: PredatorPreyState) -> jax.Array:
        """Per agent: is an active agent of the other kind in a von Neumann neighbour cell?"""
        L = self.size
        active = jax.lax.stop_gradient(s.phase[ALIVE] + s.phase[PREGNANT])
        counts = jnp.zeros((2, L, L), real_dtype()).at[s.kind, s.x, s.y].add(active)
        near = self.grid.neighbour_sum(counts)  # (2, L, L) per kind
        return near[1 - s.kind, s.x, s.y] > 0

    def step(
        self, s: PredatorPreyState, params: Params, key: jax.Array, t: jax.Array
    ) -> PredatorPreyState:
        N, L = self.n_agents, self.size
        k_draw, k_move, k_birth, k_parent = jax.random.split(key, 4)
        condition = jnp.where(self.opposite_neighbour(s), 0, 1)
        probs = self.psi(params)[s.kind, condition]  # (N, 3)
        outcome = categorical(k_draw, probs, self.estimator)  # (N, 3) die, move, pregnant
        die, move, pregnant = outcome[:, 0], outcome[:, 1], outcome[:, 2]
        unborn, alive, preg, dead = s.phase
        has_parent = s.parent >= 0
        parent = jnp.maximum(s.parent, 0)
        born = unborn * jnp.where(has_parent, preg[parent], 0.0)
        phase = jnp.stack(
            [
                unborn - born,
                alive * move + preg + born,
                alive * pregnant,
                dead + alive * die,
            ]
        )
        # positions: movers to a random neighbour of their cell, newborns next to the parent
        offsets = jnp.array([[1, 0], [-1, 0], [0, 1], [0, -1]], jnp.int32)
        step_move = offsets[jax.random.randint(k_move, (N,), 0, 4)]
        step_birth = offsets[jax.random.randint(k_birth, (N,), 0, 4)]
        moving = jax.lax.stop_gradient(alive * move) > 0
        birthing = jax.lax.stop_gradient(born) > 0
        x = jnp.where(moving, (s.x + step_move[:, 0]) % L, s.x)
        y = jnp.where(moving, (s.y + step_move[:, 1]) % L, s.y)
        x = jnp.where(birthing, (s.x[parent] + step_birth[:, 0]) % L, x)
        y = jnp.where(birthing, (s.y[parent] + step_birth[:, 1]) % L, y)
        # an Unborn agent whose parent is no longer active is assigned a new active parent
        active = jax.lax.stop_gradient(phase[ALIVE] + phase[PREGNANT]) > 0
        still_unborn = jax.lax.stop_gradient(phase[UNBORN]) > 0
        orphan = still_unborn & ~(has_parent & active[parent])
        new_parent = jnp.where(orphan, draw_parents(k_parent, s.kind, active), s.parent)
        return eqx.tree_at(lambda z: (z.phase, z.x, z.y, z.parent), s, (phase, x, y, new_parent))

    def observe(self, s: PredatorPreyState, params: Params, t: jax.Array) -> dict[str, jax.Array]:
        active = s.phase[ALIVE] + s.phase[PREGNANT]
        prey = (s.kind == 1).astype(real_dtype())
        return {"predators": jnp.sum(active * (1.0 - prey)), "prey": jnp.sum(active * prey)}
