"""SIRNetwork: ODE limit, straight-through vs finite differences, policy-timing gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import agentgrad as ag
from agentgrad.models import sir_mean_field, sir_ode

NO_POLICY = {"quarantine_compliance": 0.0, "distancing_factor": 1.0}
N = 10_000


@pytest.fixture(scope="module")
def complete_model():
    return ag.models.SIRNetwork(graph=ag.graphs.complete(N))


def test_param_names_and_defaults(complete_model):
    d = complete_model.param_space.defaults()
    assert list(d) == [
        "beta",
        "gamma",
        "initial_infected",
        "quarantine_start",
        "quarantine_end",
        "quarantine_compliance",
        "distancing_start",
        "distancing_end",
        "distancing_factor",
    ]
    assert float(d["beta"]) == pytest.approx(0.4) and float(d["gamma"]) == pytest.approx(0.05)


def test_compartments_are_conserved_and_binary(complete_model, key):
    traj = ag.simulate(complete_model, None, key, 40, save_every=10)
    o = traj.observables
    np.testing.assert_allclose(o["susceptible"] + o["infected"] + o["recovered"], 1.0, atol=1e-5)
    np.testing.assert_allclose(-np.diff(o["susceptible"]), o["new_infected"][1:], atol=1e-5)
    s = traj.states
    for field in (s.susceptible, s.infected, s.recovered):
        assert set(np.unique(field).tolist()) <= {0.0, 1.0}


def test_all_estimators_give_the_same_trajectory(key):
    graph = ag.graphs.erdos_renyi(2000, 8, key=key)
    ref = None
    for est in (ag.StraightThrough(), ag.GumbelSoftmax(0.1), ag.NoGradient()):
        obs = ag.simulate(ag.models.SIRNetwork(graph=graph, estimator=est), None, key, 30)
        if ref is None:
            ref = obs.observables
        for name in ref:
            np.testing.assert_array_equal(obs.observables[name], ref[name])


def test_mean_field_and_ode_limit(complete_model):
    """Complete graph, N = 1e4, no policies, 64 runs.

    Against the expected one-step map (N -> inf, dt = 1): max |mean - map| < 3% of the peak.
    Against the SIR ODE with dt = 0.1 (§9; O(dt) discretisation): < 10% of the peak.
    """
    ens = ag.ensemble(complete_model, NO_POLICY, jax.random.key(3), 60, 64)
    mean = ens.observables["new_infected"].mean(0)
    mf = sir_mean_field(0.4 * N / (N - 1), 0.05, 0.005, 60)["new_infected"]
    assert float(jnp.abs(mean - mf).max()) < 0.03 * float(mf.max())

    fine = ag.models.SIRNetwork(graph=complete_model.graph, dt=0.1)
    p = {**NO_POLICY, "gamma": 0.1, "initial_infected": 0.01}
    ens = ag.ensemble(fine, p, jax.random.key(4), 400, 32)
    mean = ens.observables["new_infected"].mean(0)
    ode = sir_ode(0.4, 0.1, 0.01, 400, dt=0.1)["new_infected"]
    assert float(jnp.abs(mean - ode).max()) < 0.10 * float(ode.max())


@pytest.mark.slow  # run by .ci/run
def test_straight_through_matches_finite_differences(complete_model):
    """d(total infections)/d(beta, gamma, initial_infected), 128 runs, common random numbers.

    Central differences with a 5% relative step; agreement within 10% (observed: 1-3%).
    """
    keys = jax.random.split(jax.random.key(1), 128)
    base = complete_model.param_space.complete(
        {**NO_POLICY, "beta": 0.2, "gamma": 0.1, "initial_infected": 0.01}
    )

    def total(params, k):
        return ag.simulate(complete_model, params, k, 60).observables["new_infected"].sum()

    ad = jax.vmap(lambda k: jax.grad(total)(base, k))(keys)
    for name in ("beta", "gamma", "initial_infected"):
        h = 0.05 * float(base[name])
        up, down = dict(base), dict(base)
        up[name], down[name] = base[name] + h, base[name] - h
        fd = jax.vmap(lambda k, up=up, down=down: total(up, k) - total(down, k))(keys) / (2 * h)
        assert float(ad[name].mean()) == pytest.approx(float(fd.mean()), rel=0.10), name


def test_policy_timing_gradients(complete_model):
    """Jacobian of daily new infections w.r.t. policy times (default policies, 16 runs)."""
    keys = jax.random.split(jax.random.key(2), 16)
    base = complete_model.param_space.defaults()

    def series(params, k):
        return ag.simulate(complete_model, params, k, 60).observables["new_infected"]

    jac = jax.vmap(lambda k: jax.jacfwd(series)(base, k))(keys)
    for name, start in (
        ("quarantine_start", 15),
        ("quarantine_end", 15),
        ("distancing_start", 10),
        ("distancing_end", 10),
    ):
        g = np.asarray(jac[name].mean(0))
        assert np.all(np.isfinite(g)), name
        scale = np.abs(g).max()
        assert scale > 0, name
        # no policy can act before its window opens (Gaussian tangent, sigma = 1: 6 sigma)
        assert np.abs(g[: start - 6]).max() <= 1e-6 * scale, name
    q0 = np.asarray(jac["quarantine_start"].mean(0))
    assert np.abs(q0).argmax() in range(13, 19)  # largest near the quarantine start (t=15)
    q1 = np.asarray(jac["quarantine_end"].mean(0))
    assert np.abs(q1[26:]).max() > 0.05 * np.abs(q1).max()  # still sensitive after the end


def test_gradients_on_sparse_graph_are_finite(key):
    model = ag.models.SIRNetwork(
        graph=ag.graphs.erdos_renyi(3000, 10, key=key), estimator=ag.GumbelSoftmax(0.1)
    )
    g = jax.grad(lambda p: ag.simulate(model, p, key, 30).observables["new_infected"].sum())(
        model.param_space.defaults()
    )
    assert all(np.isfinite(float(v)) for v in g.values())
    assert float(g["beta"]) > 0


def test_invalid_configuration():
    with pytest.raises(ValueError, match="dt must be > 0"):
        ag.models.SIRNetwork(graph=ag.graphs.complete(10), dt=0.0)
