"""Neural cellular automaton: perception filters, the zero-initialised rule, alive
masking, stochastic updates, targets and bad input."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import signal

import agentgrad as ag
from agentgrad.models.nca import NeuralCA, alive, perceive, target_pattern


def test_perception_is_identity_and_sobel_filters():
    cells = jax.random.normal(jax.random.key(0), (5, 9, 11))
    out = np.asarray(perceive(cells))
    sobel = np.array([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]) / 8.0
    assert out.shape == (15, 9, 11)
    for c in range(5):
        x = np.asarray(cells[c])
        np.testing.assert_allclose(out[c], x, atol=1e-6)
        np.testing.assert_allclose(out[5 + c], signal.correlate2d(x, sobel, "same"), atol=1e-5)
        np.testing.assert_allclose(out[10 + c], signal.correlate2d(x, sobel.T, "same"), atol=1e-5)


def test_untrained_rule_keeps_the_seed_and_alive_masking_empties_dead_cells():
    model = NeuralCA(9, channels=6, width=8)
    traj = ag.simulate(model, None, jax.random.key(0), 5)
    np.testing.assert_array_equal(traj.final_state["cells"], model.initial)  # zero output layer
    np.testing.assert_array_equal(traj.observables["alive"], 9.0)  # the seed's 3x3 block
    cells = jnp.zeros((6, 9, 9)).at[3, 2, 2].set(0.05).at[3, 6, 6].set(0.5)
    mask = np.asarray(alive(cells, 0.1))
    assert mask[5:8, 5:8].all() and mask.sum() == 9  # the low-alpha cell is not alive


def test_each_cell_updates_with_the_fire_rate():
    """With a rule that adds 1 to every channel, the fraction of updated cells after one
    step is Binomial(H*W, fire_rate): 0.5 +- 4 sd."""
    model = NeuralCA(40, channels=4, width=4, fire_rate=0.5)
    full = rule_adding_one(model).with_initial(jnp.ones((4, 40, 40)))
    cells = ag.simulate(full, None, jax.random.key(1), 1).final_state["cells"]
    frac = float(jnp.mean(cells[0] > 1.0))
    assert abs(frac - 0.5) < 4 * np.sqrt(0.25 / 1600)


def rule_adding_one(model):
    """The model with a rule whose output is 1 on every channel (hidden unit 0 is a
    constant 1 through its bias)."""
    grow = model.substep("grow")
    w_hidden = jnp.zeros_like(grow.w_hidden)
    b_hidden = jnp.zeros_like(grow.b_hidden).at[0].set(1.0)
    w_output = jnp.zeros_like(grow.w_output).at[:, 0].set(1.0)
    new = eqx.tree_at(
        lambda g: (g.w_hidden, g.b_hidden, g.w_output), grow, (w_hidden, b_hidden, w_output)
    )
    return model.with_substep("grow", new)


def test_targets_and_bad_input():
    for shape in ("butterfly", "smiley"):
        t = np.asarray(target_pattern(20, shape))
        assert t.shape == (4, 20, 20)
        assert 0.15 < t[3].mean() < 0.6  # the pattern covers part of the grid
        assert np.all(t[:3] <= t[3] + 1e-7)  # premultiplied colour
    with pytest.raises(ag.AgentgradError, match="unknown target shape 'lizard'"):
        target_pattern(20, "lizard")
    with pytest.raises(ag.AgentgradError, match="channels must be >= 4"):
        NeuralCA(10, channels=3)
    with pytest.raises(ag.AgentgradError, match=r"initial cells must have shape \(16, 10, 10\)"):
        NeuralCA(10).with_initial(jnp.zeros((16, 9, 9)))
