"""Bayesian calibration: generalised variational inference (paper §6) and, with the
``sbi`` extra, simulation-based inference, behind one :func:`calibrate`."""

from agentgrad.calibration.api import calibrate
from agentgrad.calibration.families import (
    DiagonalGaussian,
    Flow,
    MaskedAutoregressiveFlow,
)
from agentgrad.calibration.gvi import GVI, Posterior
from agentgrad.calibration.losses import SyntheticLikelihood, gauss, mmd, mse
from agentgrad.calibration.posterior import CalibratedPosterior, diagnose
from agentgrad.calibration.predictive import coverage, nlpd, posterior_predictive

__all__ = [
    "GVI",
    "CalibratedPosterior",
    "DiagonalGaussian",
    "Flow",
    "MaskedAutoregressiveFlow",
    "Posterior",
    "SyntheticLikelihood",
    "calibrate",
    "coverage",
    "diagnose",
    "gauss",
    "mmd",
    "mse",
    "nlpd",
    "posterior_predictive",
]
