"""SIR epidemic on a contact network with quarantine and social distancing.

`automatic-differentiation-of-abms` §2.3 (model), §4.3 (differentiable version),
Table 3 (the 9 parameters), §10 (defaults).  Every agent is S, I or R (one-hot
float channels).  At step ``t`` (length ``dt``):

* quarantine: while ``q_start <= t < q_end`` each infected agent quarantines with
  probability ``q_compliance`` (a fresh Bernoulli draw per step);
* distancing: while ``d_start <= t < d_end`` the transmission rate is
  ``beta_eff = beta * d_factor`` (a factor of 1 means no distancing);
* force of infection on agent ``i``: ``lambda_i = beta_eff * (sum of non-quarantining
  infected neighbours) / deg(i)`` (eqs. 6-8);
* infection ``~ Bernoulli(1 - exp(-lambda_i dt))`` for susceptibles (eq. 51),
  recovery ``~ Bernoulli(1 - exp(-gamma dt))`` for infecteds (eq. 52).

Policy windows use :func:`agentgrad.soft.gate` (exact forward, Gaussian-CDF tangent
with ``sigma = gate_sigma``).  Initially each agent is infected with probability
``initial_infected``.  On :func:`agentgrad.graphs.complete` the force of infection is
``beta I / (N - 1)`` and the ensemble mean follows the SIR ODE (§9, :mod:`ode`).
"""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from agentgrad import soft
from agentgrad.engine import Model
from agentgrad.estimators import Estimator, StraightThrough
from agentgrad.models._checks import sir_estimator_warning
from agentgrad.params import Param, Params, ParamSpace, Uniform, real_dtype
from agentgrad.sampling import bernoulli
from agentgrad.spaces.graphs import Graph

_TIME_PRIOR = Uniform(0.0, 60.0)

SIR_NETWORK_PARAMS = ParamSpace(
    {
        "beta": Param(0.4, 0.0, 10.0, Uniform(0.0, 2.0), "transmission rate per day"),
        "gamma": Param(0.05, 0.0, 10.0, Uniform(0.0, 1.0), "recovery rate per day"),
        "initial_infected": Param(0.005, 0.0, 1.0, None, "probability an agent starts infected"),
        "quarantine_start": Param(
            15.0, 0.0, 1e4, _TIME_PRIOR, "day quarantine starts", fd_step=1.0
        ),
        "quarantine_end": Param(
            25.0, 0.0, 1e4, _TIME_PRIOR, "day quarantine ends (exclusive)", fd_step=1.0
        ),
        "quarantine_compliance": Param(
            0.7, 0.0, 1.0, None, "probability an infected agent quarantines (0 = no quarantine)"
        ),
        "distancing_start": Param(
            10.0, 0.0, 1e4, _TIME_PRIOR, "day social distancing starts", fd_step=1.0
        ),
        "distancing_end": Param(
            35.0, 0.0, 1e4, _TIME_PRIOR, "day distancing ends (exclusive)", fd_step=1.0
        ),
        "distancing_factor": Param(
            0.4, 0.0, 1.0, None, "transmission multiplier while distancing (1 = no distancing)"
        ),
    }
)


class SIRState(eqx.Module):
    """Per-agent compartments (float 0/1) and the last step's transitions (fractions of N)."""

    susceptible: jax.Array
    infected: jax.Array
    recovered: jax.Array
    new_infected: jax.Array
    new_recovered: jax.Array


