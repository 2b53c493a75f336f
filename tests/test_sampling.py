"""Samplers and estimators: exact primal, correct frequencies, known tangents."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import agentgrad as ag

ESTIMATORS = [ag.StraightThrough(), ag.GumbelSoftmax(0.1), ag.GumbelSoftmax(1.0), ag.NoGradient()]


def test_primal_identical_across_estimators(key):
    p = jnp.linspace(0.0, 1.0, 101)
    probs = jnp.array([0.1, 0.0, 0.6, 0.3])
    ref = None
    for est in ESTIMATORS:
        draws = (
            ag.bernoulli(key, p, est),
            ag.categorical(key, probs, est, shape=(50,)),
            ag.binomial(key, 20.0, p, est),
            ag.poisson(key, 5.0 * p, est),
        )
        if ref is None:
            ref = draws
        for a, b in zip(draws, ref, strict=True):
            np.testing.assert_array_equal(a, b)


def test_bernoulli_frequency_and_dtype(key):
    x = ag.bernoulli(key, 0.3, shape=(200_000,))
    assert x.dtype == jnp.float32
    assert set(np.unique(x).tolist()) <= {0.0, 1.0}
    # 5 standard errors: sd = sqrt(0.21 / 2e5) ~ 1e-3
    assert float(x.mean()) == pytest.approx(0.3, abs=5e-3)


def test_categorical_frequency_and_zero_probability(key):
    probs = jnp.array([0.2, 0.0, 0.5, 0.3])
    x = ag.categorical(key, probs, shape=(100_000,))
    assert x.shape == (100_000, 4)
    np.testing.assert_array_equal(x.sum(-1), 1.0)
    np.testing.assert_allclose(x.mean(0), probs, atol=0.007)
    assert float(x[:, 1].sum()) == 0.0
    y = ag.categorical(key, logits=jnp.log(probs + 1e-30), shape=(100_000,))
    np.testing.assert_allclose(y.mean(0), probs, atol=0.007)


def test_binomial_mean(key):
    x = ag.binomial(key, 30.0, 0.2, shape=(50_000,))
    assert float(x.mean()) == pytest.approx(6.0, abs=0.05)
    assert float(x.var()) == pytest.approx(4.8, rel=0.05)


def test_poisson_mean_and_variance(key):
    x = ag.poisson(key, 3.5, shape=(50_000,))
    assert float(x.mean()) == pytest.approx(3.5, abs=0.03)
    assert float(x.var()) == pytest.approx(3.5, rel=0.05)
    assert float(jax.grad(lambda lam: ag.poisson(key, lam, shape=(4,)).sum())(2.0)) == 4.0


def test_straight_through_tangents_are_tangents_of_the_mean(key):
    g = jax.grad(lambda p: ag.bernoulli(key, p, shape=(10,)).sum())(0.3)
    assert float(g) == pytest.approx(10.0)
    probs = jnp.array([0.2, 0.5, 0.3])
    w = jnp.array([1.0, 2.0, 5.0])
    g = jax.grad(lambda q: (ag.categorical(key, q) * w).sum())(probs)
    expected = jax.grad(lambda q: (jax.nn.softmax(jnp.log(q)) * w).sum())(probs)
    np.testing.assert_allclose(g, expected, rtol=1e-5)
    g = jax.grad(lambda p: ag.binomial(key, 12.0, p))(0.4)
    assert float(g) == pytest.approx(12.0)


def test_no_gradient_is_zero(key):
    est = ag.NoGradient()
    assert float(jax.grad(lambda p: ag.bernoulli(key, p, est, (5,)).sum())(0.3)) == 0.0


def test_gumbel_softmax_tangent_matches_relaxation(key):
    """ST-GS tangent = derivative of sigmoid((logit p - logit u) / tau), averaged ~ 1."""
    tau = 0.5
    est = ag.GumbelSoftmax(tau)
    u = jax.random.uniform(key, (7,))

    def relaxed(p):
        return jax.nn.sigmoid((jnp.log(p / (1 - p)) - jnp.log(u / (1 - u))) / tau).sum()

    g = jax.grad(lambda p: ag.bernoulli(key, p, est, (7,)).sum())(0.3)
    assert float(g) == pytest.approx(float(jax.grad(relaxed)(0.3)), rel=1e-4)
    # the relaxed mean's derivative approaches d E[x]/dp = 1 as tau -> 0 (small bias)
    g = jax.grad(lambda p: ag.bernoulli(key, p, ag.GumbelSoftmax(0.1), (400_000,)).mean())(0.3)
    assert float(g) == pytest.approx(1.0, abs=0.1)


def test_gumbel_softmax_soft_mode_is_relaxed(key):
    x = ag.bernoulli(key, 0.4, ag.GumbelSoftmax(0.5, hard=False), shape=(1000,))
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    assert np.mean(np.isin(np.asarray(x), [0.0, 1.0])) < 0.1  # mostly strictly between
    y = ag.categorical(key, jnp.array([0.3, 0.7]), ag.GumbelSoftmax(0.5, hard=False), shape=(9,))
    np.testing.assert_allclose(y.sum(-1), 1.0, rtol=1e-6)


def test_estimator_validation_and_parsing():
    from agentgrad.estimators import parse_estimator

    with pytest.raises(ValueError, match="temperature must be > 0"):
        ag.GumbelSoftmax(0.0)
    assert parse_estimator("gs:0.05") == ag.GumbelSoftmax(0.05)
    assert parse_estimator("st") == ag.StraightThrough()
    assert parse_estimator("none") == ag.NoGradient()
    assert parse_estimator("gs-soft:0.2") == ag.GumbelSoftmax(0.2, hard=False)
    for bad in ("gs:x", "gs:-1", "magic"):
        with pytest.raises(ValueError):
            parse_estimator(bad)


class _NoiseSpy(ag.StraightThrough):
    """Records what the categorical sampler hands to its estimator."""

    def categorical(self, hard, logp, gumbel):
        _SEEN["categorical"] = (hard, logp, gumbel)
        return hard


_SEEN = {}


def test_categorical_gumbel_noise_is_consistent_and_gumbel_distributed(key):
    """Inversion draw + conditional Gumbel noise: argmax(log p + g) is the draw, and g
    is marginally standard Gumbel (mean 0.5772, variance pi^2/6 = 1.645)."""
    probs = jnp.array([0.2, 0.0, 0.5, 0.3])
    ag.categorical(key, probs, _NoiseSpy(), shape=(200_000,))
    hard, logp, g = _SEEN["categorical"]
    np.testing.assert_array_equal(jnp.argmax(logp + g, -1), jnp.argmax(hard, -1))
    g = np.asarray(g)[:, [0, 2, 3]]
    np.testing.assert_allclose(g.mean(0), 0.5772, atol=0.01)
    np.testing.assert_allclose(g.var(0), np.pi**2 / 6, rtol=0.02)
