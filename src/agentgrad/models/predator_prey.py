"""Predator-prey ecosystem of the GDN paper (`graph-diffusion-networks-for-abms` Appendix
B.2, Algorithm 3, Tables 5-9), with the rules of its reference code
(``fracozzi/ABM-Graph-Diffusion-Network``, ``models/abm/pp_functions.py``).

A fixed pool of ``n_agents`` slots on a ``size x size`` torus; each slot has a kind
(predator or prey), a life phase Unborn / Alive / Pregnant / Dead (held as four one-hot
float channels) and a cell.

Initial state (reference code; Table 9): ``n0 = round(density * size**2)`` agents are
Alive on distinct random cells, the first ``round(predator_share * n0)`` of them
predators; every other slot is Unborn with a uniformly random kind.  (Algorithm 3's
"each agent Alive or Unborn with probability 1/2" contradicts Table 9's density 0.3.)

Reserved children (reference code): every active (Alive or Pregnant) agent holds at
most one reserved Unborn slot of its kind, its next child (``parent[j] = i`` when slot
``j`` is reserved by ``i``).  At the end of every step, slots of agents that died are
released, and active agents without a slot (newborns, parents that just gave birth,
agents that lacked one) receive free Unborn slots of their kind, pairing the agents in
index order with the free slots in index order, until the pool runs out.

Each step, synchronously (Algorithm 3):

* an Alive agent sees whether an active agent of the other kind stands within toroidal
  Manhattan distance 1 (its own cell included, as in the reference; the paper's text says
  the four von Neumann neighbours), and draws die / move / turn pregnant from the row of
  ``Psi`` for its kind and that condition (by :func:`agentgrad.categorical` with the
  model's estimator; rows need not be normalised).  Movers step to a uniformly random
  von Neumann neighbour cell; pregnant agents stay; the dead leave the grid;
* Pregnant becomes Alive and releases its reserved child, if it holds one: the child
  becomes Alive on a uniformly random cell among the parent's cell and its four
  neighbours (the reference's five options; the text says the four neighbours).  One
  child per pregnancy;
* Dead stays Dead; other Unborn slots stay Unborn.

Where the reference's bookkeeping differs in ways that do not change the law of the
counts, we do not copy it: it hands released slots to waiting agents before free ones
(only which slot index a child gets), and when the pool is exhausted its index ``-1``
sentinel revives or moves its last slot (at most one agent).  ``benchmarks/
predator_prey_reference.py`` runs the reference; ``tests/test_predator_prey.py`` compares
the mean trajectories for Psi_1 ... Psi_4 (``tests/data/predator_prey_reference.csv``).

The 12 stochastic entries of ``Psi`` are the parameters, named
``{predator,prey}_{with,without}_{die,move,pregnant}`` ("with" = an opposite-kind
neighbour is present); presets ``psi1`` ... ``psi4`` are Tables 5-8 (defaults: ``psi1``).
Gradients flow through the categorical draws (estimator tangent), and births through the
parent's Pregnant channel, so a parameter change that makes a parent pregnant also
carries its child's birth.

Observables: ``predators`` and ``prey``, the numbers of active (Alive or Pregnant) agents.
"""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from agentgrad import frames
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


def assign_slots(kind: jax.Array, parent: jax.Array, active: jax.Array, unborn: jax.Array):
    """Reserve a free Unborn slot of its kind for every active agent that holds none.

    ``parent[j]`` is the agent that reserved Unborn slot ``j`` (-1: free).  Links of slots
    that are no longer Unborn, or whose holder is no longer active, are dropped first.
    Waiting agents and free slots are paired per kind in index order, until the free
    slots run out (the reference's ``update_parental``).
    """
    N = kind.shape[0]
    idx = jnp.arange(N, dtype=jnp.int32)
    holder = jnp.maximum(parent, 0)
    parent = jnp.where(unborn & (parent >= 0) & active[holder], parent, -1)
    reserved = unborn & (parent >= 0)
    holds = jnp.zeros(N, jnp.int32).at[jnp.where(reserved, parent, N)].add(1, mode="drop")
    waiting = active & (holds == 0)
    free = unborn & (parent < 0)
    for k in (0, 1):
        slots = jnp.nonzero(free & (kind == k), size=N, fill_value=N)[0]
        mine = waiting & (kind == k)
        rank = jnp.cumsum(mine.astype(jnp.int32)) - 1
        target = jnp.where(mine, slots[jnp.clip(rank, 0, N - 1)], N)
        parent = parent.at[target].set(idx, mode="drop")  # target N: none left / not mine
    return parent


class PredatorPreyState(eqx.Module):
    """Kind (0 predator, 1 prey), phase channels ``(4, N)``, cell, and for Unborn slots
    the active agent that reserved them (``parent``, -1 = free)."""

    kind: jax.Array  # (N,) int32
    phase: jax.Array  # (4, N) one-hot float: unborn, alive, pregnant, dead
    x: jax.Array  # (N,) int32
    y: jax.Array  # (N,) int32
    parent: jax.Array  # (N,) int32: holder of an Unborn slot, -1 = free


