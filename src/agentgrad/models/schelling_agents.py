"""Schelling's segregation model with individual agents, as in the GDN paper's reference
code (`graph-diffusion-networks-for-abms` §4.1, App. B.1;
``fracozzi/ABM-Graph-Diffusion-Network``, ``models/abm/schelling.py``).

``n_agents = int(density * 51**2)`` agents (1950 at density 0.75) have a colour (0 or 1,
uniformly random) and integer coordinates ``x, y`` in ``[-25, 25]``, starting uniformly
in ``[-25, 24]`` (the reference's ``randint``); several agents may share a cell.  Each
step, synchronously from the previous state:

* an agent's neighbours are the other agents on its own cell or on one of the four
  von Neumann cells; along each axis the 51 values form a cycle (25 and -25 adjacent);
* an agent with at least one neighbour is unhappy when the fraction of neighbours of
  its colour is below ``threshold`` (xi); an agent without neighbours never moves;
* an unhappy agent draws a heading ``U(0, 2 pi)`` and a distance ``U(0, d_max)``
  (``d_max = 25``), rounds the target (half to even) and wraps it with period 50
  (``x > 25 -> x - 50``, ``x < -25 -> x + 50``); it takes the first of ``max_trials``
  (100) targets that differ from its own cell.  There is no occupancy check.

Where the paper's text differs (Moore neighbourhood in the rule, isolated agents
unhappy, moves only to empty cells, ``floor``, a 51 x 51 uniform start; digest §C.6 rows
2-5) we follow the code.  Our grid-based :class:`~agentgrad.models.Schelling` is the
text's one-agent-per-cell version.

Observables: ``happy`` (agents that do not want to move: isolated, or like-coloured
fraction >= xi; differentiable in ``threshold`` through :func:`agentgrad.soft.less` with
width ``happiness_scale``) and ``segregation`` (mean like-coloured fraction over agents
with neighbours).
"""

from __future__ import annotations

import math
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from agentgrad import frames, rng, soft
from agentgrad.engine import Model
from agentgrad.models._checks import require_int
from agentgrad.params import Param, Params, ParamSpace, real_dtype

HALF = 25  # coordinates in [-HALF, HALF]
SIDE = 2 * HALF + 1

SCHELLING_AGENTS_PARAMS = ParamSpace(
    {
        "threshold": Param(
            0.625, 0.0, 1.0, None, "tolerance xi: unhappy when the like fraction < threshold"
        )
    }
)

#: the paper's three settings (its code labels 0.75 "xi3" and 0.875 "xi2")
XI = {"xi1": 0.625, "xi2": 0.75, "xi3": 0.875}


class SchellingAgentsState(eqx.Module):
    """Colour (0/1) and coordinates in ``[-25, 25]`` per agent."""

    colour: jax.Array  # (N,) int32
    x: jax.Array  # (N,) int32
    y: jax.Array  # (N,) int32


def wrap(v: jax.Array) -> jax.Array:
    """The reference's ``toroid``: period 50 beyond [-25, 25]."""
    return jnp.where(v > HALF, v - 2 * HALF, jnp.where(v < -HALF, v + 2 * HALF, v))


