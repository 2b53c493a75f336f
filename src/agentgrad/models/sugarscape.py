"""Sugarscape (`automatic-differentiation-of-abms` §2.2, §4.2, Table 2, §10.1; after
Epstein & Axtell 1996).

A ``size x size`` torus carries sugar ``s_c <= capacity_c``; the capacity has two peaks
(``max_sugar * max_p exp(-d_p^2 / (2 sigma^2))``, ``d_p`` the toroidal distance to peak
``p`` at ``(0.3 L, 0.7 L)`` and ``(0.7 L, 0.3 L)``, ``sigma = L / 8``).  Agents start on
distinct random cells with

* metabolism ``m = 1 + 3 Beta(alpha_metabolism, beta_metabolism)``,
* initial wealth ``w = 6 + 19 Beta(alpha_wealth, beta_wealth)`` (between 6 and 25, §10.1),
* vision ``v in visions`` (default ``(1, 3)``) drawn by :func:`agentgrad.categorical`
  with probabilities ``(p_vision_low, p_vision_high)`` (normalised).

Each step agents act one at a time in a fresh random order (a ``lax.scan`` over agents):
a living agent looks at the unoccupied cells of its von Neumann neighbourhood of radius
``v`` (its own cell included) and moves to the one with most sugar (ties: nearest, then
random), harvests all of it, metabolises ``m`` and dies if its wealth is negative (its
cell is freed; dead agents stay dead).  Then unharvested cells regrow ``regrowth`` units,
capped at capacity (eq. 5).

Differentiable as in §4.2: the vision draw's one-hot vector mixes the vision matrices
``V_v`` (eq. 42, tangent from the estimator); the score matrix ``S = V * sugar * free``
(eq. 44) picks the cell by a one-hot argmax whose tangent is ``softmax(S / temperature)``
(eqs. 45-47); wealth harvests ``<M, sugar>`` (eq. 50); survival is a step with a sigmoid
tangent of width ``survival_scale``.  As in the paper, positions carry no tangent (the
second-order effect of moving elsewhere is dropped).  A dead agent's survival tangent is
dropped after the step it died in: its frozen wealth is no counterfactual for what it
would have had alive, and carrying it made the gradient of mean wealth drift linearly
(to ~30x the finite difference after 50 steps).  Measured against FD (20 x 20 torus, 100
agents): continuous parameters within a few % for ~10 steps and within ~40% to step 20;
later the tangent drifts, because agents that survive near zero wealth pick up a
survival tangent every step (docs/benchmarks.md).

Observables: ``mean_wealth`` (over living agents) and ``fraction_alive``.
"""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from agentgrad import frames, rng, soft
from agentgrad.engine import Model
from agentgrad.estimators import Estimator, StraightThrough, straight_through
from agentgrad.models._checks import require_int
from agentgrad.params import Param, Params, ParamSpace
from agentgrad.sampling import categorical

SUGARSCAPE_PARAMS = ParamSpace(
    {
        "alpha_metabolism": Param(2.0, 0.1, 20.0, None, "metabolism = 1 + 3 Beta(a, b): a"),
        "beta_metabolism": Param(5.0, 0.1, 20.0, None, "metabolism = 1 + 3 Beta(a, b): b"),
        "alpha_wealth": Param(2.0, 0.1, 20.0, None, "initial wealth = 6 + 19 Beta(a, b): a"),
        "beta_wealth": Param(2.0, 0.1, 20.0, None, "initial wealth = 6 + 19 Beta(a, b): b"),
        "p_vision_low": Param(0.2, 0.0, 1.0, None, "weight of the short vision range"),
        "p_vision_high": Param(0.8, 0.0, 1.0, None, "weight of the long vision range"),
    }
)


class SugarscapeState(eqx.Module):
    """Agents (position, wealth, metabolism, vision one-hot, alive) and the sugar grid."""

    x: jax.Array  # (N,) int32 row
    y: jax.Array  # (N,) int32 column
    wealth: jax.Array  # (N,)
    metabolism: jax.Array  # (N,)
    vision: jax.Array  # (N, n_visions) one-hot (tangent from the estimator)
    alive: jax.Array  # (N,) 0/1 (sigmoid tangent)
    sugar: jax.Array  # (L, L)


