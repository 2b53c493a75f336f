"""ag.train: a convex objective, a neural substep driven towards a target, resuming from
a checkpoint, and stopping on a non-finite loss with the last good state kept."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from test_substeps import adoption_model

import agentgrad as ag


def test_train_minimises_a_convex_objective():
    target = jnp.asarray([1.0, -2.0, 0.5])
    x0 = {"a": jnp.zeros(3), "fixed": jnp.ones(2)}

    def loss(x, key):
        return jnp.sum((x["a"] - target) ** 2) + jnp.sum(x["fixed"])

    out = ag.train(
        x0, loss, jax.random.key(0), 300, optimizer=optax.adam(0.05), trainable=lambda x: x["a"]
    )
    np.testing.assert_allclose(out.model["a"], target, atol=1e-3)
    np.testing.assert_array_equal(out.model["fixed"], x0["fixed"])  # not selected
    assert out.loss.shape == (300,) and out.loss[-1] < 1e-4 * out.loss[0] + 2.0 + 1e-5


def _adoption_loss(model, key):
    runs = ag.ensemble(model, None, key, 8, 4).observables["mean"][:, -1]
    return jnp.mean((runs - 0.9) ** 2), {"mean": jnp.mean(runs)}


def test_train_drives_a_neural_substep_and_per_agent_parameters():
    """Straight-through gradients through the agents' discrete adoptions move the network
    and the per-agent biases so that the mean state approaches 0.9."""
    model = adoption_model(n=50)
    out = ag.train(
        model,
        _adoption_loss,
        jax.random.key(1),
        100,
        optimizer=optax.adam(0.05),
        has_aux=True,
        trainable=lambda m: (m.substeps[0].net, m.substeps[0].bias),
    )
    first, last = np.mean(out.loss[:5]), np.mean(out.loss[-5:])
    assert last < 0.2 * first, (first, last)
    assert out.history["mean"][-1] > out.history["mean"][0]
    assert not np.array_equal(out.model.substeps[0].bias, model.substeps[0].bias)


def test_train_resumes_from_its_checkpoint(tmp_path):
    model = adoption_model(n=20)
    kw = dict(has_aux=True, trainable=lambda m: m.substeps[0].bias)
    straight = ag.train(model, _adoption_loss, jax.random.key(2), 10, **kw)
    path = tmp_path / "train.npz"
    ag.train(model, _adoption_loss, jax.random.key(2), 6, checkpoint=path, **kw)
    resumed = ag.train(model, _adoption_loss, jax.random.key(2), 10, checkpoint=path, **kw)
    np.testing.assert_allclose(resumed.loss, straight.loss, rtol=1e-6)
    np.testing.assert_allclose(
        resumed.model.substeps[0].bias, straight.model.substeps[0].bias, rtol=1e-6
    )
    other = adoption_model(n=21)
    with pytest.raises(ag.AgentgradError, match="written for another model"):
        ag.train(other, _adoption_loss, jax.random.key(2), 10, checkpoint=path, **kw)


def test_non_finite_loss_stops_with_the_last_good_state(tmp_path):
    """Gradient descent on sqrt(a) from a = 1 with step 1 overshoots below zero:
    a = 1 -> 0.5 -> -0.207 (loss NaN).  Training stops there and keeps a = 0.5."""
    path = tmp_path / "train.npz"
    with pytest.raises(ag.TrainingError, match="training stopped at step 2") as err:
        ag.train(
            {"a": jnp.ones(())},
            lambda x, k: jnp.sqrt(x["a"]),
            jax.random.key(0),
            10,
            optimizer=optax.sgd(1.0),
            checkpoint=path,
        )
    assert "\n" not in str(err.value) and str(path) in str(err.value)
    np.testing.assert_allclose(err.value.result.model["a"], 0.5)
    assert err.value.result.history["loss"] == [1.0]
    with np.load(path) as saved:
        np.testing.assert_allclose(saved["leaf_0"], 0.5)
        assert int(saved["step"]) == 1


def test_bad_training_input_is_a_one_line_error():
    x = {"a": jnp.ones(3), "n": jnp.arange(3)}
    with pytest.raises(ag.AgentgradError, match="loss must return a scalar, got shape"):
        ag.train(x, lambda x, k: x["a"], jax.random.key(0), 2)
    with pytest.raises(ag.AgentgradError, match="selects no floating-point arrays"):
        ag.train(x, lambda x, k: jnp.sum(x["a"]), jax.random.key(0), 2, trainable=lambda x: x["n"])
    with pytest.raises(ag.AgentgradError, match="n_steps must be a positive integer"):
        ag.train(x, lambda x, k: jnp.sum(x["a"]), jax.random.key(0), 0)
