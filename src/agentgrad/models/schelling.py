"""Schelling's segregation model (`graph-diffusion-networks-for-abms` Appendix B.1,
Algorithm 2; Table 9 defaults: 51 x 51 torus, density 0.75 -> 1950 agents, colours 1:1).

Each agent has a colour and a cell.  Its similarity ``r`` is the fraction of its
Moore neighbours with its colour (``r = 0`` without neighbours).  It is happy when
``r >= threshold`` (the paper's xi).  Each step every unhappy agent tries up to
``max_trials`` random moves:
direction ``theta ~ U(0, 2 pi)``, distance ``d ~ U(0, d_max)``, offset
``(floor(d cos theta), floor(d sin theta))`` on the torus; it moves to the first target
that was empty at the start of the step.  Vectorised: in trial ``k`` all still-unplaced
unhappy agents propose at once, and when several propose the same free cell the one
with the highest random priority takes it (the others keep trying), so two agents never
share a cell.  ``d_max = 5`` and ``max_trials = 10`` are our defaults (the paper does
not state them).

Observables: ``happy`` (number of happy agents) and ``segregation`` (mean similarity).
``happy`` is differentiable w.r.t. ``threshold`` through :func:`agentgrad.soft.less` on the
happiness test (sigmoid tangent, width ``happiness_scale``); relocation is discrete.
"""

from __future__ import annotations

import math
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp

from agentgrad import frames, rng, soft
from agentgrad.engine import Model
from agentgrad.models._checks import require_int
from agentgrad.params import Param, Params, ParamSpace
from agentgrad.spaces.grid import Grid

SCHELLING_PARAMS = ParamSpace(
    {
        "threshold": Param(
            0.625, 0.0, 1.0, None, "tolerance xi: happy when the same-colour fraction >= threshold"
        )
    }
)


class Schelling(Model):
    """Schelling segregation on a torus (see module docstring)."""

    observable_units: ClassVar[dict[str, str]] = {
        "happy": "agents",
        "segregation": "mean share of like neighbours",
    }

    def gradient_warning(self, n_steps: int) -> str | None:
        """The threshold tangent estimates the logistic-smoothed count (tests/test_schelling.py)."""
        return (
            "schelling: E[happy] is piecewise constant in the threshold; the gradient is that "
            "of the logistic-smoothed happy count (validated), not a finite difference of the "
            "raw model, which depends on its step size"
        )

    size: int = eqx.field(static=True, default=51)
    n_agents: int = eqx.field(static=True, default=1950)
    d_max: float = eqx.field(static=True, default=5.0)
    max_trials: int = eqx.field(static=True, default=10)
    happiness_scale: float = eqx.field(static=True, default=0.05)

    def __check_init__(self) -> None:
        require_int("size", self.size, 3)
        require_int("n_agents", self.n_agents, 2, self.size**2 - 1)
        if not self.d_max >= 1 or not isinstance(self.max_trials, int) or self.max_trials < 1:
            raise ValueError("d_max must be >= 1 and max_trials a positive integer")

    @property
    def param_space(self) -> ParamSpace:
        return SCHELLING_PARAMS

    @property
    def grid(self) -> Grid:
        return Grid(self.size, self.size, "moore", 1, periodic=True)

    def init(self, params: Params, key: jax.Array) -> jax.Array:
        """Colour channels ``(2, size, size)``: agents on distinct random cells, colours 1:1."""
        cells = self.size * self.size
        rank = jnp.argsort(jax.random.permutation(key, cells))
        colour_a = rank < self.n_agents // 2
        colour_b = (rank >= self.n_agents // 2) & (rank < self.n_agents)
        return jnp.stack([colour_a, colour_b]).astype(jnp.float32).reshape(2, self.size, -1)

    def frame(self, state: jax.Array) -> jax.Array:
        """Colour A blue, colour B orange, empty white."""
        return frames.paint([(state[0], frames.BLUE), (state[1], frames.ORANGE)])

    def similarity(self, state: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Per cell: same-colour fraction of the occupant's neighbours, and occupancy."""
        same = jnp.sum(state * self.grid.neighbour_sum(state), axis=0)
        occupied = jnp.sum(state, axis=0)
        total = self.grid.neighbour_sum(occupied)
        r = jnp.where(total > 0, same / jnp.maximum(total, 1.0), 0.0)
        return r * occupied, occupied

    def happiness(self, state: jax.Array, params: Params) -> jax.Array:
        r, occupied = self.similarity(state)
        unhappy = soft.less(r, params["threshold"], "sigmoid", self.happiness_scale)
        return occupied * (1.0 - unhappy)

    def step(self, state: jax.Array, params: Params, key: jax.Array, t: jax.Array) -> jax.Array:
        L, cells = self.size, self.size * self.size
        colour = jax.lax.stop_gradient(state).reshape(2, cells)
        occupied = jnp.sum(colour, axis=0) > 0
        happy = jax.lax.stop_gradient(self.happiness(state, params)).reshape(cells)
        movers0 = occupied & (happy == 0.0)
        origin = jnp.arange(cells)
        ox, oy = origin // L, origin % L

        def trial(carry, k):
            claimed, pending, dest = carry
            k_theta, k_dist, k_prio = jax.random.split(k, 3)
            theta = rng.uniform(k_theta, (cells,), maxval=2 * math.pi)
            dist = rng.uniform(k_dist, (cells,), maxval=self.d_max)
            tx = (ox + jnp.floor(dist * jnp.cos(theta)).astype(jnp.int32)) % L
            ty = (oy + jnp.floor(dist * jnp.sin(theta)).astype(jnp.int32)) % L
            target = tx * L + ty
            valid = pending & ~occupied[target] & ~claimed[target]
            priority = jnp.where(valid, rng.uniform(k_prio, (cells,)), -1.0)
            best = jax.ops.segment_max(priority, target, num_segments=cells)
            wins = valid & (priority == best[target])
            claimed = claimed.at[jnp.where(wins, target, cells)].set(True, mode="drop")
            dest = jnp.where(wins, target, dest)
            return (claimed, pending & ~wins, dest), None

        init = (jnp.zeros(cells, bool), movers0, origin)
        (_, _, dest), _ = jax.lax.scan(trial, init, jax.random.split(key, self.max_trials))
        moved = dest != origin
        stay = jnp.where(moved[None], 0.0, colour)
        new = stay.at[:, jnp.where(moved, dest, cells)].add(
            jnp.where(moved[None], colour, 0.0), mode="drop"
        )
        return new.reshape(2, L, L)

    def observe(self, state: jax.Array, params: Params, t: jax.Array) -> dict[str, jax.Array]:
        r, occupied = self.similarity(state)
        return {
            "happy": jnp.sum(self.happiness(state, params)),
            "segregation": jnp.sum(r) / jnp.maximum(jnp.sum(occupied), 1.0),
        }
