"""Unbiased gradients through discrete randomness: stochastic derivatives in JAX.

See :mod:`agentgrad.stochad.estimate` for the method and
:mod:`agentgrad.stochad.rules` for the per-distribution rules.
"""

from agentgrad.stochad.estimate import derivative_estimate, grad_estimate
from agentgrad.stochad.estimators import (
    SmoothedStochasticDerivative,
    StochasticDerivative,
    StochasticDerivativeError,
)

__all__ = [
    "SmoothedStochasticDerivative",
    "StochasticDerivative",
    "StochasticDerivativeError",
    "derivative_estimate",
    "grad_estimate",
]