class SIRNetwork(Model):
    """Network SIR with quarantine and social distancing (see module docstring)."""

    observable_units: ClassVar[dict[str, str]] = {
        "new_infected": "fraction of agents per step",
        "new_recovered": "fraction of agents per step",
        "susceptible": "fraction of agents",
        "infected": "fraction of agents",
        "recovered": "fraction of agents",
    }

    def gradient_warning(self, n_steps: int) -> str | None:
        """Validated: StochasticDerivative on any graph; every estimator on the complete
        graph (tests/test_stochad.py, tests/test_sir_network.py)."""
        return sir_estimator_warning(self.estimator, self.graph.is_complete, "sir-network")

    graph: Graph
    estimator: Estimator = StraightThrough()
    dt: float = eqx.field(static=True, default=1.0)
    gate_sigma: float = eqx.field(static=True, default=1.0)

    def __check_init__(self) -> None:
        if not self.dt > 0:
            raise ValueError(f"dt must be > 0, got {self.dt}")
        if not self.gate_sigma > 0:
            raise ValueError(f"gate_sigma must be > 0, got {self.gate_sigma}")

    @property
    def param_space(self) -> ParamSpace:
        return SIR_NETWORK_PARAMS

    @property
    def n_agents(self) -> int:
        return self.graph.n_nodes

    def init(self, params: Params, key: jax.Array) -> SIRState:
        n = self.n_agents
        infected = bernoulli(key, params["initial_infected"], self.estimator, shape=(n,))
        zero = jnp.zeros((), real_dtype())
        return SIRState(1.0 - infected, infected, jnp.zeros((n,), real_dtype()), zero, zero)

    def step(self, state: SIRState, params: Params, key: jax.Array, t: jax.Array) -> SIRState:
        k_quarantine, k_infect, k_recover = jax.random.split(key, 3)
        n = self.n_agents
        quarantine = soft.gate(
            t, params["quarantine_start"], params["quarantine_end"], self.gate_sigma
        )
        distancing = soft.gate(
            t, params["distancing_start"], params["distancing_end"], self.gate_sigma
        )
        complies = bernoulli(k_quarantine, params["quarantine_compliance"], self.estimator, (n,))
        infectious = state.infected * (1.0 - quarantine * complies)
        beta_eff = params["beta"] * (1.0 - distancing * (1.0 - params["distancing_factor"]))
        force = beta_eff * self.graph.neighbour_mean(infectious)
        p_infect = -jnp.expm1(-force * self.dt)
        p_recover = -jnp.expm1(-params["gamma"] * self.dt)
        infections = bernoulli(k_infect, p_infect, self.estimator) * state.susceptible
        recoveries = bernoulli(k_recover, p_recover, self.estimator, (n,)) * state.infected
        return SIRState(
            state.susceptible - infections,
            state.infected + infections - recoveries,
            state.recovered + recoveries,
            jnp.sum(infections) / n,
            jnp.sum(recoveries) / n,
        )

    # ------------------------------------------------------------------ agent view
    # (agentgrad.surrogate.view)

    def agent_features(self, state: SIRState) -> tuple[jax.Array, jax.Array]:
        """Static: none.  Dynamic: compartment one-hot (S, I, R)."""
        dynamic = jnp.stack([state.susceptible, state.infected, state.recovered], 1)
        return jnp.zeros((self.n_agents, 0), dynamic.dtype), dynamic

    def neighbour_sum(self, state: SIRState, x: jax.Array) -> jax.Array:
        """Sum of ``x`` over each agent's contacts (the contact graph)."""
        return self.graph.neighbour_sum(x)

    def with_dynamic(self, state: SIRState, dynamic: jax.Array) -> SIRState:
        """Compartments = argmax of the prediction (straight-through); the transitions'
        fractions from the change."""
        hard = jax.nn.one_hot(jnp.argmax(dynamic, axis=1), 3, dtype=dynamic.dtype)
        s, i, r = (hard + dynamic - jax.lax.stop_gradient(dynamic)).T
        n = self.n_agents
        new_infected = jnp.sum(jnp.maximum(state.susceptible - s, 0.0)) / n
        new_recovered = jnp.sum(jnp.maximum(r - state.recovered, 0.0)) / n
        return SIRState(s, i, r, new_infected, new_recovered)

    def marginals(self, dynamic) -> dict:
        """For surrogate evaluation: the compartment as a 3-category marginal."""
        return {"compartment": (np.asarray(dynamic).argmax(-1), 3)}

    def stochastic_agents(self, state: SIRState, params: Params) -> jax.Array:
        """Susceptible and infected agents move at random; recovered ones stay."""
        return state.recovered == 0

    def observe(self, state: SIRState, params: Params, t: jax.Array) -> dict[str, jax.Array]:
        n = self.n_agents
        return {
            "new_infected": state.new_infected,
            "new_recovered": state.new_recovered,
            "susceptible": jnp.sum(state.susceptible) / n,
            "infected": jnp.sum(state.infected) / n,
            "recovered": jnp.sum(state.recovered) / n,
        }
