"""The whole model library: every model with random draws runs and differentiates under
every estimator, and every registry entry builds and runs from its defaults."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import agentgrad as ag
from agentgrad.estimators import StraightThrough, parse_estimator
from agentgrad.gradients import with_estimator
from agentgrad.models import (
    REGISTRY,
    SEIRM,
    BuildOptions,
    PredatorPrey,
    SIRNetwork,
    SIRSGrid,
    Sugarscape,
)
from agentgrad.models.population import synthetic_population

SMALL = {
    "sugarscape": (lambda: Sugarscape(size=12, n_agents=30), "mean_wealth", "p_vision_high"),
    "seirm": (lambda: SEIRM(synthetic_population(300, key=0)), "infected", "initial_infected"),
    "predator-prey": (lambda: PredatorPrey(size=8, n_agents=64), "prey", "prey_without_pregnant"),
    "sir-network": (
        lambda: SIRNetwork(graph=ag.graphs.erdos_renyi(200, 6.0, key=0)),
        "infected",
        "beta",
    ),
    "sirs-grid": (lambda: SIRSGrid(10, 60, 8, 4), "infected", "p_infect"),
}
ESTIMATORS = ["st", "gs:0.5", "gs-soft:0.5", "none", "smoothed", "sad"]


@pytest.mark.parametrize("spec", ESTIMATORS)
@pytest.mark.parametrize("name", sorted(SMALL))
def test_runs_and_differentiates_under_every_estimator(name, spec):
    build, observable, parameter = SMALL[name]
    model = with_estimator(build(), parse_estimator(spec))
    params = model.param_space.defaults()
    direction = {k: jnp.float32(k == parameter) for k in params}

    def fn(p, k):
        return ag.simulate(model, p, k, 4).observables[observable]

    if spec == "sad":
        keys = jax.random.split(jax.random.key(0), 8)  # one estimate may be exactly 0
        tangent = jax.vmap(lambda k: ag.stochad.derivative_estimate(fn, params, k, direction))(keys)
    else:
        _, tangent = jax.jvp(lambda p: fn(p, jax.random.key(0)), (params,), (direction,))
    assert np.all(np.isfinite(tangent))
    assert (spec == "none") == bool(np.all(np.asarray(tangent) == 0)), tangent


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_registry_entries_build_and_run(name):
    entry = REGISTRY[name]
    small = {"agents": 60} if "agents" in entry.options else {}
    if "grid_size" in entry.options:
        small["grid_size"] = 12
    model = entry.build(BuildOptions(StraightThrough(), 0, **small))
    traj = ag.simulate(model, entry.param_space.defaults(), jax.random.key(0), 2)
    assert traj.observables and all(np.all(np.isfinite(v)) for v in traj.observables.values())
    for values in entry.presets.values():
        entry.param_space.complete(values)
