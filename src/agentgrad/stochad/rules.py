"""Per-distribution rules of the stochastic derivative (smoothed perturbation analysis).

`automatic-differentiation-of-abms` §3.4.3; Arya et al., "Automatic differentiation of
programs with discrete randomness", NeurIPS 2022.  Perturb the distribution parameter
along a direction, ``p -> p + eps dp``, keeping the random numbers fixed.  A discrete
draw ``X`` then keeps its value (almost-sure derivative ``delta = 0``) except on an
event of probability ``w eps`` on which it jumps to an alternative ``X + Delta``:

* Bernoulli(p) (``X = 1[u < p]``): ``dp > 0``: ``X = 0 -> 1`` with ``w = dp / (1 - p)``;
  ``dp < 0``: ``X = 1 -> 0`` with ``w = -dp / p``.
* Binomial(n, p): ``dp > 0``: ``Delta = +1``, ``w = dp (n - X) / (1 - p)``;
  ``dp < 0``: ``Delta = -1``, ``w = -dp X / p``.
* Poisson(lam): ``dlam > 0``: ``Delta = +1``, ``w = dlam``; ``dlam < 0``: ``Delta = -1``,
  ``w = -dlam X / lam``.
* Geometric(p) by inversion (``X = floor(log u / log(1 - p))``, non-increasing in ``p``):
  ``dp > 0``: ``Delta = -1``, ``w = dp X / (p (1 - p))``; ``dp < 0``: ``Delta = +1``,
  ``w = -dp (X + 1) / p``.  (``P(X >= x) = (1 - p)^x``; the jump probability is the
  change of that tail divided by ``P(X = x)``.)
* Categorical(p) by inversion (``X = min{k : u < F_k}``, ``F`` cumulative): with
  ``L = sum_{i<X} dp_i`` and ``R = sum_{i<=X} dp_i``, ``X`` jumps down to the nearest
  lower category of non-zero probability with ``w = max(L, 0) / p_X`` and up to the
  nearest higher one with ``w = max(-R, 0) / p_X``.

A *carrier* is an array whose primal value is zero and whose forward-mode tangent is
the signed weight of every element's jump (the sign is that of ``Delta``; categorical
carriers have a trailing axis ``(down, up)`` of non-negative weights).  Carriers are
``custom_jvp`` functions, so ``dp`` is available as a value exactly where the draw is.

*Smoothing* (§3.4.3 eq. 35, two-sided) replaces each jump by its expected contribution
``(J(dp) - J(-dp)) / 2`` with ``J(dp) = sum w Delta``: for a Bernoulli ``dp / (2 (1 - p))``
at ``X = 0`` and ``dp / (2 p)`` at ``X = 1`` — an ordinary (linear) tangent.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from agentgrad.estimators import straight_through

sg = jax.lax.stop_gradient


def _safe(x: jax.Array) -> jax.Array:
    return jnp.where(x > 0, x, 1.0)


# ----------------------------------------------------------------------- jump weights


def bernoulli_weight(p, x, dp):
    """Signed jump weight of each Bernoulli draw (see module docstring)."""
    return jnp.where(dp > 0, dp * (1 - x) / _safe(1 - p), dp * x / _safe(p))


def binomial_weight(p, n, x, dp):
    """Signed jump weight (sign = Delta) of each binomial draw."""
    return jnp.where(dp > 0, dp * (n - x) / _safe(1 - p), dp * x / _safe(p))


def poisson_weight(lam, x, dlam):
    """Signed jump weight (sign = Delta) of each Poisson draw."""
    return jnp.where(dlam > 0, dlam, dlam * x / _safe(lam))


def geometric_weight(p, x, dp):
    """Signed jump weight (sign = Delta) of each geometric draw."""
    return jnp.where(dp > 0, -dp * x / _safe(p * (1 - p)), -dp * (x + 1) / _safe(p))


def _neighbours(probs, x):
    """Masks of categories below / above the drawn one, and whether a non-zero one exists."""
    k = jnp.arange(probs.shape[-1])
    idx = jnp.argmax(x, axis=-1)[..., None]
    below, above = k < idx, k > idx
    has_down = jnp.any(below & (probs > 0), axis=-1)
    has_up = jnp.any(above & (probs > 0), axis=-1)
    return idx, below, above, has_down, has_up


def categorical_weight(probs, x, dprobs):
    """Non-negative (down, up) jump weights of each categorical draw, shape ``(..., 2)``."""
    idx, below, _, has_down, has_up = _neighbours(probs, x)
    p_x = _safe(jnp.sum(probs * x, axis=-1))
    left = jnp.sum(jnp.where(below, dprobs, 0.0), axis=-1)
    right = left + jnp.sum(dprobs * x, axis=-1)
    down = jnp.where(has_down, jnp.maximum(left, 0.0) / p_x, 0.0)
    up = jnp.where(has_up, jnp.maximum(-right, 0.0) / p_x, 0.0)
    return jnp.stack([down, up], axis=-1)


def _carrier(weight_fn):
    """A custom_jvp function: primal zeros, tangent ``weight_fn(*primals, d first arg)``."""

    @jax.custom_jvp
    def carrier(p, *rest):
        return jnp.zeros(weight_fn(p, *rest, jnp.zeros_like(p)).shape, jnp.float32)

    @carrier.defjvp
    def _jvp(primals, tangents):
        p, *rest = primals
        return carrier(p, *rest), weight_fn(p, *rest, tangents[0]).astype(jnp.float32)

    return carrier


bernoulli_carrier = _carrier(bernoulli_weight)
binomial_carrier = _carrier(lambda p, n, x, dp: binomial_weight(p, n, x, dp))
categorical_carrier = _carrier(categorical_weight)
poisson_carrier = _carrier(poisson_weight)
geometric_carrier = _carrier(geometric_weight)


# ----------------------------------------------------------------------- alternatives


def categorical_alternative(probs, x, up):
    """One-hot of the nearest non-zero category below (``up=False``) or above ``x``."""
    k = jnp.arange(probs.shape[-1])
    idx = jnp.argmax(x, axis=-1)
    lower = jnp.max(jnp.where((k < idx) & (probs > 0), k, -1))
    higher = jnp.min(jnp.where((k > idx) & (probs > 0), k, probs.shape[-1]))
    alt = jnp.where(up, higher, lower)
    return jax.nn.one_hot(jnp.clip(alt, 0, probs.shape[-1] - 1), probs.shape[-1], dtype=x.dtype)


# ----------------------------------------------------------------------- smoothing


def _two_sided(up, down, lower_edge, upper_edge):
    """``(up + down) / 2``, or the one existing side on a boundary of the parameter."""
    return jnp.where(lower_edge, up, jnp.where(upper_edge, down, (up + down) / 2))


def smoothed_bernoulli(hard, p):
    """Tangent ``dp / (2 (1 - p))`` at ``X = 0`` and ``dp / (2 p)`` at ``X = 1``
    (one-sided at ``p = 0`` / ``1``: ``dp / (1 - p)`` / ``dp / p``)."""
    p0 = sg(p)
    up, down = (1 - hard) / _safe(1 - p0), hard / _safe(p0)
    c = sg(_two_sided(up, down, p0 <= 0, p0 >= 1))
    return straight_through(hard, c * p)


def smoothed_binomial(hard, n, p):
    """Tangent ``dp ((n - X) / (1 - p) + X / p) / 2`` (one-sided on the boundary)."""
    p0 = sg(p)
    up, down = (n - hard) / _safe(1 - p0), hard / _safe(p0)
    c = sg(_two_sided(up, down, p0 <= 0, p0 >= 1))
    return straight_through(hard, c * p)


def smoothed_poisson(hard, lam):
    """Tangent ``dlam (1 + X / lam) / 2`` (``dlam`` at ``lam = 0``)."""
    lam0 = sg(lam)
    c = sg(_two_sided(1.0, hard / _safe(lam0), lam0 <= 0, False))
    return straight_through(hard, c * lam)


def smoothed_geometric(hard, p):
    """Tangent ``-dp (X / (p (1 - p)) + (X + 1) / p) / 2`` (``-dp (X + 1) / p`` at ``p = 1``)."""
    p0 = sg(p)
    c = sg(-_two_sided(hard / _safe(p0 * (1 - p0)), (hard + 1) / _safe(p0), False, p0 >= 1))
    return straight_through(hard, c * p)


def smoothed_categorical(hard, probs):
    """Tangent ``(L (e_down - e_X) - R (e_up - e_X)) / (2 p_X)`` (existing neighbours only)."""
    p0 = sg(probs)
    idx, below, _, has_down, has_up = _neighbours(p0, hard)
    p_x = _safe(jnp.sum(p0 * hard, axis=-1, keepdims=True))
    left = jnp.sum(jnp.where(below, probs, 0.0), axis=-1, keepdims=True)
    right = left + jnp.sum(probs * hard, axis=-1, keepdims=True)
    e_down = jax.vmap(categorical_alternative, (0, 0, None))(
        p0.reshape(-1, p0.shape[-1]), hard.reshape(-1, p0.shape[-1]), False
    ).reshape(hard.shape)
    e_up = jax.vmap(categorical_alternative, (0, 0, None))(
        p0.reshape(-1, p0.shape[-1]), hard.reshape(-1, p0.shape[-1]), True
    ).reshape(hard.shape)
    down_ok = has_down[..., None].astype(hard.dtype)
    up_ok = has_up[..., None].astype(hard.dtype)
    soft = (left * (e_down - hard) * down_ok - right * (e_up - hard) * up_ok) / (2 * p_x)
    return straight_through(hard, soft)