class SchellingAgents(Model):
    """Agent-level Schelling with the GDN reference code's rules (module docstring)."""

    observable_units: ClassVar[dict[str, str]] = {
        "happy": "agents",
        "segregation": "mean share of like neighbours",
    }

    density: float = eqx.field(static=True, default=0.75)
    d_max: float = eqx.field(static=True, default=25.0)
    max_trials: int = eqx.field(static=True, default=100)
    happiness_scale: float = eqx.field(static=True, default=0.05)

    def __check_init__(self) -> None:
        if not (isinstance(self.density, int | float) and 0 < self.density <= 1):
            raise ValueError(f"density must be in (0, 1], got {self.density!r}")
        if not self.n_agents >= 2:
            raise ValueError(f"density {self.density} gives fewer than 2 agents")
        require_int("max_trials", self.max_trials, 1)
        if not (isinstance(self.d_max, int | float) and self.d_max > 0):
            raise ValueError(f"d_max must be positive, got {self.d_max!r}")

    @property
    def n_agents(self) -> int:
        return int(self.density * SIDE**2)

    @property
    def param_space(self) -> ParamSpace:
        return SCHELLING_AGENTS_PARAMS

    def init(self, params: Params, key: jax.Array) -> SchellingAgentsState:
        kx, ky, kc = jax.random.split(key, 3)
        n = self.n_agents
        return SchellingAgentsState(
            colour=jax.random.bernoulli(kc, 0.5, (n,)).astype(jnp.int32),
            x=jax.random.randint(kx, (n,), -HALF, HALF),
            y=jax.random.randint(ky, (n,), -HALF, HALF),
        )

    def _cells(self, s: SchellingAgentsState, values: jax.Array) -> jax.Array:
        """Per cell ``(f, 51, 51)`` sums of per-agent ``values`` ``(N, f)``."""
        grid = jnp.zeros((values.shape[1], SIDE, SIDE), values.dtype)
        return grid.at[:, s.x + HALF, s.y + HALF].add(values.T)

    def neighbour_counts(self, s: SchellingAgentsState) -> tuple[jax.Array, jax.Array]:
        """``(like, total)`` neighbours per agent: own cell and the 4 von Neumann cells on
        the 51-cycle in each axis, the agent itself excluded."""
        onehot = jax.nn.one_hot(s.colour, 2, dtype=real_dtype())
        cells = self._cells(s, onehot)
        near = cells + sum(jnp.roll(cells, shift, axis) for axis in (1, 2) for shift in (1, -1))
        mine = near[:, s.x + HALF, s.y + HALF].T - onehot  # (N, 2)
        return jnp.sum(mine * onehot, axis=1), jnp.sum(mine, axis=1)

    def unhappiness(self, s: SchellingAgentsState, params: Params) -> jax.Array:
        """1 for agents that want to move (smooth in ``threshold``, exact forward)."""
        like, total = self.neighbour_counts(s)
        r = like / jnp.maximum(total, 1.0)
        below = soft.less(r, params["threshold"], "sigmoid", self.happiness_scale)
        return jnp.where(total > 0, below, 0.0)

    def step(
        self, s: SchellingAgentsState, params: Params, key: jax.Array, t: jax.Array
    ) -> SchellingAgentsState:
        n, trials = s.x.shape[0], self.max_trials
        k_heading, k_dist = jax.random.split(key)
        heading = rng.uniform(k_heading, (trials, n), maxval=2 * math.pi)
        dist = self.d_max * rng.uniform(k_dist, (trials, n))
        fx, fy = s.x.astype(dist.dtype), s.y.astype(dist.dtype)
        tx = wrap(jnp.round(fx + dist * jnp.cos(heading)).astype(jnp.int32))
        ty = wrap(jnp.round(fy + dist * jnp.sin(heading)).astype(jnp.int32))
        differs = (tx != s.x) | (ty != s.y)
        first = jnp.argmax(differs, axis=0)  # first trial that leaves the cell
        found = jnp.any(differs, axis=0)
        idx = jnp.arange(n)
        moves = (jax.lax.stop_gradient(self.unhappiness(s, params)) > 0) & found
        x = jnp.where(moves, tx[first, idx], s.x)
        y = jnp.where(moves, ty[first, idx], s.y)
        return SchellingAgentsState(s.colour, x, y)

    def frame(self, s: SchellingAgentsState) -> jax.Array:
        """Each cell coloured by its agents' shares: colour 0 blue, colour 1 orange."""
        rows, cols = s.y + HALF, s.x + HALF
        one = (s.colour == 1).astype(jnp.float32)
        a = frames.cell_counts(rows, cols, 1.0 - one, SIDE, SIDE)
        b = frames.cell_counts(rows, cols, one, SIDE, SIDE)
        return frames.paint([(a, frames.BLUE), (b, frames.ORANGE)])  # shares of each cell

    def observe(self, s: SchellingAgentsState, params: Params, t: jax.Array):
        like, total = self.neighbour_counts(s)
        has = total > 0
        r = like / jnp.maximum(total, 1.0)
        return {
            "happy": jnp.sum(1.0 - self.unhappiness(s, params)),
            "segregation": jnp.sum(jnp.where(has, r, 0.0))
            / jnp.maximum(jnp.sum(has.astype(r.dtype)), 1.0),
        }

    # ------------------------------------------------------------------ agent view
    # (agentgrad.surrogate.view; the GDN reference's SchellingFeaturizer)

    def agent_features(self, s: SchellingAgentsState) -> tuple[jax.Array, jax.Array]:
        """Static: colour one-hot (colour 1, colour 0).  Dynamic: ``(x, y) / 25``."""
        static = jax.nn.one_hot(1 - s.colour, 2, dtype=real_dtype())
        dynamic = jnp.stack([s.x, s.y], 1).astype(real_dtype()) / HALF
        return static, dynamic

    def neighbour_sum(self, s: SchellingAgentsState, x: jax.Array) -> jax.Array:
        """Sum over the featurizer's interaction graph: the Moore neighbourhood on the
        51-torus, co-located agents included, the agent itself excluded."""
        cells = self._cells(s, x)
        near = sum(
            jnp.roll(jnp.roll(cells, di, 1), dj, 2) for di in (-1, 0, 1) for dj in (-1, 0, 1)
        )
        return near[:, s.x + HALF, s.y + HALF].T - x

    def with_dynamic(self, s: SchellingAgentsState, dynamic: jax.Array) -> SchellingAgentsState:
        """Positions = predictions times 25, rounded and clipped to [-25, 25]."""
        xy = jnp.clip(jnp.round(dynamic * HALF), -HALF, HALF).astype(jnp.int32)
        return SchellingAgentsState(s.colour, xy[:, 0], xy[:, 1])

    def marginals(self, dynamic) -> dict:
        """For surrogate evaluation: x and y in cells (ordinal; App. C.4)."""
        cells = np.round(np.asarray(dynamic) * HALF)
        return {"x": (cells[..., 0], None), "y": (cells[..., 1], None)}

    def stochastic_agents(self, s: SchellingAgentsState, params: Params) -> jax.Array:
        """Unhappy agents move at random; the others stay (App. C.4's split)."""
        return self.unhappiness(s, params) > 0
