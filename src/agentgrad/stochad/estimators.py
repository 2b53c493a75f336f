"""``StochasticDerivative`` and ``SmoothedStochasticDerivative`` estimators.

Both leave the primal draw exact.  The smoothed estimator is an ordinary tangent rule
(:mod:`agentgrad.stochad.rules`) and works under any JAX transformation.  The unbiased
estimator needs the two passes of :func:`agentgrad.stochad.derivative_estimate`; its
draws register with the active :mod:`~agentgrad.stochad.recorder` scope, and
differentiating them any other way raises :class:`StochasticDerivativeError`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from agentgrad.errors import AgentgradError
from agentgrad.estimators import Estimator
from agentgrad.stochad import recorder, rules

sg = jax.lax.stop_gradient


class StochasticDerivativeError(AgentgradError):
    """A ``StochasticDerivative`` draw was differentiated outside its entry points."""


_MISUSE = (
    "StochasticDerivative() gradients come from agentgrad.stochad.derivative_estimate("
    "fn, params, key, direction) or agentgrad.stochad.grad_estimate(fn, params, key, "
    "n_samples), not from jax.grad/jax.jvp; use SmoothedStochasticDerivative() or "
    "StraightThrough() for plain JAX differentiation"
)


@jax.custom_jvp
def _guarded(hard, param):
    """``hard``; differentiating through ``param`` (the distribution parameter) raises."""
    return hard


@_guarded.defjvp
def _guarded_jvp(primals, tangents):
    raise StochasticDerivativeError(_MISUSE)


def _flip_match(scope: recorder.Scope, site: int) -> jax.Array:
    plan = scope.plan
    if scope.group is None:  # a draw at the top level of fn
        return (plan.active > 0) & (plan.group == site) & (plan.step == 0) & (plan.site == 0)
    return (
        (plan.active > 0)
        & (plan.group == scope.group)
        & (plan.step == scope.step)
        & (plan.site == site)
    )


def _flip_elementwise(hard, alternative, scope, site):
    flat, alt = hard.reshape(-1), alternative.reshape(-1)
    i = jnp.clip(scope.plan.index, 0, flat.shape[0] - 1)
    new = jnp.where(_flip_match(scope, site), alt[i], flat[i])
    return flat.at[i].set(new).reshape(hard.shape)


class StochasticDerivative(Estimator):
    """Unbiased stochastic derivatives with pruning (one alternative path), §3.4.3.

    Use with :func:`agentgrad.stochad.derivative_estimate` / ``grad_estimate``.
    """

    def _elementwise(self, hard, param, carrier, alternative):
        """Register (pass i) or flip (pass ii) an elementwise draw; see the module docstring."""
        sc = recorder.current()
        if sc is None:
            return _guarded(hard, param)
        site = sc.next_site()
        if sc.mode == "record":
            sc.register(carrier(), "draw", site)
            return sg(hard)
        return _flip_elementwise(sg(hard), alternative(sc.plan), sc, site)

    def bernoulli(self, hard, p, u):
        return self._elementwise(
            hard, p, lambda: rules.bernoulli_carrier(p, sg(hard)), lambda plan: 1.0 - sg(hard)
        )

    def binomial(self, hard, n, p):
        return self._elementwise(
            hard,
            p,
            lambda: rules.binomial_carrier(p, sg(n), sg(hard)),
            lambda plan: sg(hard) + plan.sign,
        )

    def poisson(self, hard, lam):
        return self._elementwise(
            hard,
            lam,
            lambda: rules.poisson_carrier(lam, sg(hard)),
            lambda plan: sg(hard) + plan.sign,
        )

    def geometric(self, hard, p):
        return self._elementwise(
            hard,
            p,
            lambda: rules.geometric_carrier(p, sg(hard)),
            lambda plan: sg(hard) + plan.sign,
        )

    def categorical(self, hard, logp, gumbel):
        sc = recorder.current()
        if sc is None:
            return _guarded(hard, logp)
        site = sc.next_site()
        probs = jnp.exp(logp)
        if sc.mode == "record":
            sc.register(rules.categorical_carrier(probs, sg(hard)), "draw", site)
            return sg(hard)
        k = hard.shape[-1]
        flat_h, flat_p = sg(hard).reshape(-1, k), sg(probs).reshape(-1, k)
        i = jnp.clip(sc.plan.index // 2, 0, flat_h.shape[0] - 1)
        alt = rules.categorical_alternative(flat_p[i], flat_h[i], sc.plan.index % 2 == 1)
        new = jnp.where(_flip_match(sc, site), alt, flat_h[i])
        return flat_h.at[i].set(new).reshape(hard.shape)


class SmoothedStochasticDerivative(Estimator):
    """Smoothed stochastic derivatives (two-sided), §3.4.3 "Smoothing": biased, low variance.

    An ordinary tangent rule: works with ``jax.grad``, ``jax.jvp`` and the
    ``agentgrad.stochad`` entry points alike.
    """

    def bernoulli(self, hard, p, u):
        return rules.smoothed_bernoulli(hard, p)

    def binomial(self, hard, n, p):
        return rules.smoothed_binomial(hard, n, p)

    def poisson(self, hard, lam):
        return rules.smoothed_poisson(hard, lam)

    def geometric(self, hard, p):
        return rules.smoothed_geometric(hard, p)

    def categorical(self, hard, logp, gumbel):
        return rules.smoothed_categorical(hard, jnp.exp(logp))
