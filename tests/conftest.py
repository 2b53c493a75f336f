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
