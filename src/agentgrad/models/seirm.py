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

from agentgrad import soft
from agentgrad.estimators import Estimator, StraightThrough
from agentgrad.models._checks import sir_estimator_warning
from agentgrad.models.population import Population
from agentgrad.params import Param, Params, ParamSpace, real_dtype
from agentgrad.sampling import bernoulli
from agentgrad.spaces.graphs import Graph
from agentgrad.substeps import Substep, SubstepModel

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
    from scipy import stats  # lazily: scipy.stats costs ~0.6 s at import time

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
    exposures: jax.Array  # (N,) 0/1 exposed today (written by transmission)
    new_infected: jax.Array  # () exposures this step
    new_dead: jax.Array  # () deaths this step


def protection(
    s: SEIRMState, params: Params, t: jax.Array, efficacy: tuple[float, float], sigma: float
) -> jax.Array:
    """Vaccine protection per agent at day ``t`` (dose-2 switch by a soft step)."""
    since = jnp.where(jnp.isfinite(s.dose1_day), t - s.dose1_day, -1e4)
    second = soft.step(since - params["second_dose_delay"], "gaussian", sigma)
    return s.dose1 * (efficacy[0] + (efficacy[1] - efficacy[0]) * second)


class Vaccination(Substep):
    """Unvaccinated living agents take dose 1 with probability ``vaccination_rate``."""

    name: ClassVar[str] = "vaccination"
    estimator: Estimator

    def policy(self, observation, s: SEIRMState, params: Params, key, t) -> jax.Array:
        dead = jax.lax.stop_gradient(s.stage[4])
        eligible = (jnp.isinf(s.dose1_day) & (dead == 0)).astype(real_dtype())
        return bernoulli(key, params["vaccination_rate"], self.estimator, eligible.shape) * eligible

    def transition(self, s: SEIRMState, new_dose, params, key, t) -> dict[str, jax.Array]:
        tf = t.astype(real_dtype())
        dose1_day = jnp.where(jax.lax.stop_gradient(new_dose) > 0, tf, s.dose1_day)
        return {"dose1": s.dose1 + new_dose, "dose1_day": dose1_day}


class Transmission(Substep):
    """Susceptible agents are exposed with probability ``1 - exp(-lambda_i)`` (per edge
    force of infection, see the module docstring); writes S -> E and ``exposures``."""

    name: ClassVar[str] = "transmission"
    graph: Graph
    age_group: jax.Array
    estimator: Estimator
    efficacy: tuple[float, float] = eqx.field(static=True)
    gate_sigma: float = eqx.field(static=True)

    def observe(self, s: SEIRMState, params: Params, t) -> jax.Array:
        """Infectiousness-weighted sum over each agent's infectious contacts."""
        profile = jnp.asarray(infectiousness_profile())
        tau = jnp.clip(s.days.astype(jnp.int32), 0, profile.size - 1)
        return self.graph.neighbour_sum(s.stage[2] * profile[tau])

    def rate(self, params: Params, t: jax.Array) -> jax.Array:
        """The transmission scale on day ``t`` (the ``transmission`` parameter)."""
        return params["transmission"]

    def transition(self, s: SEIRMState, pressure, params, key, t) -> dict[str, jax.Array]:
        susceptibility = jnp.asarray(SUSCEPTIBILITY, real_dtype())[self.age_group]
        shield = protection(s, params, t.astype(real_dtype()), self.efficacy, self.gate_sigma)
        lam = self.rate(params, t) * susceptibility * (1.0 - shield) * pressure
        sus, exp = s.stage[0], s.stage[1]
        exposures = bernoulli(key, -jnp.expm1(-lam), self.estimator) * sus
        stage = s.stage.at[0].set(sus - exposures).at[1].set(exp + exposures)
        return {"stage": stage, "exposures": exposures, "new_infected": jnp.sum(exposures)}


class WeeklyTransmission(Transmission):
    """Transmission whose scale changes every week: ``weekly[floor(t / 7)]`` on day ``t``
    (the last entry after the last week).  ``weekly`` is an array field, so a network
    can drive it (``agentgrad.training.drive``) and gradients reach it."""

    weekly: jax.Array

    @classmethod
    def replacing(cls, base: Transmission, weekly: jax.Array) -> WeeklyTransmission:
        """``base`` (SEIRM's transmission substep) with weekly rates ``weekly``."""
        return cls(
            base.graph,
            base.age_group,
            base.estimator,
            base.efficacy,
            base.gate_sigma,
            jnp.asarray(weekly, real_dtype()),
        )

    def rate(self, params: Params, t: jax.Array) -> jax.Array:
        week = jnp.clip((t / 7.0).astype(jnp.int32), 0, self.weekly.shape[0] - 1)
        return self.weekly[week]


START_PARAMS = ParamSpace(
    {
        "vaccination_start": Param(
            0.0, 0.0, 1e4, None, "day first doses start to be offered", fd_step=1.0
        )
    }
)


class DelayedVaccination(Vaccination):
    """Vaccination offered from day ``vaccination_start`` on (flame Fig. 5 right): the
    start is a :func:`agentgrad.soft.step` in ``t - vaccination_start`` (exact primal,
    Gaussian tangent of width ``gate_sigma`` days), so the outcome has a gradient in the
    delay."""

    param_space: ClassVar[ParamSpace] = START_PARAMS
    gate_sigma: float = eqx.field(static=True, default=1.0)

    def policy(self, observation, s: SEIRMState, params: Params, key, t) -> jax.Array:
        tf = t.astype(real_dtype())
        offered = soft.step(tf - params["vaccination_start"], "gaussian", self.gate_sigma)
        return super().policy(observation, s, params, key, t) * offered


