"""Discrete random draws: the single place where a model draws discrete randomness.

Each sampler draws its noise from ``key``, computes the exact discrete sample,
and hands both to the ``estimator`` (see :mod:`agentgrad.estimators`), which
attaches the tangent.  The primal value therefore depends only on ``key`` and the
distribution parameter, never on the estimator.  Uniform noise comes from
:func:`agentgrad.rng.uniform`, the same numbers as ``jax.random.uniform``, drawn faster.

* Bernoulli(p): ``u ~ U(0,1)``, ``x = 1[u < p]``.
* Categorical(p): inversion ``x = one_hot(min{k : u < F_k})``, with Gumbel noise drawn
  conditionally on ``x`` for the estimators that need it.
* Binomial(n, p): ``jax.random.binomial``.
* Poisson(lam): ``jax.random.poisson``.
* Geometric(p): failures before the first success, by inversion
  ``x = floor(log u / log(1 - p))``.

Parameters outside their domain are clipped, with derivative 0 outside and 1 on the
boundary itself (``p = 0`` or ``1``, ``lam = 0``): the one-sided derivative, not the 1/2
that ``jnp.clip`` would give there.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from agentgrad import rng
from agentgrad.estimators import Estimator, StraightThrough
from agentgrad.params import real_dtype

_DEFAULT = StraightThrough()


def _clip(x: jax.Array, lower: float, upper: float | None = None) -> jax.Array:
    """``clip(x, lower, upper)`` whose derivative is 1 on ``[lower, upper]`` (boundaries
    included, the one-sided derivative there) and 0 outside."""
    inside = (x >= lower) if upper is None else (x >= lower) & (x <= upper)
    return jnp.where(inside, x, jax.lax.stop_gradient(jnp.clip(x, lower, upper)))


def _shape(shape: tuple[int, ...] | None, *arrays: jax.Array) -> tuple[int, ...]:
    return tuple(shape) if shape is not None else jnp.broadcast_shapes(*(a.shape for a in arrays))


def bernoulli(
    key: jax.Array,
    p: jax.Array | float,
    estimator: Estimator = _DEFAULT,
    shape: tuple[int, ...] | None = None,
) -> jax.Array:
    """Draw ``x ~ Bernoulli(p)`` as 0/1 floats with the estimator's tangent.

    ``p`` is clipped to ``[0, 1]``; ``shape`` defaults to ``p``'s shape.
    """
    p = _clip(jnp.asarray(p, real_dtype()), 0.0, 1.0)
    shape = _shape(shape, p)
    p = jnp.broadcast_to(p, shape)
    u = rng.uniform(key, shape, real_dtype())
    hard = (u < p).astype(real_dtype())
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

    Returns floats of shape ``shape + (K,)`` (``shape`` defaults to the batch shape).
    Probabilities need not be normalised.  The draw is by inversion,
    ``x = min{k : u < F_k}`` with ``F`` the cumulative probabilities (the coupling the
    stochastic-derivative rules assume); Gumbel noise ``g`` for estimators that need it
    is drawn *conditionally* on ``x`` (``argmax(log p + g) = x``; Maddison et al. 2014,
    REBAR), so ``(x, g)`` has the law of the Gumbel-max trick.
    """
    if (probs is None) == (logits is None):
        raise ValueError("categorical: give exactly one of probs or logits")
    if logits is None:
        probs = jnp.asarray(probs, real_dtype())
        logp = jnp.where(probs > 0, jnp.log(jnp.clip(probs, 1e-30, None)), -jnp.inf)
    else:
        logp = jnp.asarray(logits, real_dtype())
    logp = logp - jax.scipy.special.logsumexp(logp, axis=-1, keepdims=True)
    batch = _shape(shape, logp[..., 0])
    logp = jnp.broadcast_to(logp, batch + logp.shape[-1:])
    n_cat = logp.shape[-1]
    k_inv, k_gumbel = jax.random.split(key)
    p = jax.lax.stop_gradient(jnp.exp(logp))
    cdf = jnp.cumsum(p, axis=-1)
    u = rng.uniform(k_inv, batch + (1,), real_dtype()) * cdf[..., -1:]
    index = jnp.minimum(jnp.sum(cdf[..., :-1] <= u, axis=-1), n_cat - 1)
    hard = jax.nn.one_hot(index, n_cat, dtype=real_dtype())
    # conditional Gumbel scores z (argmax z = index): z_x = -log(-log v_x),
    # z_k = -log(-log(v_k) / p_k - log v_x) for k != x
    v = rng.uniform(k_gumbel, logp.shape, real_dtype(), minval=1e-20, maxval=1.0)
    log_vx = jnp.sum(hard * jnp.log(v), axis=-1, keepdims=True)
    safe_p = jnp.where(p > 0, p, 1.0)
    z_other = -jnp.log(-jnp.log(v) / safe_p - log_vx)
    z = jnp.where(hard > 0, -jnp.log(-log_vx), z_other)
    finite_logp = jnp.where(jnp.isfinite(logp), logp, -1e30)
    gumbel = jax.lax.stop_gradient(jnp.where(p > 0, z - jax.lax.stop_gradient(finite_logp), 0.0))
    return estimator.categorical(hard, finite_logp, gumbel)


