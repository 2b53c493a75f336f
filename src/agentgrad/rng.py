"""Uniform and normal random numbers bitwise equal to ``jax.random``'s, fast at large
sizes on CPU.

``jax.random.uniform`` hashes each element's flat index ``i`` with Threefry-2x32
(20 rounds; Salmon et al. 2011, "Parallel random numbers: as easy as 1, 2, 3"):
``(b1, b2) = threefry(key, (0, i))`` and 32 random bits ``b1 ^ b2`` (JAX's
"partitionable" Threefry, the default since JAX 0.5).  On CPU, JAX lowers the 20
rounds as a rolled loop of 5 iterations whose two ``uint32[n]`` state arrays go
through memory on every iteration.  Once they outgrow the cache (about 10⁶ draws),
a draw costs 8–13 ns instead of 3: 36 of the 58 ms of a 10⁶-agent SIR step on one
core went to its three uniform draws (``docs/benchmarks.md``).

Here the 20 rounds are written out, so XLA fuses them, the counter and the float
conversion into one elementwise loop that touches memory once per output.  The
numbers are the same bits as ``jax.random.uniform``'s (``tests/test_rng.py``
checks it), so results do not depend on which function drew them.  :func:`normal` is
``jax.random.normal``'s inverse-CDF transform of such a uniform,
``sqrt(2) erfinv(u)`` with ``u`` in ``(-1, 1)``.  Keys of another
implementation (``rbg``, ``unsafe_rbg``), JAX's non-partitionable mode and arrays of
2³² elements or more are passed to ``jax.random.uniform`` itself.
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_PARITY = np.uint32(0x1BD11BDA)


def _rotate_left(x: jax.Array, r: int) -> jax.Array:
    return (x << np.uint32(r)) | (x >> np.uint32(32 - r))


def threefry2x32(
    k1: jax.Array, k2: jax.Array, x1: jax.Array, x2: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Threefry-2x32 with 20 rounds of the key ``(k1, k2)`` applied to ``(x1, x2)``,
    unrolled (the same function as JAX's ``threefry2x32_p``)."""
    ks = (k1, k2, k1 ^ k2 ^ _PARITY)
    x1, x2 = x1 + ks[0], x2 + ks[1]
    for block in range(5):
        for r in _ROTATIONS[block % 2]:
            x1 = x1 + x2
            x2 = _rotate_left(x2, r) ^ x1
        x1 = x1 + ks[(block + 1) % 3]
        x2 = x2 + ks[(block + 2) % 3] + np.uint32(block + 1)
    return x1, x2


def _is_fast_key(key: jax.Array, size: int) -> bool:
    if not jax.config.jax_threefry_partitionable or size >= 2**32:
        return False
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return str(jax.random.key_impl(key)) == "threefry2x32"
    return jax.config.jax_default_prng_impl == "threefry2x32"  # a legacy uint32[2] key


def _float_request(
    key: jax.Array, shape: tuple[int, ...], dtype: jnp.dtype | type | None
) -> tuple[tuple[int, ...], jnp.dtype, bool]:
    """Canonical ``(shape, dtype)`` of a float draw (``dtype=None``: JAX's default float)
    and whether the unrolled path serves it (float32/64 and a fast key)."""
    dtype = jax.dtypes.canonicalize_dtype(jnp.float64 if dtype is None else dtype)
    shape = tuple(int(d) for d in shape)
    floats = (jnp.dtype(jnp.float32), jnp.dtype(jnp.float64))
    return shape, dtype, dtype in floats and _is_fast_key(key, math.prod(shape))


def random_bits(key: jax.Array, shape: tuple[int, ...], bit_width: int = 32) -> jax.Array:
    """``jax.random.bits(key, shape, uint{bit_width})``, bitwise, for 32 or 64 bits."""
    shape = tuple(int(d) for d in shape)
    size = math.prod(shape)
    dtype = jnp.dtype(f"uint{bit_width}")
    if bit_width not in (32, 64) or not _is_fast_key(key, size):
        return jax.random.bits(key, shape, dtype)
    data = jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key
    counter = jax.lax.iota(jnp.uint32, size)
    b1, b2 = threefry2x32(data[0], data[1], jnp.zeros_like(counter), counter)
    if bit_width == 32:
        bits = b1 ^ b2
    else:
        bits = (b1.astype(dtype) << np.uint64(32)) | b2.astype(dtype)
    return bits.reshape(shape)


def uniform(
    key: jax.Array,
    shape: tuple[int, ...] = (),
    dtype: jnp.dtype | type | None = None,
    minval: float | jax.Array = 0.0,
    maxval: float | jax.Array = 1.0,
) -> jax.Array:
    """``jax.random.uniform(key, shape, dtype, minval, maxval)``, bitwise (float32/64;
    ``dtype=None``: JAX's default float, float64 under ``jax_enable_x64``).

    The mantissa of a float in ``[1, 2)`` is filled with the top random bits, then
    shifted to ``[minval, maxval)``: ``max(minval, (f - 1)(maxval - minval) + minval)``.
    """
    shape, dtype, fast = _float_request(key, shape, dtype)
    if not fast:
        return jax.random.uniform(key, shape, dtype, minval, maxval)
    return _uniform(key, minval, maxval, shape, dtype)


@partial(jax.jit, static_argnums=(3, 4))
def _uniform(key: jax.Array, minval, maxval, shape: tuple[int, ...], dtype) -> jax.Array:
    # jitted, as jax.random's is, so that eager calls round the same way (FMA)
    finfo = jnp.finfo(dtype)
    uint = jnp.dtype(f"uint{finfo.bits}")
    bits = random_bits(key, shape, finfo.bits)
    one = jnp.asarray(np.array(1.0, dtype).view(uint), uint)
    mantissa = (bits >> jnp.asarray(finfo.bits - finfo.nmant, uint)) | one
    floats = jax.lax.bitcast_convert_type(mantissa, dtype) - jnp.asarray(1.0, dtype)
    lo = jax.lax.convert_element_type(minval, dtype)
    hi = jax.lax.convert_element_type(maxval, dtype)
    return jnp.broadcast_to(jnp.maximum(lo, floats * (hi - lo) + lo), shape)


def normal(
    key: jax.Array, shape: tuple[int, ...] = (), dtype: jnp.dtype | type | None = None
) -> jax.Array:
    """``jax.random.normal(key, shape, dtype)``, bitwise (real float32/64; ``dtype=None``:
    JAX's default float): ``sqrt(2) erfinv(u)``, ``u`` uniform on
    ``[nextafter(-1, 0), 1)`` drawn by :func:`uniform`."""
    shape, dtype, fast = _float_request(key, shape, dtype)
    return _normal(key, shape, dtype) if fast else jax.random.normal(key, shape, dtype)


@partial(jax.jit, static_argnums=(1, 2))
def _normal(key: jax.Array, shape: tuple[int, ...], dtype) -> jax.Array:
    lo = np.nextafter(np.array(-1.0, dtype), np.array(0.0, dtype), dtype=dtype)
    u = _uniform(key, lo, np.array(1.0, dtype), shape, dtype)
    return jax.lax.mul(np.array(np.sqrt(2), dtype), jax.lax.erf_inv(u))
