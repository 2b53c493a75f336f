"""Stochastic derivatives never silently wrong (issue 13 §4): misuse inside JAX
transformations raises, large draws flip the right element, one-sided derivatives on
parameter boundaries, vector parameters, and the geometric sampler against exact values."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import agentgrad as ag
from agentgrad.stochad import StochasticDerivativeError, derivative_estimate, grad_estimate

SD = ag.StochasticDerivative()
ONE = {"p": jnp.float32(1.0)}


def _scan(p, key):
    def body(c, k):
        return c + ag.bernoulli(k, p["p"], SD), None

    return jax.lax.scan(body, 0.0, jax.random.split(key, 4))[0]


def _fori(p, key):
    return jax.lax.fori_loop(
        0, 3, lambda i, c: c + ag.bernoulli(jax.random.fold_in(key, i), p["p"], SD), 0.0
    )


def _vmap(p, key):
    return jax.vmap(lambda k: ag.bernoulli(k, p["p"], SD))(jax.random.split(key, 4)).sum()


def _cond(p, key):
    return jax.lax.cond(True, lambda: ag.bernoulli(key, p["p"], SD), lambda: 0.0)


def _jit(p, key):
    return jax.jit(lambda q: ag.bernoulli(key, q, SD))(p["p"])


def _checkpoint(p, key):
    return jax.checkpoint(lambda q: ag.bernoulli(key, q, SD))(p["p"])


@pytest.mark.parametrize(
    "fn, construct",
    [
        (_scan, "lax.scan"),
        (_fori, "fori_loop"),
        (_vmap, "jax.vmap"),
        (_cond, "cond"),
        (_jit, "jax.jit"),
        (_checkpoint, "jax.checkpoint"),
    ],
)
def test_draw_inside_a_user_transformation_raises(fn, construct):
    """Before: each of these contributed exactly 0 (mean 0 where the derivative is 64)."""
    with pytest.raises(StochasticDerivativeError, match=construct.split(".")[-1]) as err:
        derivative_estimate(fn, {"p": jnp.float32(0.3)}, jax.random.key(0), ONE)
    assert "agentgrad.simulate" in str(err.value)


def test_misuse_inside_a_model_step_raises_our_error(key):
    class ScanInStep(ag.Model):
        @property
        def param_space(self):
            return ag.ParamSpace({"p": ag.Param(0.3, 0.0, 1.0)})

        def init(self, params, key):
            return jnp.zeros(())

        def step(self, state, params, key, t):
            def body(c, k):
                return c + ag.bernoulli(k, params["p"], SD), None

            return jax.lax.scan(body, state, jax.random.split(key, 3))[0]

        def observe(self, state, params, t):
            return {"x": state}

    def fn(p, k):
        return ag.simulate(ScanInStep(), p, k, 3).observables["x"][-1]

    with pytest.raises(StochasticDerivativeError, match="lax.scan"):
        derivative_estimate(fn, {"p": jnp.float32(0.3)}, jax.random.key(0), ONE)


def test_python_loops_and_vmap_of_the_estimate_still_work():
    """The supported forms: a Python loop at the top level, vmap over keys outside."""

    def walk(p, key):
        x = 0.0
        for t in range(10):
            x = x + ag.bernoulli(jax.random.fold_in(key, t), p["p"], SD)
        return x**2

    keys = jax.random.split(jax.random.key(1), 4000)
    est = jax.vmap(lambda k: derivative_estimate(walk, {"p": jnp.float32(0.5)}, k, ONE))(keys)
    # d/dp E[S^2], S ~ Binomial(10, p): 10 (1 - 2p) + 2 * 10 * 10 p - 10 ... = 10 + 180 p
    # E[S^2] = 10 p (1 - p) + 100 p^2  ->  d/dp = 10 - 20 p + 200 p = 100 at p = 0.5
    se = float(est.std() / np.sqrt(est.size))
    assert abs(float(est.mean()) - 100.0) < 4 * se


def test_flip_is_exact_beyond_float32_integer_range():
    """A draw with 2^24 + 8 elements: only the last has a jump weight (direction e_last,
    p = 0 there, so the draw is 0 and the weight is exactly 1).  The estimate must flip
    that element: d E[3 x_last] / dp_last = 3, for every key (float32 indices rounded
    16777223 to 16777224 and flipped nothing)."""
    n = 2**24 + 8
    p = jnp.full((n,), 0.5, jnp.float32).at[-1].set(0.0)
    direction = {"p": jnp.zeros((n,), jnp.float32).at[-1].set(1.0)}

    def fn(params, key):
        x = ag.bernoulli(key, params["p"], SD)
        return 3.0 * x[-1] + 0.0 * jnp.sum(x[:-1])

    for seed in range(2):
        est = derivative_estimate(fn, {"p": p}, jax.random.key(seed), direction)
        assert float(est) == 3.0


@pytest.mark.parametrize("estimator", [ag.StraightThrough(), ag.SmoothedStochasticDerivative()])
def test_one_sided_derivative_on_the_boundary(estimator):
    """d E[X] / dp = 1 at p = 0 and p = 1 (was 0.5 from jnp.clip); Binomial n; Poisson 1."""
    k = jax.random.key(0)
    for p0 in (0.0, 1.0):
        g = jax.grad(lambda p: ag.bernoulli(k, p, estimator, shape=(100,)).mean())(jnp.float32(p0))
        assert float(g) == pytest.approx(1.0, rel=1e-5)
        g = jax.grad(lambda p: ag.binomial(k, 5.0, p, estimator, shape=(100,)).mean())(
            jnp.float32(p0)
        )
        assert float(g) == pytest.approx(5.0, rel=1e-5)
    g = jax.grad(lambda lam: ag.poisson(k, lam, estimator, shape=(100,)).mean())(jnp.float32(0.0))
    assert float(g) == pytest.approx(1.0, rel=1e-5)
    # outside the domain the clipped parameter has no derivative
    g = jax.grad(lambda p: ag.bernoulli(k, p, estimator, shape=(10,)).mean())(jnp.float32(1.5))
    assert float(g) == 0.0


def test_stochastic_derivative_one_sided_on_the_boundary():
    def fn(p, k):
        return ag.bernoulli(k, p["p"], SD, shape=(10,)).sum()

    at0 = derivative_estimate(fn, {"p": jnp.float32(0.0)}, jax.random.key(0), ONE)
    at1 = derivative_estimate(fn, {"p": jnp.float32(1.0)}, jax.random.key(0), {"p": -1.0})
    assert float(at0) == 10.0 and float(at1) == -10.0  # exact: every X is certain


def test_grad_estimate_vector_parameter():
    """d E[sum_i c_i X_i] / dp_i = c_i with X_i ~ Bernoulli(p_i); jacobian layout."""

    def fn(params, key):
        x = ag.bernoulli(key, params["p"], SD)
        return jnp.stack([jnp.sum(x * jnp.arange(1.0, 4.0)), x[0]])

    g = grad_estimate(fn, {"p": jnp.array([0.2, 0.5, 0.7]), "q": 1.0}, jax.random.key(0), 4000)
    assert g["p"].shape == (4000, 2, 3) and g["q"].shape == (4000, 2)
    mean, se = g["p"].mean(0), g["p"].std(0) / np.sqrt(4000)
    exact = np.array([[1.0, 2.0, 3.0], [1.0, 0.0, 0.0]])
    assert np.all(np.abs(mean - exact) <= 4 * se + 1e-6)
    assert np.all(g["q"] == 0)


def test_geometric_sampler_law():
    x = np.asarray(ag.geometric(jax.random.key(3), 0.3, shape=(200_000,)))
    assert x.min() == 0 and np.all(x == np.floor(x))
    assert abs(x.mean() - 0.7 / 0.3) < 4 * np.sqrt(0.7 / 0.09 / x.size)
    for k in range(4):  # P(X = k) = 0.7^k 0.3
        exact = 0.7**k * 0.3
        assert abs((x == k).mean() - exact) < 4 * np.sqrt(exact * (1 - exact) / x.size)
    assert float(ag.geometric(jax.random.key(0), 1.0)) == 0.0


@pytest.mark.parametrize("p0", [0.3, 0.8])
def test_geometric_derivatives_against_exact(p0):
    """d E[X] / dp = -1 / p^2: straight-through exactly, the stochastic derivative and its
    smoothed version in expectation (4 s.e., 4000 samples of 20 draws)."""
    exact = -1.0 / p0**2
    k = jax.random.key(0)
    st = jax.grad(lambda p: ag.geometric(k, p, shape=(20,)).mean())(jnp.float32(p0))
    assert float(st) == pytest.approx(exact, rel=1e-5)

    def fn(params, key, est=SD):
        return ag.geometric(key, params["p"], est, shape=(20,)).mean()

    g = np.asarray(grad_estimate(fn, {"p": p0}, jax.random.key(1), 4000)["p"])
    assert abs(g.mean() - exact) < 4 * g.std() / np.sqrt(g.size)
    smoothed = ag.SmoothedStochasticDerivative()
    keys = jax.random.split(jax.random.key(2), 4000)
    gs = jax.vmap(lambda kk: jax.grad(lambda p: fn({"p": p}, kk, smoothed))(jnp.float32(p0)))(keys)
    assert abs(float(gs.mean()) - exact) < 4 * float(gs.std()) / np.sqrt(4000)


def test_many_top_level_draws_warn_and_point_to_simulate():
    from agentgrad.stochad.estimate import MANY_TOP_LEVEL_DRAWS

    def walk(p, key):
        return sum(
            ag.bernoulli(jax.random.fold_in(key, t), p["p"], SD)
            for t in range(MANY_TOP_LEVEL_DRAWS + 1)
        )

    with pytest.warns(UserWarning, match="agentgrad.simulate"):  # tracing only, no compile
        jax.eval_shape(
            lambda k: derivative_estimate(walk, {"p": jnp.float32(0.3)}, k, ONE),
            jax.random.key(0),
        )
