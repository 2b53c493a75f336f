"""One simulation partitioned over 2 host devices (conftest sets jax_num_cpu_devices=2)
equals the one-device run, for every model of the library: forward, jax.grad, jax.jvp and
stochastic-derivative estimates."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import agentgrad as ag
from agentgrad.estimators import StraightThrough
from agentgrad.models import REGISTRY, BuildOptions
from agentgrad.models.duopoly import Duopoly
from agentgrad.models.nca import NeuralCA
from agentgrad.spaces.graphs import lattice

SHARDED = ag.Sharding(2)
RTOL, ATOL = 1e-5, 1e-5  # sums over blocks may be reordered


def _registry_model(name):
    entry = REGISTRY[name]
    small = {"agents": 64} if "agents" in entry.options else {}
    if "grid_size" in entry.options:
        small["grid_size"] = 12
    return entry.build(BuildOptions(StraightThrough(), 0, **small))


MODELS = {name: (lambda name=name: _registry_model(name)) for name in sorted(REGISTRY)}
MODELS["nca"] = lambda: NeuralCA(size=12, key=jax.random.key(3))
MODELS["duopoly"] = lambda: Duopoly(lattice(6))


def _close(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=RTOL, atol=ATOL)


# 9-40 s each; the default run keeps one graph model and one substep model
SLOW = set(MODELS) - {"sir-network", "duopoly"}


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in sorted(MODELS)]
)
def test_sharded_run_and_derivatives_equal_one_device(name):
    model = MODELS[name]()
    key = jax.random.key(0)
    # differentiate with respect to the parameters, or the network weights (NCA)
    params, arrays = model.param_space.defaults(), None
    if not params:
        arrays, static = eqx.partition(model, eqx.is_inexact_array)

    def total(x, sharding):
        m, p = (model, x) if arrays is None else (eqx.combine(x, static), params)
        obs = ag.simulate(m, p, key, 4, sharding=sharding).observables
        return sum(jnp.sum(v) for v in obs.values())

    one = ag.simulate(model, params, key, 4)
    many = ag.simulate(model, params, key, 4, sharding=SHARDED)
    _close(one.observables, many.observables)
    _close(one.final_state, many.final_state)
    x = params if arrays is None else arrays
    _close(jax.grad(total)(x, None), jax.grad(total)(x, SHARDED))
    direction = jax.tree.map(lambda v: jnp.ones_like(v) / jnp.size(v), x)
    _close(
        jax.jvp(lambda v: total(v, None), (x,), (direction,)),
        jax.jvp(lambda v: total(v, SHARDED), (x,), (direction,)),
    )


def test_agent_arrays_are_split_across_devices():
    model = ag.models.SIRNetwork(graph=ag.graphs.erdos_renyi(400, 6.0, key=0))
    traj = ag.simulate(model, None, jax.random.key(0), 3, sharding=SHARDED)
    infected = traj.final_state.infected
    assert len(infected.sharding.device_set) == 2
    assert {s.data.shape for s in infected.addressable_shards} == {(200,)}


@pytest.mark.parametrize("name", ["sir-network", pytest.param("seirm", marks=pytest.mark.slow)])
def test_sharded_stochastic_derivative_equals_one_device(name):
    from agentgrad.gradients import with_estimator

    model = with_estimator(MODELS[name](), ag.StochasticDerivative())
    params = model.param_space.defaults()
    first = next(iter(params))
    direction = {k: jnp.float32(k == first) for k in params}

    def estimate(sharding, k):
        def fn(p, key):
            return ag.simulate(model, p, key, 5, sharding=sharding).observables["infected"]

        return ag.stochad.derivative_estimate(fn, params, k, direction)

    for seed in range(3):
        k = jax.random.key(seed)
        _close(estimate(None, k), estimate(SHARDED, k))


def test_bad_sharding_requests_fail_with_one_line():
    with pytest.raises(ag.AgentgradError, match="3 devices requested but only 2"):
        ag.Sharding(3)
    with pytest.raises(ag.AgentgradError, match="devices must be >= 1"):
        ag.Sharding(0)
    odd = ag.models.SIRNetwork(graph=ag.graphs.erdos_renyi(101, 6.0, key=0))
    with pytest.raises(ag.AgentgradError, match="101 nodes, not a multiple of 2"):
        ag.simulate(odd, None, jax.random.key(0), 2, sharding=SHARDED)
    with pytest.raises(TypeError, match="agentgrad.Sharding"):
        ag.simulate(odd, None, jax.random.key(0), 2, sharding=2)


def test_cache_blocked_graph_is_partitioned_in_csr_order():
    graph = ag.graphs.erdos_renyi(400, 6.0, key=0)
    one = ag.models.SIRNetwork(graph=graph)
    blocked = ag.models.SIRNetwork(graph=graph.with_sender_blocks(3))
    a = ag.simulate(one, None, jax.random.key(0), 6).observables
    b = ag.simulate(blocked, None, jax.random.key(0), 6, sharding=SHARDED).observables
    _close(a, b)
