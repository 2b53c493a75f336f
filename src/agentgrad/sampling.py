"""Discrete random draws: the single place where a model draws discrete randomness.

Each sampler draws its noise from ``key``, computes the exact discrete sample,
and hands both to the ``estimator`` (see :mod:`agentgrad.estimators`), which
attaches the tangent.  The primal value therefore depends only on ``key`` and the
distribution parameter, never on the estimator.

* Bernoulli(p): ``u ~ U(0,1)``, ``x = 1[u < p]``.
* Categorical(p): Gumbel-max, ``x = one_hot(argmax(log p + g))``, ``g = -log(-log u)``.
* Binomial(n, p): ``jax.random.binomial``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from agentgrad.estimators import Estimator, StraightThrough

_DEFAULT = StraightThrough()


def _shape(shape: tuple[int, ...] | None, *arrays: jax.Array) -> tuple[int, ...]:
    return tuple(shape) if shape is not None else jnp.broadcast_shapes(*(a.shape for a in arrays))


def bernoulli(
    key: jax.Array,
    p: jax.Array | float,
    estimator: Estimator = _DEFAULT,
    shape: tuple[int, ...] | None = None,
) -> jax.Array:
    """Draw ``x ~ Bernoulli(p)`` as float32 0/1 with the estimator's tangent.

    ``p`` is clipped to ``[0, 1]``; ``shape`` defaults to ``p``'s shape.
    """
    p = jnp.clip(jnp.asarray(p, jnp.float32), 0.0, 1.0)
    shape = _shape(shape, p)
    p = jnp.broadcast_to(p, shape)
    u = jax.random.uniform(key, shape, jnp.float32)
    hard = (u < p).astype(jnp.float32)
    return estimator.bernoulli(hard, p, u)


def categorical(
    key: jax.Array,
    probs: jax.Array | None = None,
    estimator: Estimator = _DEFAULT,
    *,
    logits: jax.Array | None = None,
    shape: tuple[int, ...] | None = None,
) -> jax.Array:
    """Draw a one-hot sample over the last axis of ``probs`` (or ``logits``).

    Returns float32 of shape ``shape + (K,)`` (``shape`` defaults to the batch shape).
    Probabilities need not be normalised.
    """
    if (probs is None) == (logits is None):
        raise ValueError("categorical: give exactly one of probs or logits")
    if logits is None:
        probs = jnp.asarray(probs, jnp.float32)
        logp = jnp.log(jnp.clip(probs, 1e-30, None))
        logp = jnp.where(probs > 0, logp, -jnp.inf)
    else:
        logp = jnp.asarray(logits, jnp.float32)
    logp = logp - jax.scipy.special.logsumexp(logp, axis=-1, keepdims=True)
    batch = _shape(shape, logp[..., 0])
    logp = jnp.broadcast_to(logp, batch + logp.shape[-1:])
    u = jax.random.uniform(key, logp.shape, jnp.float32, minval=1e-20, maxval=1.0)
    gumbel = -jnp.log(-jnp.log(u))
    index = jnp.argmax(logp + gumbel, axis=-1)
    hard = jax.nn.one_hot(index, logp.shape[-1], dtype=jnp.float32)
    finite_logp = jnp.where(jnp.isfinite(logp), logp, -1e30)
    return estimator.categorical(hard, finite_logp, gumbel)


def binomial(
    key: jax.Array,
    n: jax.Array | float,
    p: jax.Array | float,
    estimator: Estimator = _DEFAULT,
    shape: tuple[int, ...] | None = None,
) -> jax.Array:
    """Draw ``x ~ Binomial(n, p)`` as float32 with the estimator's tangent."""
    n = jnp.asarray(n, jnp.float32)
    p = jnp.clip(jnp.asarray(p, jnp.float32), 0.0, 1.0)
    shape = _shape(shape, n, p)
    n, p = jnp.broadcast_to(n, shape), jnp.broadcast_to(p, shape)
    hard = jax.random.binomial(key, jax.lax.stop_gradient(n), jax.lax.stop_gradient(p), shape)
    return estimator.binomial(hard.astype(jnp.float32), n, p)
