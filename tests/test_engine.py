"""Engine: determinism, compilation caching, vmap ensembles, saving, checkpointing."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import agentgrad as ag

TRACES = {"step": 0}


class CountingWalk(ag.Model):
    """Bernoulli random walk x_{t+1} = x_t + Bernoulli(p); counts how often step is traced."""

    n: int = eqx.field(static=True, default=4)

    @property
    def param_space(self):
        return ag.ParamSpace({"p": ag.Param(0.5, 0.0, 1.0), "x0": ag.Param(0.0, -10.0, 10.0)})

    def init(self, params, key):
        return jnp.full((self.n,), params["x0"])

    def step(self, state, params, key, t):
        TRACES["step"] += 1
        return state + ag.bernoulli(key, params["p"], shape=(self.n,))

    def observe(self, state, params, t):
        return {"mean": jnp.mean(state), "t": t}


def test_same_key_same_trajectory_and_time_index(key):
    model = CountingWalk()
    a = ag.simulate(model, {"p": 0.3}, key, 25)
    b = ag.simulate(model, {"p": 0.3}, key, 25)
    np.testing.assert_array_equal(a.observables["mean"], b.observables["mean"])
    np.testing.assert_array_equal(a.observables["t"], np.arange(1, 26))
    assert float(a.initial_observables["t"]) == 0.0
    c = ag.simulate(model, {"p": 0.3}, jax.random.key(1), 25)
    assert not np.array_equal(a.observables["mean"], c.observables["mean"])


def test_no_recompilation_for_new_values_or_keys(key):
    model = CountingWalk()
    ag.simulate(model, {"p": 0.2}, key, 17)
    before = TRACES["step"]
    for i, p in enumerate([0.1, 0.5, 0.9]):
        ag.simulate(model, {"p": p, "x0": float(i)}, jax.random.key(i + 10), 17)
    ag.simulate(model, {"p": jnp.float32(0.4)}, key, 17)
    assert TRACES["step"] == before
    ag.simulate(model, {"p": 0.2}, key, 18)  # a new length does compile again
    assert TRACES["step"] > before


def test_gradient_of_expected_walk_is_exact_with_straight_through(key):
    """E[x_T] = x0 + T p, so d/dp = T for every sample under straight-through."""
    model = CountingWalk()
    g = jax.grad(lambda p: ag.simulate(model, p, key, 30).observables["mean"][-1])(
        {"p": jnp.float32(0.3), "x0": jnp.float32(0.0)}
    )
    assert float(g["p"]) == pytest.approx(30.0, rel=1e-5)
    assert float(g["x0"]) == pytest.approx(1.0, rel=1e-5)


def test_vmap_over_keys_and_params_matches_loop(key):
    model = CountingWalk()
    keys = jax.random.split(key, 5)
    ps = jnp.linspace(0.1, 0.9, 5)

    def final(p, k):
        return ag.simulate(model, {"p": p}, k, 12).observables["mean"][-1]

    over_keys = jax.vmap(lambda k: final(0.4, k))(keys)
    over_params = jax.vmap(lambda p: final(p, key))(ps)
    np.testing.assert_array_equal(over_keys, [final(0.4, k) for k in keys])
    np.testing.assert_array_equal(over_params, [final(p, key) for p in ps])
    ens = ag.ensemble(model, {"p": 0.4}, keys, 12)
    np.testing.assert_array_equal(ens.observables["mean"][:, -1], over_keys)
    ens2 = ag.ensemble(model, {"p": 0.4}, key, 12, 5)
    np.testing.assert_array_equal(ens2.observables["mean"], ens.observables["mean"])


def test_save_every_and_checkpoint(key):
    model = CountingWalk()
    plain = ag.simulate(model, None, key, 10)
    saved = ag.simulate(model, None, key, 10, save_every=3)
    np.testing.assert_array_equal(plain.observables["mean"], saved.observables["mean"])
    assert saved.states.shape == (3, 4)
    np.testing.assert_allclose(saved.states.mean(-1), plain.observables["mean"][2:9:3])
    np.testing.assert_array_equal(saved.final_state, plain.final_state)

    def loss(p, ckpt):
        return ag.simulate(model, p, key, 10, checkpoint=ckpt).observables["mean"].sum()

    p0 = model.param_space.defaults()
    g0, g1 = jax.grad(loss)(p0, False), jax.grad(loss)(p0, True)
    for k in g0:
        assert float(g0[k]) == pytest.approx(float(g1[k]), rel=1e-6)


def test_bad_options(key):
    model = CountingWalk()
    for bad in (0, -3, 2.5):
        with pytest.raises(ValueError, match="n_steps"):
            ag.simulate(model, None, key, bad)
    with pytest.raises(ValueError, match="save_every"):
        ag.simulate(model, None, key, 5, save_every=6)
    with pytest.raises(ag.ParameterError, match="unknown parameter 'q'"):
        ag.simulate(model, {"q": 1.0}, key, 5)
    with pytest.raises(ValueError, match="n_runs"):
        ag.ensemble(model, None, key, 5, 0)


def test_ensemble_sharded_over_two_devices_matches_single_device(key):
    """Runs split across the 2 CPU devices of the test session give identical results."""
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    assert len(jax.devices()) == 2
    model = CountingWalk()
    keys = jax.random.split(key, 8)
    mesh = Mesh(np.array(jax.devices()), ("runs",))
    sharded = jax.device_put(keys, NamedSharding(mesh, PartitionSpec("runs")))
    a = ag.ensemble(model, {"p": 0.6}, sharded, 9).observables["mean"]
    b = ag.ensemble(model, {"p": 0.6}, keys, 9).observables["mean"]
    np.testing.assert_array_equal(a, b)
