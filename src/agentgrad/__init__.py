"""agentgrad: differentiable agent-based models in JAX."""

from agentgrad import (
    distributed,
    gradients,
    metrics,
    models,
    rng,
    sensitivity,
    soft,
    stochad,
    surrogate,
)
from agentgrad.calibration import GVI, calibrate
from agentgrad.calibration.sbi import ABC, NLE, NPE, NRE, SNLE, SNPE, SNVI
from agentgrad.engine import GradientValidityWarning, Model, Trajectory, ensemble, simulate
from agentgrad.errors import AgentgradError, GraphError, ParameterError
from agentgrad.estimators import Estimator, GumbelSoftmax, NoGradient, StraightThrough
from agentgrad.params import Beta, LogNormal, Normal, Param, ParamSpace, Prior, Uniform
from agentgrad.sampling import bernoulli, binomial, categorical, geometric, poisson
from agentgrad.sharding import Sharding
from agentgrad.spaces import Graph, Grid, graphs
from agentgrad.stochad import SmoothedStochasticDerivative, StochasticDerivative
from agentgrad.substeps import Substep, SubstepModel
from agentgrad.sweeps import sweep
from agentgrad.training import TrainingError, TrainResult, train

__version__ = "0.1.0"

__all__ = [
    "ABC",
    "GVI",
    "NLE",
    "NPE",
    "NRE",
    "SNLE",
    "SNPE",
    "SNVI",
    "AgentgradError",
    "Beta",
    "Estimator",
    "GradientValidityWarning",
    "Graph",
    "GraphError",
    "Grid",
    "GumbelSoftmax",
    "LogNormal",
    "Model",
    "NoGradient",
    "Normal",
    "Param",
    "ParamSpace",
    "ParameterError",
    "Prior",
    "Sharding",
    "SmoothedStochasticDerivative",
    "StochasticDerivative",
    "StraightThrough",
    "Substep",
    "SubstepModel",
    "TrainResult",
    "TrainingError",
    "Trajectory",
    "Uniform",
    "bernoulli",
    "binomial",
    "calibrate",
    "categorical",
    "ensemble",
    "distributed",
    "geometric",
    "gradients",
    "graphs",
    "metrics",
    "models",
    "poisson",
    "rng",
    "sensitivity",
    "simulate",
    "soft",
    "stochad",
    "surrogate",
    "sweep",
    "train",
]
