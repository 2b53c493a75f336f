"""Test configuration: 2 CPU devices (sharding testable on CPU), strict dtype promotion."""

import jax

jax.config.update("jax_num_cpu_devices", 2)
jax.config.update("jax_numpy_dtype_promotion", "strict")

import pytest  # noqa: E402


@pytest.fixture
def key():
    return jax.random.key(0)


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_code():
    """Drop compiled executables after each test module.  Every executable keeps memory
    mappings; the whole suite in one process otherwise passes Linux's default
    vm.max_map_count (65530) and XLA aborts while compiling."""
    yield
    jax.clear_caches()


@pytest.fixture
def calibrate_uninformed():
    """``calibrate_uninformed(method, key)``: calibrate SIRNetwork (complete graph of 300,
    data from beta = 0.5, gamma = 0.1, 20 steps of infected and recovered) in ``beta`` and
    ``distancing_start``, which has no effect with ``distancing_factor = 1``."""
    import agentgrad as ag
    from agentgrad.calibration import calibrate

    model = ag.models.SIRNetwork(graph=ag.graphs.complete(300))
    fixed = {"distancing_factor": 1.0, "quarantine_compliance": 0.0}
    params = model.param_space.complete({**fixed, "beta": 0.5, "gamma": 0.1})
    obs = ag.simulate(model, params, jax.random.key(1), 20).observables
    observed = {k: obs[k] for k in ("infected", "recovered")}

    def run(method, key):
        return calibrate(
            model, observed, key, method, parameters=["beta", "distancing_start"], fixed=fixed
        )

    return run
