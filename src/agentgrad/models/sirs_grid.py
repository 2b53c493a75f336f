"""Spatial SIRS model on a grid (`ad-vs-sbi-for-abms` §3 and Appendix A, Table 1).

``n_agents`` agents occupy distinct cells of a ``size x size`` grid (the rest are
empty); the state is a ``3 x size x size`` one-hot array of S/I/R channels.  Each
step, synchronously:

* a susceptible agent with ``n`` infected von Neumann neighbours is infected with
  probability ``1 - (1 - p_infect)^n`` (``n`` by a 2-D convolution of the I channel);
* an infected agent recovers with probability ``p_recover``;
* a recovered agent becomes susceptible again with probability ``p_wane``.

All draws are Bernoulli samples over the whole grid masked by the channel
(Appendix A).  Initially ``n_infected`` and ``n_recovered`` of the agents, placed at
uniformly random cells, are infected and recovered.  Observables are the S, I and
R counts.  The paper uses ``GumbelSoftmax(0.05)``.
"""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp

from agentgrad import frames
from agentgrad.engine import Model
from agentgrad.estimators import Estimator, GumbelSoftmax
from agentgrad.models._checks import require_int
from agentgrad.params import Param, Params, ParamSpace, real_dtype
from agentgrad.sampling import bernoulli
from agentgrad.spaces.grid import Grid

SIRS_GRID_PARAMS = ParamSpace(
    {
        "p_infect": Param(0.6, 0.0, 1.0, None, "infection probability per infected neighbour"),
        "p_recover": Param(0.3, 0.0, 1.0, None, "recovery probability per step"),
        "p_wane": Param(0.1, 0.0, 1.0, None, "probability per step of losing immunity"),
    }
)


class SIRSGrid(Model):
    """Spatial SIRS on a grid with von Neumann infection (see module docstring)."""

    observable_units: ClassVar[dict[str, str]] = {
        "susceptible": "agents",
        "infected": "agents",
        "recovered": "agents",
    }

    def gradient_warning(self, n_steps: int) -> str | None:
        """AD of the relaxed simulator is exact; the straight-through GS mean is biased."""
        return (
            f"sirs-grid gradients ({type(self.estimator).__name__}) are exact for the relaxed "
            "simulator but straight-through Gumbel-softmax differs from finite differences "
            "of the discrete ABM by 30-50%; run `agentgrad gradcheck sirs-grid` for your "
            "settings before relying on magnitudes"
        )

    size: int = eqx.field(static=True, default=40)
    n_agents: int = eqx.field(static=True, default=1280)
    n_infected: int = eqx.field(static=True, default=160)
    n_recovered: int = eqx.field(static=True, default=80)
    periodic: bool = eqx.field(static=True, default=False)
    estimator: Estimator = GumbelSoftmax(0.05)

    def __check_init__(self) -> None:
        require_int("size", self.size, 1)
        require_int("n_agents", self.n_agents, 1)
        if self.n_agents > self.size**2:
            raise ValueError(
                f"n_agents={self.n_agents} does not fit on a {self.size}x{self.size} grid"
            )
        require_int("n_infected", self.n_infected, 0)
        require_int("n_recovered", self.n_recovered, 0)
        if self.n_infected + self.n_recovered > self.n_agents:
            raise ValueError("n_infected + n_recovered must not exceed n_agents")

    @property
    def param_space(self) -> ParamSpace:
        return SIRS_GRID_PARAMS

    @property
    def grid(self) -> Grid:
        return Grid(self.size, self.size, "von_neumann", 1, self.periodic)

    def init(self, params: Params, key: jax.Array) -> jax.Array:
        cells = self.size * self.size
        rank = jnp.argsort(jax.random.permutation(key, cells))  # rank of each cell
        infected = rank < self.n_infected
        recovered = (rank >= self.n_infected) & (rank < self.n_infected + self.n_recovered)
        susceptible = (rank >= self.n_infected + self.n_recovered) & (rank < self.n_agents)
        state = jnp.stack([susceptible, infected, recovered]).astype(real_dtype())
        return state.reshape(3, self.size, self.size)

    def step(self, state: jax.Array, params: Params, key: jax.Array, t: jax.Array) -> jax.Array:
        s, i, r = state
        k_infect, k_recover, k_wane = jax.random.split(key, 3)
        n_adjacent = self.grid.neighbour_sum(i)
        p_escape = jnp.clip(1.0 - params["p_infect"], 1e-7, 1.0)
        p_infect = 1.0 - jnp.exp(n_adjacent * jnp.log(p_escape))
        shape = s.shape
        infections = bernoulli(k_infect, p_infect, self.estimator) * s
        recoveries = bernoulli(k_recover, params["p_recover"], self.estimator, shape) * i
        waning = bernoulli(k_wane, params["p_wane"], self.estimator, shape) * r
        return jnp.stack(
            [s - infections + waning, i + infections - recoveries, r + recoveries - waning]
        )

    def frame(self, state: jax.Array) -> jax.Array:
        """Susceptible blue, infected orange, recovered green, empty white."""
        s, i, r = state
        return frames.paint([(s, frames.BLUE), (i, frames.ORANGE), (r, frames.GREEN)])

    def observe(self, state: jax.Array, params: Params, t: jax.Array) -> dict[str, jax.Array]:
        s, i, r = jnp.sum(state, axis=(-2, -1))
        return {"susceptible": s, "infected": i, "recovered": r}
