"""Duopoly opinion dynamics: the lattice graph, one step against a hand computation,
and per-agent tendency gradients against float64 finite differences."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import agentgrad as ag
from agentgrad.models.duopoly import Duopoly
from agentgrad.spaces.graphs import lattice


def test_lattice_is_the_four_neighbour_grid():
    torus = lattice(5, 4)
    np.testing.assert_array_equal(torus.degree, 4.0)
    assert torus.n_edges == 2 * 20
    open_grid = lattice(3, 3, periodic=False)
    assert sorted(np.asarray(open_grid.degree).tolist()) == [2] * 4 + [3] * 4 + [4]
    x = jnp.arange(20.0)
    # node 5 (row 1, col 1) has neighbours 1, 9, 4, 6
    assert float(torus.neighbour_sum(x)[5]) == 1 + 9 + 4 + 6


def test_one_step_matches_the_rules():
    """Followers (f -> 1) copy the neighbours' share; the opinion of the bought product
    moves by learning_rate towards the experience; utility is the bought quality."""
    model = Duopoly(lattice(4), tendency=1 - 1e-7, noise_low=0.0, noise_high=0.0)
    params = model.param_space.complete({"learning_rate": 0.5})
    state = model.init(params, jax.random.key(0))
    state = eqx.tree_at(lambda s: s.bought_a, state, jnp.ones(16))  # everybody bought A
    new = model.step(state, params, jax.random.key(1), jnp.float32(0.0))
    np.testing.assert_array_equal(new.bought_a, 1.0)
    np.testing.assert_allclose(new.opinion[0], 0.5 * state.opinion[0] + 0.5 * 1.0, rtol=1e-6)
    np.testing.assert_array_equal(new.opinion[1], state.opinion[1])
    np.testing.assert_allclose(new.utility, 1.0)
    np.testing.assert_allclose(new.total, 1.0)


def test_tendency_gradients_match_finite_differences():
    """Relaxed purchases (GumbelSoftmax, hard=False) in float64: d mean return / d theta_i
    by AD equals central differences (step 1e-6, rtol 1e-5) for three agents."""
    with jax.enable_x64(True):
        model = Duopoly(lattice(4), estimator=ag.GumbelSoftmax(0.5, hard=False))
        key = jax.random.key(3)

        def ret(m):
            return jnp.mean(ag.simulate(m, None, key, 8).final_state.total)

        grad = eqx.filter_grad(ret)(model).substep("purchase").tendency_logit
        logit = model.substep("purchase").tendency_logit
        for i in (0, 7, 15):

            def at(delta, i=i):
                new = logit.at[i].add(delta)
                return ret(eqx.tree_at(lambda m: m.substep("purchase").tendency_logit, model, new))

            fd = (at(1e-6) - at(-1e-6)) / 2e-6
            assert abs(float(grad[i])) > 1e-7
            np.testing.assert_allclose(float(grad[i]), float(fd), rtol=1e-5)


def test_bad_duopoly_input():
    with pytest.raises(ag.AgentgradError, match="strictly between 0 and 1"):
        Duopoly(lattice(3), tendency=1.0)
    with pytest.raises(ag.AgentgradError, match="novice_share must be in"):
        Duopoly(lattice(3), novice_share=2.0)