def _ends_of_stage(s: SEIRMState) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Days done, E -> I onsets and ends of I, on the stages at the start of the day."""
    days_done = jax.lax.stop_gradient(s.days) + 1.0
    exposed_before = s.stage[1] - s.exposures  # today's exposures do not progress
    onset = exposed_before * (days_done >= s.exposed_days).astype(real_dtype())
    ends = s.stage[2] * (days_done >= s.infectious_days).astype(real_dtype())
    return days_done, onset, ends


def _days_after(s: SEIRMState, days_done, *moves) -> jax.Array:
    changed = jax.lax.stop_gradient(s.exposures + sum(moves)) > 0
    return jnp.where(changed, 0.0, days_done)


class Progression(Substep):
    """E -> I after ``d_E`` days; I ends after ``d_I`` days in death (probability
    ``min(1, mortality * ifr_g)``) or recovery."""

    name: ClassVar[str] = "progression"
    age_group: jax.Array
    estimator: Estimator

    def transition(self, s: SEIRMState, action, params, key, t) -> dict[str, jax.Array]:
        days_done, onset, ends = _ends_of_stage(s)
        ifr = jnp.asarray(IFR, real_dtype())[self.age_group]
        p_die = jnp.clip(params["mortality"] * ifr, 0.0, 1.0)
        deaths = bernoulli(key, p_die, self.estimator) * ends
        sus, exp, inf, rec, dead = s.stage
        stage = jnp.stack(
            [sus, exp - onset, inf + onset - ends, rec + ends - deaths, dead + deaths]
        )
        days = _days_after(s, days_done, onset, ends)
        return {"stage": stage, "days": days, "new_dead": jnp.sum(deaths)}


WANING_PARAMS = ParamSpace(
    {"waning_rate": Param(0.05, 0.0, 1.0, None, "daily probability that immunity is lost")}
)


class SIRSProgression(Substep):
    """Progression without deaths and with waning immunity (flame's C5 swap): E -> I
    after ``d_E`` days, I -> R after ``d_I`` days, R -> S with probability
    ``waning_rate`` per day.  Replace SEIRM's progression with
    ``model.with_substep("progression", SIRSProgression(model.estimator))``."""

    name: ClassVar[str] = "progression"
    param_space: ClassVar[ParamSpace] = WANING_PARAMS
    estimator: Estimator

    def transition(self, s: SEIRMState, action, params, key, t) -> dict[str, jax.Array]:
        days_done, onset, ends = _ends_of_stage(s)
        sus, exp, inf, rec, dead = s.stage
        recovered_before = rec * (1.0 - jax.lax.stop_gradient(s.exposures))
        wanes = bernoulli(key, params["waning_rate"], self.estimator, rec.shape) * recovered_before
        stage = jnp.stack([sus + wanes, exp - onset, inf + onset - ends, rec + ends - wanes, dead])
        days = _days_after(s, days_done, onset, ends, wanes)
        return {"stage": stage, "days": days, "new_dead": jnp.zeros((), real_dtype())}


class SEIRM(SubstepModel):
    """SEIRM with vaccination on a population's contact network (see module docstring).

    Its step is three substeps (:mod:`agentgrad.substeps`): ``vaccination``,
    ``transmission``, ``progression``.
    """

    observable_units: ClassVar[dict[str, str]] = {
        "susceptible": "agents",
        "exposed": "agents",
        "infected": "agents",
        "recovered": "agents",
        "dead": "agents",
        "new_infected": "agents per day",
        "new_dead": "agents per day",
    }
    own_params: ClassVar[ParamSpace] = SEIRM_PARAMS

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
        efficacy = (self.efficacy_dose1, self.efficacy_dose2)
        self.substeps = (
            Vaccination(self.estimator),
            Transmission(self.graph, self.age_group, self.estimator, efficacy, self.gate_sigma),
            Progression(self.age_group, self.estimator),
        )

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
            exposures=zeros,
            new_infected=jnp.zeros((), real_dtype()),
            new_dead=jnp.zeros((), real_dtype()),
        )

    def protection(self, s: SEIRMState, params: Params, t: jax.Array) -> jax.Array:
        """Vaccine protection per agent at day ``t`` (dose-2 switch by a soft step)."""
        efficacy = (self.efficacy_dose1, self.efficacy_dose2)
        return protection(s, params, t, efficacy, self.gate_sigma)

    def observe(self, s: SEIRMState, params: Params, t: jax.Array) -> dict[str, jax.Array]:
        counts = jnp.sum(s.stage, axis=1)
        out = {name: counts[k] for k, name in enumerate(STAGES)}
        out["new_infected"] = s.new_infected
        out["new_dead"] = s.new_dead
        return out


__all__ = [
    "IFR",
    "SEIRM",
    "SEIRM_PARAMS",
    "SUSCEPTIBILITY",
    "WANING_PARAMS",
    "Progression",
    "SEIRMState",
    "SIRSProgression",
    "Transmission",
    "DelayedVaccination",
    "Vaccination",
    "WeeklyTransmission",
]