def binomial(
    key: jax.Array,
    n: jax.Array | float,
    p: jax.Array | float,
    estimator: Estimator = _DEFAULT,
    shape: tuple[int, ...] | None = None,
) -> jax.Array:
    """Draw ``x ~ Binomial(n, p)`` as floats with the estimator's tangent."""
    n = jnp.asarray(n, real_dtype())
    p = _clip(jnp.asarray(p, real_dtype()), 0.0, 1.0)
    shape = _shape(shape, n, p)
    n, p = jnp.broadcast_to(n, shape), jnp.broadcast_to(p, shape)
    hard = jax.random.binomial(key, jax.lax.stop_gradient(n), jax.lax.stop_gradient(p), shape)
    return estimator.binomial(hard.astype(real_dtype()), n, p)


def poisson(
    key: jax.Array,
    lam: jax.Array | float,
    estimator: Estimator = _DEFAULT,
    shape: tuple[int, ...] | None = None,
) -> jax.Array:
    """Draw ``x ~ Poisson(lam)`` as floats with the estimator's tangent (``lam >= 0``)."""
    lam = _clip(jnp.asarray(lam, real_dtype()), 0.0)
    shape = _shape(shape, lam)
    lam = jnp.broadcast_to(lam, shape)
    hard = jax.random.poisson(key, jax.lax.stop_gradient(lam), shape)
    return estimator.poisson(hard.astype(real_dtype()), lam)


def geometric(
    key: jax.Array,
    p: jax.Array | float,
    estimator: Estimator = _DEFAULT,
    shape: tuple[int, ...] | None = None,
) -> jax.Array:
    """Draw ``x ~ Geometric(p)``: failures before the first success, ``P(x = k) = (1-p)^k p``.

    By inversion, ``x = floor(log u / log(1 - p))`` (non-increasing in ``p`` for fixed
    ``u``, the coupling of the stochastic-derivative rule); ``p`` is clipped to
    ``[1e-6, 1]``.  Returns floats with the estimator's tangent (``E[x] = (1 - p) / p``).
    """
    p = _clip(jnp.asarray(p, real_dtype()), 1e-6, 1.0)
    shape = _shape(shape, p)
    p = jnp.broadcast_to(p, shape)
    u = rng.uniform(key, shape, real_dtype(), minval=jnp.finfo(real_dtype()).tiny)
    ps = jax.lax.stop_gradient(p)
    hard = jnp.where(ps >= 1.0, 0.0, jnp.floor(jnp.log(u) / jnp.log1p(-jnp.minimum(ps, 1 - 1e-7))))
    return estimator.geometric(hard.astype(real_dtype()), p)
