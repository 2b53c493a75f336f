"""Gradient estimators for discrete random draws.

An estimator decides only the *tangent* of a discrete draw; the primal value is
always the exact discrete sample, computed by :mod:`agentgrad.sampling` from the
same random numbers whatever the estimator (`automatic-differentiation-of-abms`
§4: "both surrogate gradient methods and stochastic derivatives leave the
primal pass unchanged").  Each surrogate is attached in straight-through form

    x = hard + (soft - stop_gradient(soft)),

which equals ``hard`` bit for bit in the forward pass and has the derivative of
``soft`` in the tangent pass.

* :class:`StraightThrough` (§3.4.1, eq. 25): ``soft = E[x]`` (``p``, the
  probability vector, or ``n p``).
* :class:`GumbelSoftmax` (§3.4.2, eq. 27): ``soft = softmax((log p + g) / tau)``
  with the Gumbel noise ``g`` that produced the hard sample (for a Bernoulli,
  ``sigmoid((logit p - logit u) / tau)`` with the uniform ``u``).  With
  ``hard=False`` the relaxed value itself is returned (a non-discrete simulation).
* :class:`NoGradient`: plain discrete sampling, zero tangent.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

_EPS = 1e-6
sg = jax.lax.stop_gradient


def straight_through(hard: jax.Array, soft: jax.Array) -> jax.Array:
    """``hard`` in the forward pass, the derivative of ``soft`` in the tangent pass."""
    return sg(hard) + (soft - sg(soft))


class Estimator(eqx.Module):
    """Base class: how the tangent of each kind of discrete draw is formed.

    Subclasses implement three hooks, called by the samplers in
    :mod:`agentgrad.sampling` with the exact hard sample and the noise that made it.
    """

    def bernoulli(self, hard: jax.Array, p: jax.Array, u: jax.Array) -> jax.Array:
        """``hard = (u < p)`` as float, ``u ~ U(0, 1)``."""
        raise NotImplementedError

    def categorical(self, hard: jax.Array, logp: jax.Array, gumbel: jax.Array) -> jax.Array:
        """``hard`` one-hot over the last axis, ``argmax(logp + gumbel) == argmax(hard)``."""
        raise NotImplementedError

    def binomial(self, hard: jax.Array, n: jax.Array, p: jax.Array) -> jax.Array:
        """``hard ~ Binomial(n, p)`` as float."""
        raise NotImplementedError

    def poisson(self, hard: jax.Array, lam: jax.Array) -> jax.Array:
        """``hard ~ Poisson(lam)`` as float."""
        raise NotImplementedError

    def geometric(self, hard: jax.Array, p: jax.Array) -> jax.Array:
        """``hard ~ Geometric(p)`` (failures before the first success) as float."""
        raise NotImplementedError(f"{type(self).__name__} does not support geometric draws")


class NoGradient(Estimator):
    """Plain discrete sampling: the draw carries no derivative."""

    def bernoulli(self, hard, p, u):
        return sg(hard)

    def categorical(self, hard, logp, gumbel):
        return sg(hard)

    def binomial(self, hard, n, p):
        return sg(hard)

    def poisson(self, hard, lam):
        return sg(hard)

    def geometric(self, hard, p):
        return sg(hard)


class StraightThrough(Estimator):
    """Straight-through estimator: the tangent of the draw is the tangent of its mean."""

    def bernoulli(self, hard, p, u):
        return straight_through(hard, p)

    def categorical(self, hard, logp, gumbel):
        return straight_through(hard, jax.nn.softmax(logp, axis=-1))

    def binomial(self, hard, n, p):
        return straight_through(hard, n * p)

    def poisson(self, hard, lam):
        return straight_through(hard, lam)

    def geometric(self, hard, p):
        return straight_through(hard, (1 - p) / p)


class GumbelSoftmax(Estimator):
    """(Straight-through) Gumbel-softmax estimator with temperature ``temperature``.

    Binomial and Poisson counts have no Gumbel-softmax relaxation; for them the tangent
    is the pathwise derivative of the Gaussian approximation (``n p + sqrt(n p (1-p)) z``,
    ``lam + sqrt(lam) z``) with ``z`` the standardised hard draw held fixed.
    """

    temperature: float = 0.1
    hard: bool = eqx.field(default=True, static=True)

    def __check_init__(self) -> None:
        if not self.temperature > 0:
            raise ValueError(f"GumbelSoftmax temperature must be > 0, got {self.temperature}")

    def _out(self, hard: jax.Array, soft: jax.Array) -> jax.Array:
        return straight_through(hard, soft) if self.hard else soft

    def bernoulli(self, hard, p, u):
        pc = jnp.clip(p, _EPS, 1 - _EPS)
        uc = jnp.clip(u, _EPS, 1 - _EPS)
        logits = (jnp.log(pc) - jnp.log1p(-pc)) - (jnp.log(uc) - jnp.log1p(-uc))
        return self._out(hard, jax.nn.sigmoid(logits / self.temperature))

    def categorical(self, hard, logp, gumbel):
        return self._out(hard, jax.nn.softmax((logp + gumbel) / self.temperature, axis=-1))

    def binomial(self, hard, n, p):
        return self._gaussian(hard, n * p, n * p * (1 - p))

    def poisson(self, hard, lam):
        return self._gaussian(hard, lam, lam)

    def geometric(self, hard, p):
        return self._gaussian(hard, (1 - p) / p, (1 - p) / p**2)

    def _gaussian(self, hard, mean, var):
        """Pathwise tangent of the Gaussian approximation ``mean + sqrt(var) z``."""
        sd = jnp.sqrt(jnp.maximum(var, _EPS))
        z = sg((hard - mean) / sd)
        return self._out(hard, mean + sd * z)


def parse_estimator(spec: str) -> Estimator:
    """Parse a command-line estimator: ``st``, ``none``, ``gs:TAU``, ``gs-soft:TAU``,
    ``sad`` (stochastic derivative) or ``smoothed`` (smoothed stochastic derivative)."""
    name, _, arg = spec.strip().lower().partition(":")
    if name in ("sad", "smoothed") and not arg:
        from agentgrad.stochad import SmoothedStochasticDerivative, StochasticDerivative

        return StochasticDerivative() if name == "sad" else SmoothedStochasticDerivative()
    if name in ("st", "straight-through") and not arg:
        return StraightThrough()
    if name in ("none", "no-gradient") and not arg:
        return NoGradient()
    if name in ("gs", "gs-soft"):
        try:
            tau = float(arg) if arg else 0.1
        except ValueError:
            raise ValueError(f"estimator {spec!r}: temperature {arg!r} is not a number") from None
        if not tau > 0:
            raise ValueError(f"estimator {spec!r}: temperature must be > 0")
        return GumbelSoftmax(tau, hard=(name == "gs"))
    raise ValueError(
        f"unknown estimator {spec!r}; use st, none, gs:TAU, gs-soft:TAU, sad or smoothed"
    )
