"""SEIRM epidemic with two-dose vaccination on a contact network
(`flame-framework-for-learning-in-abms` §4.2; the substeps of AgentTorch's covid model:
infection transmission, then SEIRM progression, once per day).

Citizens have an age group ``g`` (decades, 80+ last), a stage S/E/I/R/M (M = dead) held
as one-hot float channels, days in stage, per-agent incubation and infectious periods
``d_E = 1 + Poisson(mean_exposed - 1)``, ``d_I = 1 + Poisson(mean_infectious - 1)``
(drawn once) and a vaccination record.  Each day:

1. *Vaccination*: an unvaccinated living agent gets dose 1 with probability
   ``vaccination_rate``; dose 2 follows ``second_dose_delay`` days later.  Protection is
   ``efficacy_dose1`` after dose 1 and ``efficacy_dose2`` after dose 2.
2. *Transmission* (per edge): a susceptible agent ``i`` is exposed with probability
   ``1 - exp(-lambda_i)``, ``lambda_i = transmission * susceptibility_g (1 - protection_i)
   sum_{j in N(i)} I_j f(tau_j)``; ``f`` is the infectiousness profile over days since
   onset (a gamma(2.5, 1.5) curve scaled to peak 1, as AgentTorch's lookup).
3. *Progression*: E becomes I after ``d_E`` days; I ends after ``d_I`` days and dies with
   probability ``min(1, mortality * ifr_g)`` (age-specific infection fatality ratios),
   otherwise recovers.  R and M are absorbing.

Initially each agent is infectious (day 0 of I) with probability ``initial_infected``.
All Bernoulli draws go through the model's estimator (default straight-through); the
dose-2 switch uses :func:`agentgrad.soft.step` in ``t - t_dose1 - second_dose_delay``
(exact primal, Gaussian tangent of width ``gate_sigma`` days) so the delay has a gradient.

Observables: ``susceptible``, ``exposed``, ``infected``, ``recovered``, ``dead`` (counts)
and ``new_infected`` (new exposures), ``new_dead`` per day.
"""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from agentgrad import soft
from agentgrad.engine import Model
from agentgrad.estimators import Estimator, StraightThrough
from agentgrad.models._checks import sir_estimator_warning
from agentgrad.models.population import Population
from agentgrad.params import Param, Params, ParamSpace, real_dtype
from agentgrad.sampling import bernoulli
from agentgrad.spaces.graphs import Graph

SEIRM_PARAMS = ParamSpace(
    {
        "transmission": Param(0.1, 0.0, 1.0, None, "per-contact transmission scale (R0-like)"),
        "mortality": Param(1.0, 0.0, 10.0, None, "multiplier of the age-specific IFR"),
        "initial_infected": Param(0.01, 0.0, 1.0, None, "initial infectious fraction"),
        "vaccination_rate": Param(0.01, 0.0, 1.0, None, "daily probability of a first dose"),
        "second_dose_delay": Param(
            21.0, 1.0, 120.0, None, "days between first and second dose", fd_step=1.0
        ),
    }
)

#: relative susceptibility per age decade (Davies et al. 2020)
SUSCEPTIBILITY = (0.40, 0.38, 0.79, 0.86, 0.80, 0.82, 0.88, 0.74, 0.74)
#: infection fatality ratio per age decade (Levin et al. 2020)
IFR = (0.00002, 0.00006, 0.0003, 0.0008, 0.0015, 0.006, 0.022, 0.051, 0.093)
STAGES = ("susceptible", "exposed", "infected", "recovered", "dead")


def infectiousness_profile(days: int = 30, shape: float = 2.5, scale: float = 1.5) -> np.ndarray:
    """``f(tau)``, tau = 0..days-1 days since onset: a gamma pdf scaled to peak 1."""
    f = stats.gamma.pdf(np.arange(days) + 0.5, shape, scale=scale)
    return (f / f.max()).astype(np.float32)


class SEIRMState(eqx.Module):
    """Stage channels ``(5, N)`` (S, E, I, R, M), days in stage, periods, vaccination."""

    stage: jax.Array  # (5, N) one-hot float
    days: jax.Array  # (N,) days in current stage
    exposed_days: jax.Array  # (N,) d_E
    infectious_days: jax.Array  # (N,) d_I
    dose1: jax.Array  # (N,) 0/1 (estimator tangent)
    dose1_day: jax.Array  # (N,) day of dose 1 (inf if none)
    new_infected: jax.Array  # () exposures this step
    new_dead: jax.Array  # () deaths this step