class Sugarscape(Model):
    """Sugarscape with sequential random-order movement (see module docstring)."""

    observable_units: ClassVar[dict[str, str]] = {
        "mean_wealth": "sugar per living agent",
        "fraction_alive": "fraction of agents",
    }

    def gradient_warning(self, n_steps: int) -> str | None:
        """Continuous parameters validated over 6 steps; vision probabilities sign only."""
        if n_steps <= 10:
            return (
                "sugarscape: gradients of the vision probabilities are only sign-correct "
                "(AD about half of finite differences at step 1); metabolism and wealth "
                "parameters are validated"
            )
        return (
            f"sugarscape gradients drift from finite differences after ~10-20 steps "
            f"(d mean_wealth/d alpha_metabolism at step 50: AD 32.6 vs FD 1.65 +- 0.73; "
            f"docs/benchmarks.md); {n_steps} steps requested — use --steps 10 or finite "
            "differences (`agentgrad sensitivity --compare-fd`)"
        )

    size: int = eqx.field(static=True, default=50)
    n_agents: int = eqx.field(static=True, default=400)
    visions: tuple[int, ...] = eqx.field(static=True, default=(1, 3))
    max_sugar: float = eqx.field(static=True, default=4.0)
    regrowth: float = eqx.field(static=True, default=1.0)
    temperature: float = eqx.field(static=True, default=1.0)
    survival_scale: float = eqx.field(static=True, default=1.0)
    estimator: Estimator = StraightThrough()

    def __check_init__(self) -> None:
        require_int("size", self.size, 3)
        require_int("n_agents", self.n_agents, 1, self.size**2)
        if len(self.visions) != 2 or any(not isinstance(v, int) or v < 0 for v in self.visions):
            raise ValueError(f"visions must be two non-negative integers, got {self.visions!r}")
        if 2 * max(self.visions) + 1 > self.size:
            raise ValueError(f"vision {max(self.visions)} does not fit on a {self.size} torus")
        if not (self.regrowth >= 0 and self.max_sugar > 0 and self.temperature > 0):
            raise ValueError("regrowth must be >= 0, max_sugar and temperature > 0")

    @property
    def param_space(self) -> ParamSpace:
        return SUGARSCAPE_PARAMS

    @property
    def capacity(self) -> jax.Array:
        """Two-peak sugar capacity (module docstring)."""
        L = self.size
        i = np.arange(L)
        peaks = [(0.3 * L, 0.7 * L), (0.7 * L, 0.3 * L)]
        sigma = L / 8
        cap = np.zeros((L, L))
        for px, py in peaks:
            dx = np.minimum(np.abs(i - px), L - np.abs(i - px))[:, None]
            dy = np.minimum(np.abs(i - py), L - np.abs(i - py))[None, :]
            cap = np.maximum(cap, np.exp(-(dx**2 + dy**2) / (2 * sigma**2)))
        return jnp.asarray(self.max_sugar * cap, jnp.float32)

    @property
    def window(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Offsets ``(dx, dy)`` of the ``(2R+1)^2`` window (R = max vision) and the vision
        matrices ``V_v`` (eq. 41, von Neumann: ``|dx| + |dy| <= v``), flattened."""
        R = max(self.visions)
        d = np.arange(-R, R + 1)
        dx, dy = (a.reshape(-1) for a in np.meshgrid(d, d, indexing="ij"))
        vis = np.stack([(np.abs(dx) + np.abs(dy) <= v) for v in self.visions]).astype(np.float32)
        return dx, dy, vis

    def init(self, params: Params, key: jax.Array) -> SugarscapeState:
        N, L = self.n_agents, self.size
        k_pos, k_m, k_w, k_v = jax.random.split(key, 4)
        cell = jax.random.permutation(k_pos, L * L)[:N]
        metabolism = 1.0 + 3.0 * jax.random.beta(
            k_m, params["alpha_metabolism"], params["beta_metabolism"], (N,)
        )
        wealth = 6.0 + 19.0 * jax.random.beta(
            k_w, params["alpha_wealth"], params["beta_wealth"], (N,)
        )
        probs = jnp.stack([params["p_vision_low"], params["p_vision_high"]])
        vision = categorical(k_v, probs, self.estimator, shape=(N,))
        return SugarscapeState(
            x=(cell // L).astype(jnp.int32),
            y=(cell % L).astype(jnp.int32),
            wealth=wealth,
            metabolism=metabolism,
            vision=vision,
            alive=jnp.ones(N, jnp.float32),
            sugar=self.capacity,
        )

    def step(
        self, s: SugarscapeState, params: Params, key: jax.Array, t: jax.Array
    ) -> SugarscapeState:
        N, L = self.n_agents, self.size
        dx, dy, vis = self.window
        k_order, k_tie = jax.random.split(key)
        order = jax.random.permutation(k_order, N)
        # ties: nearest first, then random (both below any sugar difference of 1e-3)
        dist = jnp.asarray(np.abs(dx) + np.abs(dy), jnp.float32)
        tie = 1e-4 * dist + 1e-5 * rng.uniform(k_tie, (N, dx.size))
        occupied = jnp.zeros((L, L), bool).at[s.x, s.y].max(jax.lax.stop_gradient(s.alive) > 0)

        def act(carry, i):
            x, y, wealth, alive, sugar, occupied, harvested = carry
            live = jax.lax.stop_gradient(alive[i]) > 0
            cx, cy = (x[i] + dx) % L, (y[i] + dy) % L
            local_sugar = sugar[cx, cy]
            free = ~occupied[cx, cy] | ((dx == 0) & (dy == 0))
            visible = s.vision[i] @ vis  # eq. 42: primal V_v, tangent the mixture
            score = visible * local_sugar * free.astype(jnp.float32)  # eq. 44
            allowed = (jax.lax.stop_gradient(visible) > 0) & free
            pick = jnp.argmax(jnp.where(allowed, local_sugar - tie[i], -jnp.inf))
            hard = jax.nn.one_hot(pick, dx.size, dtype=jnp.float32)
            choice = straight_through(hard, jax.nn.softmax(score / self.temperature))  # eq. 47
            gain = jnp.sum(choice * local_sugar)  # eq. 50
            w = wealth[i] + gain - s.metabolism[i]
            survives = soft.greater_equal(w, 0.0, "sigmoid", self.survival_scale)
            a_new = alive[i] * survives
            nx, ny = cx[pick], cy[pick]
            stays_alive = live & (jax.lax.stop_gradient(a_new) > 0)
            occupied = occupied.at[x[i], y[i]].set(False).at[nx, ny].set(stays_alive)
            sugar = jnp.where(live, sugar.at[nx, ny].set(0.0), sugar)
            harvested = harvested.at[nx, ny].max(live)
            carry = (
                x.at[i].set(jnp.where(live, nx, x[i])),
                y.at[i].set(jnp.where(live, ny, y[i])),
                wealth.at[i].set(jnp.where(live, w, wealth[i])),
                alive.at[i].set(jnp.where(live, a_new, jax.lax.stop_gradient(alive[i]))),
                sugar,
                occupied,
                harvested,
            )
            return carry, None

        init = (s.x, s.y, s.wealth, s.alive, s.sugar, occupied, jnp.zeros((L, L), bool))
        (x, y, wealth, alive, sugar, _, harvested), _ = jax.lax.scan(act, init, order)
        sugar = jnp.where(harvested, sugar, jnp.minimum(sugar + self.regrowth, self.capacity))
        return eqx.tree_at(
            lambda z: (z.x, z.y, z.wealth, z.alive, z.sugar), s, (x, y, wealth, alive, sugar)
        )

    def frame(self, s: SugarscapeState) -> jax.Array:
        """Sugar in shades of yellow (full at the largest capacity), living agents grey."""
        agents = frames.cell_counts(s.x, s.y, s.alive, self.size, self.size)
        sugar = s.sugar / jnp.maximum(jnp.max(self.capacity), 1.0)
        return frames.paint([(agents, frames.GREY), (sugar * (1.0 - agents), frames.YELLOW)])

    def observe(self, s: SugarscapeState, params: Params, t: jax.Array) -> dict[str, jax.Array]:
        n_alive = jnp.sum(s.alive)
        return {
            "mean_wealth": jnp.sum(s.alive * s.wealth) / jnp.maximum(n_alive, 1.0),
            "fraction_alive": n_alive / self.n_agents,
        }