class PredatorPrey(Model):
    """Predator-prey with reserved children, the GDN reference's rules (module docstring)."""

    observable_units: ClassVar[dict[str, str]] = {"predators": "agents", "prey": "agents"}

    def gradient_warning(self, n_steps: int) -> str | None:
        """Stochastic derivatives: unbiased against finite differences over 8 steps
        (16x16, 512 slots, 1024 runs: |z| < 1).  Straight-through: cross-kind effects are
        exactly 0 and own-kind entries 19-35% off (|z| up to 5.6, 128 runs)."""
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
            "whom); own-kind entries are biased by 19-35% over 8 steps (16x16 grid, 512 "
            "slots); use --estimator sad for unbiased gradients"
        )

    size: int = eqx.field(static=True, default=32)
    n_agents: int = eqx.field(static=True, default=2048)
    density: float = eqx.field(static=True, default=0.3)
    predator_share: float = eqx.field(static=True, default=0.5)
    estimator: Estimator = StraightThrough()

    def __check_init__(self) -> None:
        require_int("size", self.size, 3)
        require_int("n_agents", self.n_agents, 2)
        for name in ("density", "predator_share"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and 0.0 <= value <= 1.0):
                raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
        n0, _ = self.initial_counts()
        if n0 > self.n_agents:
            raise ValueError(
                f"density {self.density} puts {n0} agents on the {self.size}x{self.size} grid "
                f"but n_agents is {self.n_agents}; raise n_agents or lower density"
            )

    @property
    def param_space(self) -> ParamSpace:
        return PREDATOR_PREY_PARAMS

    @property
    def grid(self) -> Grid:
        return Grid(self.size, self.size, "von_neumann", 1, periodic=True)

    def init(self, params: Params, key: jax.Array) -> PredatorPreyState:
        N, L = self.n_agents, self.size
        n0, n_pred = self.initial_counts()
        k_kind, k_cell = jax.random.split(key)
        idx = jnp.arange(N)
        random_kind = jax.random.bernoulli(k_kind, 0.5, (N,)).astype(jnp.int32)
        # 0 predator, 1 prey; Unborn slots of random kind
        kind = jnp.where(idx < n0, (idx >= n_pred).astype(jnp.int32), random_kind)
        cells = jax.random.permutation(k_cell, L * L)[:n0]  # distinct cells
        cell = jnp.zeros(N, jnp.int32).at[:n0].set(cells.astype(jnp.int32))
        alive = idx < n0
        phase = jax.nn.one_hot(jnp.where(alive, ALIVE, UNBORN), 4, axis=0, dtype=real_dtype())
        parent = assign_slots(kind, jnp.full(N, -1, jnp.int32), alive, ~alive)
        return PredatorPreyState(kind=kind, phase=phase, x=cell % L, y=cell // L, parent=parent)

    def initial_counts(self) -> tuple[int, int]:
        """``(n0, predators)``: agents Alive at t = 0 and how many of them are predators."""
        n0 = round(self.density * self.size**2)
        return n0, round(self.predator_share * n0)

    def psi(self, params: Params) -> jax.Array:
        """``Psi`` as a ``(kind, condition, outcome)`` array (2, 2, 3)."""
        return jnp.stack([params[n] for n in psi_names()]).reshape(2, 2, 3)

    def opposite_neighbour(self, s: PredatorPreyState) -> jax.Array:
        """Per agent: is an active agent of the other kind within Manhattan distance 1?"""
        L = self.size
        active = jax.lax.stop_gradient(s.phase[ALIVE] + s.phase[PREGNANT])
        counts = jnp.zeros((2, L, L), real_dtype()).at[s.kind, s.x, s.y].add(active)
        near = counts + self.grid.neighbour_sum(counts)  # own cell + 4 neighbours, per kind
        return near[1 - s.kind, s.x, s.y] > 0

    def step(
        self, s: PredatorPreyState, params: Params, key: jax.Array, t: jax.Array
    ) -> PredatorPreyState:
        N, L = self.n_agents, self.size
        k_draw, k_move, k_birth = jax.random.split(key, 3)
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
        # positions: movers to a random neighbour cell, newborns to the parent's cell or
        # one of its neighbours
        offsets = jnp.array([[1, 0], [-1, 0], [0, 1], [0, -1], [0, 0]], jnp.int32)
        step_move = offsets[jax.random.randint(k_move, (N,), 0, 4)]
        step_birth = offsets[jax.random.randint(k_birth, (N,), 0, 5)]
        moving = jax.lax.stop_gradient(alive * move) > 0
        birthing = jax.lax.stop_gradient(born) > 0
        x = jnp.where(moving, (s.x + step_move[:, 0]) % L, s.x)
        y = jnp.where(moving, (s.y + step_move[:, 1]) % L, s.y)
        x = jnp.where(birthing, (s.x[parent] + step_birth[:, 0]) % L, x)
        y = jnp.where(birthing, (s.y[parent] + step_birth[:, 1]) % L, y)
        hard = jax.lax.stop_gradient(phase) > 0
        new_parent = assign_slots(s.kind, s.parent, hard[ALIVE] | hard[PREGNANT], hard[UNBORN])
        return eqx.tree_at(lambda z: (z.phase, z.x, z.y, z.parent), s, (phase, x, y, new_parent))

    # ------------------------------------------------------------------ agent view
    # (agentgrad.surrogate.view; the GDN reference's PredPreyFeaturizer)

    def agent_features(self, s: PredatorPreyState) -> tuple[jax.Array, jax.Array]:
        """Static: kind one-hot (predator, prey).  Dynamic: phase one-hot (unborn, alive,
        pregnant, dead) and the cell scaled to (-1, 1] (-1 when not on the grid)."""
        from agentgrad.surrogate.view import scale_cells

        on_grid = jax.lax.stop_gradient(s.phase[ALIVE] + s.phase[PREGNANT]) > 0
        pos = [scale_cells(jnp.where(on_grid, c, -1), self.size) for c in (s.x, s.y)]
        static = jax.nn.one_hot(s.kind, 2, dtype=real_dtype())
        return static, jnp.concatenate([s.phase.T, jnp.stack(pos, 1).astype(real_dtype())], 1)

    def neighbour_sum(self, s: PredatorPreyState, x: jax.Array) -> jax.Array:
        """Sum of ``x`` over the interaction graph of the reference's featurizer: active
        agents within Manhattan distance 1 of an active agent (own cell included, the
        agent itself excluded), and a reserved Unborn slot's holder."""
        L = self.size
        on_grid = jax.lax.stop_gradient(s.phase[ALIVE] + s.phase[PREGNANT]) > 0
        mine = jnp.where(on_grid[:, None], x, 0.0)
        cells = jnp.zeros((x.shape[1], L, L), x.dtype).at[:, s.x, s.y].add(mine.T)
        near = (cells + self.grid.neighbour_sum(cells))[:, s.x, s.y].T - mine
        spatial = jnp.where(on_grid[:, None], near, 0.0)
        reserved = (s.parent >= 0)[:, None]
        return spatial + jnp.where(reserved, x[jnp.maximum(s.parent, 0)], 0.0)

    def with_dynamic(self, s: PredatorPreyState, dynamic: jax.Array) -> PredatorPreyState:
        """Decode predicted dynamic features: phase = argmax (straight-through, so
        gradients reach the prediction), cell = nearest bin; then the reserved-children
        bookkeeping of a step."""
        from agentgrad.surrogate.view import unscale_cells

        p = dynamic[:, :4]
        hard = jax.nn.one_hot(jnp.argmax(p, axis=1), 4, dtype=p.dtype)
        phase = (hard + p - jax.lax.stop_gradient(p)).T
        x, y = (jnp.maximum(unscale_cells(dynamic[:, 4 + i], self.size), 0) for i in (0, 1))
        h = hard.T > 0
        parent = assign_slots(s.kind, s.parent, h[ALIVE] | h[PREGNANT], h[UNBORN])
        return PredatorPreyState(kind=s.kind, phase=phase, x=x, y=y, parent=parent)

    def marginals(self, dynamic) -> dict:
        """For surrogate evaluation: the phase as a 4-category marginal (App. C.4)."""
        return {"phase": (np.asarray(dynamic)[..., :4].argmax(-1), 4)}

    def stochastic_agents(self, s: PredatorPreyState, params: Params) -> jax.Array:
        """Agents whose next phase is drawn (Alive); the others follow fixed rules."""
        return s.phase[ALIVE] > 0

    def frame(self, s: PredatorPreyState) -> jax.Array:
        """Cells painted by their active agents: predators orange, prey green."""
        active = s.phase[ALIVE] + s.phase[PREGNANT]
        prey = (s.kind == 1).astype(active.dtype)
        L = self.size
        return frames.paint(
            [
                (frames.cell_counts(s.x, s.y, active * (1.0 - prey), L, L), frames.ORANGE),
                (frames.cell_counts(s.x, s.y, active * prey, L, L), frames.GREEN),
            ]
        )

    def observe(self, s: PredatorPreyState, params: Params, t: jax.Array) -> dict[str, jax.Array]:
        active = s.phase[ALIVE] + s.phase[PREGNANT]
        prey = (s.kind == 1).astype(real_dtype())
        return {"predators": jnp.sum(active * (1.0 - prey)), "prey": jnp.sum(active * prey)}
