"""Smooth surrogates for control flow (`automatic-differentiation-of-abms` §3.3).

Every operator returns the *exact* discrete result in the forward pass and the
derivative of a smooth surrogate in the tangent pass, in straight-through form
``hard + (soft - stop_gradient(soft))`` (§3.2; flame's operator library,
`flame-framework-for-learning-in-abms` §3.5).  Boolean results are float32 0/1
so they can multiply (mask) other quantities.

Surrogates of the Heaviside step ``H(x) = 1[x >= 0]`` (§3.3 eqs. 16-18), with
``scale`` the width of the transition:

* ``"sigmoid"``:  ``sigmoid(x / scale)``;
* ``"gaussian"``: ``Phi(x / scale)``, the standard normal CDF;
* ``"linear"``:   ``clip(x / (2 scale) + 1/2, 0, 1)``.

``gate(t, start, end) = H(t - start) (1 - H(t - end))`` is a policy window
``start <= t < end`` (§4.3 eq. 54) with the Gaussian-CDF surrogate, ``sigma = 1``.
(Exact up to XLA's flushing of subnormal floats to zero.)  ``argmax`` is one-hot
forward with a ``softmax(x / temperature)`` tangent
(§3.3.1 eq. 23); ``max`` is exact forward with the tangent of
``temperature * logsumexp(x / temperature)``.
"""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp

from agentgrad.estimators import straight_through

Surrogate = Literal["sigmoid", "gaussian", "linear"]


def _smooth_step(x: jax.Array, kind: Surrogate, scale: float) -> jax.Array:
    z = x / scale
    if kind == "sigmoid":
        return jax.nn.sigmoid(z)
    if kind == "gaussian":
        return jax.scipy.stats.norm.cdf(z)
    if kind == "linear":
        return jnp.clip(0.5 * z + 0.5, 0.0, 1.0)
    raise ValueError(f"unknown step surrogate {kind!r}; use 'sigmoid', 'gaussian' or 'linear'")


def step(x: jax.Array, kind: Surrogate = "sigmoid", scale: float = 1.0) -> jax.Array:
    """Heaviside step ``1[x >= 0]`` with a smooth tangent."""
    x = jnp.asarray(x)
    hard = (x >= 0).astype(x.dtype if jnp.issubdtype(x.dtype, jnp.floating) else jnp.float32)
    return straight_through(hard, _smooth_step(x, kind, scale).astype(hard.dtype))


def gate(
    t: jax.Array,
    start: jax.Array,
    end: jax.Array,
    sigma: float = 1.0,
    kind: Surrogate = "gaussian",
) -> jax.Array:
    """Policy window ``1[start <= t < end]`` with a smooth tangent in ``t``, ``start``, ``end``."""
    return step(t - start, kind, sigma) * (1.0 - step(t - end, kind, sigma))


def where(mask: jax.Array, x: jax.Array, y: jax.Array) -> jax.Array:
    """Masked select ``mask * x + (1 - mask) * y`` (§3.3 eq. 19).

    Unlike ``jnp.where``, both branches receive gradient through a (surrogate) mask.
    """
    return mask * x + (1.0 - mask) * y


def argmax(x: jax.Array, axis: int = -1, temperature: float = 1.0) -> jax.Array:
    """One-hot ``argmax`` along ``axis`` with a ``softmax(x / temperature)`` tangent."""
    x = jnp.asarray(x)
    hard = jax.nn.one_hot(jnp.argmax(x, axis=axis), x.shape[axis], axis=axis, dtype=x.dtype)
    return straight_through(hard, jax.nn.softmax(x / temperature, axis=axis))


def max(x: jax.Array, axis: int = -1, temperature: float = 1.0) -> jax.Array:  # noqa: A001
    """Exact maximum along ``axis``; tangent of ``temperature * logsumexp(x / temperature)``."""
    hard = jnp.max(x, axis=axis)
    soft = temperature * jax.scipy.special.logsumexp(x / temperature, axis=axis)
    return straight_through(hard, soft)


def min(x: jax.Array, axis: int = -1, temperature: float = 1.0) -> jax.Array:  # noqa: A001
    """Exact minimum along ``axis``; tangent of ``-temperature * logsumexp(-x / temperature)``."""
    return -max(-jnp.asarray(x), axis=axis, temperature=temperature)


def greater(a: jax.Array, b: jax.Array, kind: Surrogate = "sigmoid", scale: float = 1.0):
    """``1[a > b]`` with a smooth tangent (ties count as false)."""
    a, b = jnp.asarray(a), jnp.asarray(b)
    return 1.0 - step(b - a, kind, scale)


def greater_equal(a: jax.Array, b: jax.Array, kind: Surrogate = "sigmoid", scale: float = 1.0):
    """``1[a >= b]`` with a smooth tangent."""
    return step(jnp.asarray(a) - jnp.asarray(b), kind, scale)


def less(a: jax.Array, b: jax.Array, kind: Surrogate = "sigmoid", scale: float = 1.0):
    """``1[a < b]`` with a smooth tangent."""
    return 1.0 - greater_equal(a, b, kind, scale)


def less_equal(a: jax.Array, b: jax.Array, kind: Surrogate = "sigmoid", scale: float = 1.0):
    """``1[a <= b]`` with a smooth tangent."""
    return step(jnp.asarray(b) - jnp.asarray(a), kind, scale)


def logical_and(a: jax.Array, b: jax.Array) -> jax.Array:
    """``a AND b`` on 0/1 floats: the product (exact on {0, 1}, smooth in between)."""
    return a * b


def logical_or(a: jax.Array, b: jax.Array) -> jax.Array:
    """``a OR b`` on 0/1 floats: ``a + b - a b``."""
    return a + b - a * b


def logical_not(a: jax.Array) -> jax.Array:
    """``NOT a`` on 0/1 floats: ``1 - a``."""
    return 1.0 - a