class SEIRM(Model):
    """SEIRM with vaccination on a population's contact network (see module docstring)."""

    observable_units: ClassVar[dict[str, str]] = {
        "susceptible": "agents",
        "exposed": "agents",
        "infected": "agents",
        "recovered": "agents",
        "dead": "agents",
        "new_infected": "agents per day",
        "new_dead": "agents per day",
    }

    def gradient_warning(self, n_steps: int) -> str | None:
        """Validated: StochasticDerivative over 20 days (transmission, seeding, dose delay);
        straight-through only for ``mortality`` (tests/test_seirm.py)."""
        return sir_estimator_warning(self.estimator, False, "seirm", horizon=(n_steps, 20))

    graph: Graph
    age_group: jax.Array
    mean_exposed: float = eqx.field(static=True)
    mean_infectious: float = eqx.field(static=True)
    efficacy_dose1: float = eqx.field(static=True)
    efficacy_dose2: float = eqx.field(static=True)
    gate_sigma: float = eqx.field(static=True)
    estimator: Estimator

    def __init__(
        self,
        population: Population,
        *,
        mean_exposed: float = 4.0,
        mean_infectious: float = 5.0,
        efficacy_dose1: float = 0.5,
        efficacy_dose2: float = 0.9,
        gate_sigma: float = 1.0,
        estimator: Estimator | None = None,
    ) -> None:
        if not isinstance(population, Population):
            raise TypeError("SEIRM needs a Population (synthetic_population or load_population)")
        if not (mean_exposed >= 1 and mean_infectious >= 1):
            raise ValueError("mean_exposed and mean_infectious must be >= 1 day")
        if not 0 <= efficacy_dose1 <= efficacy_dose2 <= 1:
            raise ValueError("need 0 <= efficacy_dose1 <= efficacy_dose2 <= 1")
        self.graph = population.graph
        self.age_group = jnp.asarray(population.age_groups)
        self.mean_exposed = float(mean_exposed)
        self.mean_infectious = float(mean_infectious)
        self.efficacy_dose1 = float(efficacy_dose1)
        self.efficacy_dose2 = float(efficacy_dose2)
        self.gate_sigma = float(gate_sigma)
        self.estimator = StraightThrough() if estimator is None else estimator

    @property
    def param_space(self) -> ParamSpace:
        return SEIRM_PARAMS

    @property
    def n_agents(self) -> int:
        return self.graph.n_nodes

    def init(self, params: Params, key: jax.Array) -> SEIRMState:
        N = self.n_agents
        k_inf, k_e, k_i = jax.random.split(key, 3)
        infected = bernoulli(k_inf, params["initial_infected"], self.estimator, (N,))
        zeros = jnp.zeros(N, real_dtype())
        stage = jnp.stack([1.0 - infected, zeros, infected, zeros, zeros])
        d_e = 1.0 + jax.random.poisson(k_e, self.mean_exposed - 1.0, (N,)).astype(real_dtype())
        d_i = 1.0 + jax.random.poisson(k_i, self.mean_infectious - 1.0, (N,)).astype(real_dtype())
        return SEIRMState(
            stage=stage,
            days=zeros,
            exposed_days=d_e,
            infectious_days=d_i,
            dose1=zeros,
            dose1_day=jnp.full(N, jnp.inf, real_dtype()),
            new_infected=jnp.zeros((), real_dtype()),
            new_dead=jnp.zeros((), real_dtype()),
        )

    def protection(self, s: SEIRMState, params: Params, t: jax.Array) -> jax.Array:
        """Vaccine protection per agent at day ``t`` (dose-2 switch by a soft step)."""
        since = jnp.where(jnp.isfinite(s.dose1_day), t - s.dose1_day, -1e4)
        second = soft.step(since - params["second_dose_delay"], "gaussian", self.gate_sigma)
        gain = self.efficacy_dose2 - self.efficacy_dose1
        return s.dose1 * (self.efficacy_dose1 + gain * second)

    def step(self, s: SEIRMState, params: Params, key: jax.Array, t: jax.Array) -> SEIRMState:
        N = self.n_agents
        k_vax, k_inf, k_die = jax.random.split(key, 3)
        sus, exp, inf, rec, dead = s.stage
        tf = t.astype(real_dtype())

        # 1. vaccination (first doses; second doses follow by the clock)
        eligible = (jnp.isinf(s.dose1_day) & (jax.lax.stop_gradient(dead) == 0)).astype(
            real_dtype()
        )
        vaccinated = bernoulli(k_vax, params["vaccination_rate"], self.estimator, (N,))
        new_dose = vaccinated * eligible
        dose1 = s.dose1 + new_dose
        dose1_day = jnp.where(jax.lax.stop_gradient(new_dose) > 0, tf, s.dose1_day)
        s = eqx.tree_at(lambda z: (z.dose1, z.dose1_day), s, (dose1, dose1_day))

        # 2. transmission over edges
        profile = jnp.asarray(infectiousness_profile())
        tau = jnp.clip(s.days.astype(jnp.int32), 0, profile.size - 1)
        shedding = inf * profile[tau]
        susceptibility = jnp.asarray(SUSCEPTIBILITY, real_dtype())[self.age_group]
        force = params["transmission"] * susceptibility * (1.0 - self.protection(s, params, tf))
        lam = force * self.graph.neighbour_sum(shedding)
        exposures = bernoulli(k_inf, -jnp.expm1(-lam), self.estimator) * sus

        # 3. progression (on the stages at the start of the day)
        days_done = jax.lax.stop_gradient(s.days) + 1.0
        onset = exp * (days_done >= s.exposed_days).astype(real_dtype())
        ends = inf * (days_done >= s.infectious_days).astype(real_dtype())
        ifr = jnp.asarray(IFR, real_dtype())[self.age_group]
        p_die = jnp.clip(params["mortality"] * ifr, 0.0, 1.0)
        deaths = bernoulli(k_die, p_die, self.estimator) * ends
        recoveries = ends - deaths

        stage = jnp.stack(
            [
                sus - exposures,
                exp + exposures - onset,
                inf + onset - ends,
                rec + recoveries,
                dead + deaths,
            ]
        )
        changed = jax.lax.stop_gradient(exposures + onset + ends) > 0
        return eqx.tree_at(
            lambda z: (z.stage, z.days, z.new_infected, z.new_dead),
            s,
            (stage, jnp.where(changed, 0.0, days_done), jnp.sum(exposures), jnp.sum(deaths)),
        )

    def observe(self, s: SEIRMState, params: Params, t: jax.Array) -> dict[str, jax.Array]:
        counts = jnp.sum(s.stage, axis=1)
        out = {name: counts[k] for k, name in enumerate(STAGES)}
        out["new_infected"] = s.new_infected
        out["new_dead"] = s.new_dead
        return out


__all__ = ["IFR", "SEIRM", "SEIRM_PARAMS", "SUSCEPTIBILITY", "SEIRMState"]
