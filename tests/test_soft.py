"""Smooth control flow: exact primal values and the surrogate's tangent."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy.stats import norm

from agentgrad import soft

X = jnp.array([-2.0, -0.5, 0.0, 0.3, 1.7])


@pytest.mark.parametrize(
    "kind, derivative",
    [
        ("sigmoid", lambda x, s: jax.nn.sigmoid(x / s) * (1 - jax.nn.sigmoid(x / s)) / s),
        ("gaussian", lambda x, s: norm.pdf(x / s) / s),
        ("linear", lambda x, s: jnp.where(jnp.abs(x) < s, 0.5 / s, 0.0)),
    ],
)
def test_step_primal_and_tangent(kind, derivative):
    scale = 0.8
    np.testing.assert_array_equal(soft.step(X, kind, scale), (X >= 0).astype(jnp.float32))
    tangent = jax.vmap(jax.grad(lambda x: soft.step(x, kind, scale)))(X)
    np.testing.assert_allclose(tangent, derivative(X, scale), rtol=1e-5, atol=1e-7)


def test_unknown_surrogate():
    with pytest.raises(ValueError, match="unknown step surrogate"):
        soft.step(X, "cubic")


def test_gate_window_and_gradients():
    t = jnp.arange(0.0, 30.0)
    g = soft.gate(t, 10.0, 20.0)
    np.testing.assert_array_equal(g, ((t >= 10) & (t < 20)).astype(jnp.float32))
    # d gate / d start at time t = -phi(t - start) * (1 - H(t - end)) (sigma = 1)
    d_start = jax.vmap(jax.grad(lambda s, tt: soft.gate(tt, s, 20.0)), (None, 0))(10.0, t)
    np.testing.assert_allclose(
        d_start, -norm.pdf(t - 10.0) * (t < 20).astype(jnp.float32), rtol=1e-5, atol=1e-8
    )
    d_end = jax.vmap(jax.grad(lambda e, tt: soft.gate(tt, 10.0, e)), (None, 0))(20.0, t)
    np.testing.assert_allclose(
        d_end, norm.pdf(t - 20.0) * (t >= 10).astype(jnp.float32), rtol=1e-5, atol=1e-8
    )


def test_where_passes_gradient_to_both_branches():
    m = soft.step(jnp.float32(0.2))
    assert float(soft.where(m, 3.0, 7.0)) == 3.0
    dx, dy = jax.grad(lambda x, y: soft.where(m, x, y), argnums=(0, 1))(3.0, 7.0)
    assert (float(dx), float(dy)) == (1.0, 0.0)
    dmask = jax.grad(lambda z: soft.where(soft.step(z), 3.0, 7.0))(0.2)
    assert float(dmask) == pytest.approx(-4.0 * float(jax.grad(jax.nn.sigmoid)(0.2)), rel=1e-5)


def test_argmax_one_hot_with_softmax_tangent():
    x = jnp.array([[0.1, 2.0, -1.0], [3.0, 0.0, 2.9]])
    np.testing.assert_array_equal(soft.argmax(x), jax.nn.one_hot(jnp.array([1, 0]), 3))
    w = jnp.array([1.0, -2.0, 0.5])
    tau = 0.7
    g = jax.grad(lambda z: (soft.argmax(z, temperature=tau) * w).sum())(x)
    ref = jax.grad(lambda z: (jax.nn.softmax(z / tau) * w).sum())(x)
    np.testing.assert_allclose(g, ref, rtol=1e-5)
    assert soft.argmax(x, axis=0).shape == (2, 3)


def test_max_min_exact_with_logsumexp_tangent():
    x = jnp.array([0.5, 2.0, 1.9])
    assert float(soft.max(x)) == 2.0 and float(soft.min(x)) == 0.5
    np.testing.assert_allclose(
        jax.grad(lambda z: soft.max(z, temperature=0.3))(x), jax.nn.softmax(x / 0.3), rtol=1e-5
    )
    np.testing.assert_allclose(
        jax.grad(lambda z: soft.min(z, temperature=0.3))(x), jax.nn.softmax(-x / 0.3), rtol=1e-5
    )


def test_comparisons_exact_including_ties():
    a = jnp.array([1.0, 2.0, 3.0])
    b = jnp.array([2.0, 2.0, 2.0])
    np.testing.assert_array_equal(soft.greater(a, b), [0.0, 0.0, 1.0])
    np.testing.assert_array_equal(soft.greater_equal(a, b), [0.0, 1.0, 1.0])
    np.testing.assert_array_equal(soft.less(a, b), [1.0, 0.0, 0.0])
    np.testing.assert_array_equal(soft.less_equal(a, b), [1.0, 1.0, 0.0])
    s = jax.grad(jax.nn.sigmoid)(0.0)
    assert float(jax.grad(lambda z: soft.greater(z, 2.0))(2.0)) == pytest.approx(float(s))
    assert float(jax.grad(lambda z: soft.less(z, 2.0))(2.0)) == pytest.approx(-float(s))


def test_logic_truth_tables_and_tangents():
    a = jnp.array([0.0, 0.0, 1.0, 1.0])
    b = jnp.array([0.0, 1.0, 0.0, 1.0])
    np.testing.assert_array_equal(soft.logical_and(a, b), [0, 0, 0, 1])
    np.testing.assert_array_equal(soft.logical_or(a, b), [0, 1, 1, 1])
    np.testing.assert_array_equal(soft.logical_not(a), [1, 1, 0, 0])
    # d(a or b)/da = 1 - b
    np.testing.assert_array_equal(jax.vmap(jax.grad(soft.logical_or))(a, b), 1 - b)
