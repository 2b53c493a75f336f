"""Schelling: invariants of relocation, convergence to segregation, xi-gradient."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import agentgrad as ag
from agentgrad.models import Schelling


@pytest.fixture(scope="module")
def run():
    model = Schelling()
    return model, ag.simulate(model, None, jax.random.key(0), 20, save_every=1)


def test_defaults_and_invariants(run):
    model, traj = run
    s = np.asarray(traj.states)  # (20, 2, 51, 51)
    assert s.sum(axis=(2, 3)).tolist() == [[975.0, 975.0]] * 20  # colours conserved
    assert s.sum(axis=1).max() == 1.0  # never two agents on a cell
    assert set(np.unique(s).tolist()) <= {0.0, 1.0}


def test_only_unhappy_agents_move_and_segregation_emerges(run):
    model, traj = run
    params = model.param_space.defaults()
    before = np.asarray(model.init(params, jax.random.split(jax.random.key(0))[0]))
    happy = np.asarray(model.happiness(jnp.asarray(before), params)) > 0
    after = np.asarray(traj.states[0])
    # every happy agent is still on its cell with its colour
    np.testing.assert_array_equal(after[:, happy], before[:, happy])
    seg = np.asarray(traj.observables["segregation"])
    hap = np.asarray(traj.observables["happy"])
    assert seg[-1] > seg[0] + 0.2 and hap[-1] > 2 * hap[0]


def test_tolerant_agents_never_move():
    model = Schelling(size=20, n_agents=200)
    traj = ag.simulate(model, {"xi": 0.0}, jax.random.key(1), 5, save_every=1)
    np.testing.assert_array_equal(
        traj.states[-1],
        model.init(model.param_space.defaults(), jax.random.split(jax.random.key(1))[0]),
    )


def test_happy_count_gradient_in_xi():
    model = Schelling(size=20, n_agents=300)
    g = jax.grad(lambda p: ag.simulate(model, p, jax.random.key(2), 5).observables["happy"][-1])(
        {"xi": jnp.float32(0.5)}
    )
    assert np.isfinite(float(g["xi"])) and float(g["xi"]) < 0


def test_bad_configuration():
    with pytest.raises(ValueError, match="n_agents"):
        Schelling(size=5, n_agents=25)
