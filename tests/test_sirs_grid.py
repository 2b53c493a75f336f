"""SIRSGrid: initial conditions, conservation, identical primals, gradient signs."""

import jax
import numpy as np
import pytest

import agentgrad as ag


def test_initial_state_and_conservation(key):
    model = ag.models.SIRSGrid()
    traj = ag.simulate(model, None, key, 20, save_every=5)
    init = traj.initial_observables
    assert (float(init["susceptible"]), float(init["infected"]), float(init["recovered"])) == (
        1040.0,
        160.0,
        80.0,
    )
    o = traj.observables
    np.testing.assert_array_equal(o["susceptible"] + o["infected"] + o["recovered"], 1280.0)
    occupied = np.asarray(traj.states.sum(1))  # (saved, 40, 40)
    assert np.all(occupied == occupied[0]) and occupied[0].sum() == 1280  # agents never move
    assert set(np.unique(traj.states).tolist()) <= {0.0, 1.0}


def test_infection_needs_an_infected_neighbour(key):
    """With p_recover = p_wane = 0, only neighbours of infected cells can become infected."""
    model = ag.models.SIRSGrid(size=10, n_agents=100, n_infected=1, n_recovered=0)
    p = {"p_infect": 1.0, "p_recover": 0.0, "p_wane": 0.0}
    traj = ag.simulate(model, p, key, 3)
    # on a full grid with p_infect = 1 the infection grows as a von Neumann diamond
    assert traj.observables["infected"].tolist() == pytest.approx([5.0, 13.0, 25.0], abs=12)
    assert np.all(np.diff(np.asarray(traj.observables["infected"])) > 0)


def test_estimators_share_the_primal_and_gradients_have_the_right_sign(key):
    ref = None
    for est in (ag.GumbelSoftmax(0.05), ag.StraightThrough(), ag.NoGradient()):
        model = ag.models.SIRSGrid(estimator=est)
        obs = ag.simulate(model, None, key, 20).observables["infected"]
        ref = obs if ref is None else ref
        np.testing.assert_array_equal(obs, ref)
    model = ag.models.SIRSGrid(estimator=ag.StraightThrough())
    keys = jax.random.split(key, 8)
    g = jax.vmap(
        lambda k: jax.grad(lambda p: ag.simulate(model, p, k, 20).observables["infected"].sum())(
            model.param_space.defaults()
        )
    )(keys)
    assert float(g["p_infect"].mean()) > 0
    assert float(g["p_recover"].mean()) < 0
    assert float(g["p_wane"].mean()) > 0


def test_invalid_configuration():
    with pytest.raises(ValueError, match="does not fit"):
        ag.models.SIRSGrid(size=3, n_agents=10)
    with pytest.raises(ValueError, match="must not exceed"):
        ag.models.SIRSGrid(size=5, n_agents=10, n_infected=8, n_recovered=5)
