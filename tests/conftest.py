"""Test configuration: 2 CPU devices (sharding testable on CPU), strict dtype promotion."""

import jax

jax.config.update("jax_num_cpu_devices", 2)
jax.config.update("jax_numpy_dtype_promotion", "strict")

import pytest  # noqa: E402


@pytest.fixture
def key():
    return jax.random.key(0)
