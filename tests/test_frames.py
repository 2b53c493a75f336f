"""Pictures of model states (Model.frame) and the animation writer behind --animate."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import agentgrad as ag
from agentgrad import frames
from agentgrad.cli import app
from agentgrad.models import REGISTRY, BuildOptions
from agentgrad.plotting import animate

SPATIAL = ["sirs-grid", "schelling", "schelling-agents", "predator-prey", "sugarscape"]


def test_paint_blends_shares_over_the_background():
    a = jnp.array([[1.0, 0.5, 0.0, 2.0]])
    b = jnp.array([[0.0, 0.5, 0.0, 2.0]])
    image = np.asarray(frames.paint([(a, (1.0, 0.0, 0.0)), (b, (0.0, 0.0, 1.0))]))
    np.testing.assert_allclose(image[0, 0], [1, 0, 0])  # all red
    np.testing.assert_allclose(image[0, 1], [0.5, 0, 0.5])  # half and half
    np.testing.assert_allclose(image[0, 2], [1, 1, 1])  # empty: background
    np.testing.assert_allclose(image[0, 3], [0.5, 0, 0.5])  # shares above 1 are scaled


def test_cell_counts_sums_agents_per_cell():
    counts = frames.cell_counts(jnp.array([0, 0, 1]), jnp.array([1, 1, 2]), jnp.ones(3), 2, 3)
    np.testing.assert_array_equal(counts, [[0, 2, 0], [0, 0, 1]])


@pytest.mark.parametrize("name", SPATIAL)
def test_spatial_models_draw_their_state(name):
    model = REGISTRY[name].build(BuildOptions(estimator=ag.StraightThrough()))
    params = model.param_space.defaults()
    state = model.init(params, jax.random.key(0))
    image = np.asarray(model.frame(state))
    assert image.ndim == 3 and image.shape[-1] == 3
    assert image.min() >= 0.0 and image.max() <= 1.0
    # the picture shows agents: not every cell is the background colour
    assert np.any(np.abs(image - 1.0).sum(-1) > 0.1)


def test_sirs_grid_frame_colours_each_compartment():
    model = ag.models.SIRSGrid(size=6, n_agents=12, n_infected=3, n_recovered=3)
    state = model.init(model.param_space.defaults(), jax.random.key(1))
    image = np.asarray(model.frame(state))
    s, i, r = np.asarray(state).astype(bool)
    np.testing.assert_allclose(image[s], np.broadcast_to(frames.BLUE, image[s].shape), atol=1e-6)
    np.testing.assert_allclose(image[i], np.broadcast_to(frames.ORANGE, image[i].shape), atol=1e-6)
    np.testing.assert_allclose(image[r], np.broadcast_to(frames.GREEN, image[r].shape), atol=1e-6)
    empty = ~(s | i | r)
    np.testing.assert_allclose(image[empty], 1.0)


def test_animate_writes_one_gif_frame_per_state(tmp_path):
    rng = np.random.default_rng(0)
    animate(rng.uniform(size=(5, 8, 10, 3)), tmp_path / "a.gif")
    with Image.open(tmp_path / "a.gif") as gif:
        assert gif.n_frames == 5
    with pytest.raises(ValueError, match=r"\.gif or \.mp4"):
        animate(rng.uniform(size=(2, 4, 4, 3)), tmp_path / "a.avi")
    with pytest.raises(ValueError, match="shape"):
        animate(rng.uniform(size=(4, 4, 3)), tmp_path / "b.gif")


def test_run_animate_writes_the_gif_of_run_zero(tmp_path):
    out = tmp_path / "out"
    args = ["run", "sirs-grid", "--grid-size", "10", "--steps", "6", "--runs", "2"]
    result = CliRunner().invoke(app, [*args, "--animate", "--out", str(out)])
    assert result.exit_code == 0, result.output
    with Image.open(out / "animation.gif") as gif:
        assert gif.n_frames == 7  # the initial state and 6 steps


def test_run_animate_refuses_a_model_without_a_picture(tmp_path):
    args = ["run", "sir-network", "--agents", "100", "--steps", "2", "--animate"]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "no picture of its state" in result.output
    assert not (tmp_path / "o" / "observables.nc").exists()


def test_duopoly_frame_draws_purchases_on_its_square():
    from agentgrad.models.duopoly import Duopoly

    model = Duopoly(ag.graphs.lattice(6))
    traj = ag.simulate(model, None, jax.random.key(0), 2)
    image = np.asarray(model.frame(traj.final_state))
    bought = np.asarray(traj.final_state.bought_a).reshape(6, 6).astype(bool)
    np.testing.assert_allclose(image[bought], np.broadcast_to(frames.BLUE, image[bought].shape))
    np.testing.assert_allclose(image[~bought], np.broadcast_to(frames.ORANGE, image[~bought].shape))
    odd = Duopoly(ag.graphs.lattice(2, 3))
    with pytest.raises(ag.AgentgradError, match="square"):
        odd.frame(odd.init(odd.param_space.defaults(), jax.random.key(0)))
