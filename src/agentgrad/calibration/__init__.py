"""Bayesian calibration by generalised variational inference (paper §6)."""

from agentgrad.calibration.families import DiagonalGaussian, MaskedAutoregressiveFlow
from agentgrad.calibration.gvi import Posterior, calibrate
from agentgrad.calibration.losses import gauss, mmd, mse
from agentgrad.calibration.predictive import coverage, nlpd, posterior_predictive

__all__ = [
    "DiagonalGaussian",
    "MaskedAutoregressiveFlow",
    "Posterior",
    "calibrate",
    "coverage",
    "gauss",
    "mmd",
    "mse",
    "nlpd",
    "posterior_predictive",
]
