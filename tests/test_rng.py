"""agentgrad.rng draws the same bits as jax.random, for every key and shape it accepts."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from agentgrad import rng
from agentgrad.sampling import bernoulli

SHAPES = [(), (1,), (7,), (1000,), (3, 5), (4, 0), (2, 3, 4)]


def _same(a: jax.Array, b: jax.Array) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(
    "make_key",
    [jax.random.key, jax.random.PRNGKey, lambda s: jax.random.split(jax.random.key(s))[1]],
    ids=["typed", "legacy", "split"],
)
def test_bits_and_uniform_equal_jax_random(shape, make_key):
    for seed in range(3):
        key = make_key(seed)
        assert _same(rng.random_bits(key, shape), jax.random.bits(key, shape))
        assert _same(rng.uniform(key, shape), jax.random.uniform(key, shape))
        assert _same(
            rng.uniform(key, shape, jnp.float32, 1e-20, 2.5),
            jax.random.uniform(key, shape, jnp.float32, 1e-20, 2.5),
        )
        assert _same(rng.normal(key, shape), jax.random.normal(key, shape))


def test_uniform_equal_under_jit_vmap_and_array_bounds():
    keys = jax.random.split(jax.random.key(3), 5)
    ours = jax.jit(jax.vmap(lambda k: rng.uniform(k, (4, 10))))(keys)
    assert _same(ours, jax.vmap(lambda k: jax.random.uniform(k, (4, 10)))(keys))
    ours = jax.jit(jax.vmap(lambda k: rng.normal(k, (4, 10))))(keys)
    assert _same(ours, jax.vmap(lambda k: jax.random.normal(k, (4, 10)))(keys))
    low = jnp.linspace(0.0, 1.0, 10, dtype=jnp.float32)
    key = jax.random.key(4)
    assert _same(
        rng.uniform(key, (4, 10), minval=low, maxval=low + 2.0),
        jax.random.uniform(key, (4, 10), minval=low, maxval=low + 2.0),
    )


def test_uniform_float64_and_default_dtype_under_x64():
    with jax.enable_x64(True):
        key = jax.random.key(5)
        ours = rng.uniform(key, (100,))
        assert ours.dtype == jnp.float64
        assert _same(ours, jax.random.uniform(key, (100,)))
        assert _same(rng.random_bits(key, (9,), 64), jax.random.bits(key, (9,), jnp.uint64))
        assert _same(rng.normal(key, (100,)), jax.random.normal(key, (100,)))


def test_other_key_implementations_fall_back_to_jax_random():
    key = jax.random.key(6, impl="rbg")
    assert _same(rng.uniform(key, (50,)), jax.random.uniform(key, (50,)))
    assert _same(rng.normal(key, (50,)), jax.random.normal(key, (50,)))
    assert _same(rng.normal(key, (5,), jnp.bfloat16), jax.random.normal(key, (5,), jnp.bfloat16))
    with jax.threefry_partitionable(False):
        key = jax.random.key(7)
        assert _same(rng.uniform(key, (50,)), jax.random.uniform(key, (50,)))


def test_threefry_matches_the_published_known_answer():
    # Salmon et al. (2011), Random123 known-answer test for threefry2x32_20
    k = jnp.uint32(0x13198A2E), jnp.uint32(0x03707344)
    x = jnp.uint32(0x243F6A88), jnp.uint32(0x85A308D3)
    out = rng.threefry2x32(*k, *x)
    assert [int(v) for v in out] == [0xC4923A9C, 0x483DF7A0]


def test_bernoulli_is_uniform_below_p():
    key, p = jax.random.key(8), jnp.linspace(0.0, 1.0, 200, dtype=jnp.float32)
    expected = (jax.random.uniform(key, (200,), jnp.float32) < p).astype(jnp.float32)
    assert _same(bernoulli(key, p), expected)
