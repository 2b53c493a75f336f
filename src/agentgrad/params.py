"""Parameter spaces: names, defaults, bounds, priors and bijections.

A model's parameters are a flat ``dict[str, Array]`` of scalars.  The model's
:class:`ParamSpace` says, for each name, its default value, its support
``[lower, upper]``, its prior and a description.  Calibration works on the
unconstrained space, linked to the constrained one by a per-parameter bijection
(`automatic-differentiation-of-abms` §6.1, "Constrained parameter domains"):

* ``(-inf, inf)``: identity;
* ``[a, inf)``: ``x = a + softplus(u)``;
* ``(-inf, b]``: ``x = b - softplus(-u)``;
* ``[a, b]``: ``x = a + (b - a) * sigmoid(u)``.

``log_abs_det_jacobian(u)`` gives ``log |dx/du|`` so densities can be moved
between the two spaces.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy import stats

from agentgrad.errors import ParameterError


def real_dtype() -> jnp.dtype:
    """JAX's default float: float32, or float64 inside ``jax.enable_x64()`` (the float64
    finite-difference check of relaxed simulators runs there)."""
    return jnp.dtype(jnp.result_type(float))


Params = dict[str, jax.Array]


# --------------------------------------------------------------------------- priors


@dataclass(frozen=True)
class Prior:
    """A univariate prior density with support ``[lower, upper]``."""

    @property
    def support(self) -> tuple[float, float]:
        raise NotImplementedError

    def log_prob(self, x: jax.Array) -> jax.Array:
        raise NotImplementedError

    def sample(self, key: jax.Array, shape: tuple[int, ...] = ()) -> jax.Array:
        raise NotImplementedError


@dataclass(frozen=True)
class Uniform(Prior):
    """Uniform density on ``[low, high]``."""

    low: float
    high: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.low) and math.isfinite(self.high) and self.low < self.high):
            raise ParameterError(
                f"Uniform prior needs finite low < high, got low={self.low}, high={self.high}"
            )

    @property
    def support(self) -> tuple[float, float]:
        return (self.low, self.high)

    def log_prob(self, x: jax.Array) -> jax.Array:
        inside = (x >= self.low) & (x <= self.high)
        return jnp.where(inside, -math.log(self.high - self.low), -jnp.inf)

    def sample(self, key: jax.Array, shape: tuple[int, ...] = ()) -> jax.Array:
        return jax.random.uniform(key, shape, minval=self.low, maxval=self.high)


@dataclass(frozen=True)
class Normal(Prior):
    """Normal density with mean ``loc`` and standard deviation ``scale``."""

    loc: float
    scale: float

    def __post_init__(self) -> None:
        if not self.scale > 0:
            raise ParameterError(f"Normal prior needs scale > 0, got {self.scale}")

    @property
    def support(self) -> tuple[float, float]:
        return (-math.inf, math.inf)

    def log_prob(self, x: jax.Array) -> jax.Array:
        return stats.norm.logpdf(x, self.loc, self.scale)

    def sample(self, key: jax.Array, shape: tuple[int, ...] = ()) -> jax.Array:
        return self.loc + self.scale * jax.random.normal(key, shape)


@dataclass(frozen=True)
class LogNormal(Prior):
    """Log-normal density: ``log x ~ Normal(loc, scale)``."""

    loc: float
    scale: float

    def __post_init__(self) -> None:
        if not self.scale > 0:
            raise ParameterError(f"LogNormal prior needs scale > 0, got {self.scale}")

    @property
    def support(self) -> tuple[float, float]:
        return (0.0, math.inf)

    def log_prob(self, x: jax.Array) -> jax.Array:
        safe = jnp.where(x > 0, x, 1.0)
        lp = stats.norm.logpdf(jnp.log(safe), self.loc, self.scale) - jnp.log(safe)
        return jnp.where(x > 0, lp, -jnp.inf)

    def sample(self, key: jax.Array, shape: tuple[int, ...] = ()) -> jax.Array:
        return jnp.exp(self.loc + self.scale * jax.random.normal(key, shape))


@dataclass(frozen=True)
class Beta(Prior):
    """Beta density with shape parameters ``a`` and ``b`` on ``[0, 1]``."""

    a: float
    b: float

    def __post_init__(self) -> None:
        if not (self.a > 0 and self.b > 0):
            raise ParameterError(f"Beta prior needs a > 0 and b > 0, got a={self.a}, b={self.b}")

    @property
    def support(self) -> tuple[float, float]:
        return (0.0, 1.0)

    def log_prob(self, x: jax.Array) -> jax.Array:
        return stats.beta.logpdf(x, self.a, self.b)

    def sample(self, key: jax.Array, shape: tuple[int, ...] = ()) -> jax.Array:
        return jax.random.beta(key, self.a, self.b, shape)


# --------------------------------------------------------------------------- parameters


@dataclass(frozen=True)
class Param:
    """One scalar model parameter.

    Args:
        default: value used when the user gives none.
        lower: lower end of the support (inclusive); ``-inf`` when unbounded.
        upper: upper end of the support (inclusive); ``inf`` when unbounded.
        prior: prior density; defaults to ``Uniform(lower, upper)`` when both are finite.
        description: one line shown by ``agentgrad models``.
        fd_step: finite-difference step to use by default (``None``: relative to the value).
    """

    default: float
    lower: float = -math.inf
    upper: float = math.inf
    prior: Prior | None = None
    description: str = ""
    fd_step: float | None = None

    def __post_init__(self) -> None:
        if not self.lower < self.upper:
            raise ParameterError(f"parameter needs lower < upper, got [{self.lower}, {self.upper}]")
        if not self.lower <= self.default <= self.upper:
            raise ParameterError(
                f"default {self.default} is outside the bounds [{self.lower}, {self.upper}]"
            )
        if self.prior is None and math.isfinite(self.lower) and math.isfinite(self.upper):
            object.__setattr__(self, "prior", Uniform(self.lower, self.upper))
        if self.prior is not None:
            lo, hi = self.prior.support
            if lo < self.lower or hi > self.upper:
                raise ParameterError(
                    f"prior support [{lo}, {hi}] exceeds the bounds [{self.lower}, {self.upper}]"
                )

    def to_constrained(self, u: jax.Array) -> jax.Array:
        """Map an unconstrained value to the support (see module docstring)."""
        lo, hi = self.lower, self.upper
        if math.isinf(lo) and math.isinf(hi):
            return u
        if math.isinf(hi):
            return lo + jax.nn.softplus(u)
        if math.isinf(lo):
            return hi - jax.nn.softplus(-u)
        return lo + (hi - lo) * jax.nn.sigmoid(u)

    def to_unconstrained(self, x: jax.Array) -> jax.Array:
        """Inverse of :meth:`to_constrained` (values on a bound map to ``±inf``)."""
        lo, hi = self.lower, self.upper
        if math.isinf(lo) and math.isinf(hi):
            return x
        if math.isinf(hi):
            return _softplus_inverse(x - lo)
        if math.isinf(lo):
            return -_softplus_inverse(hi - x)
        z = (x - lo) / (hi - lo)
        return jnp.log(z) - jnp.log1p(-z)

    def log_abs_det_jacobian(self, u: jax.Array) -> jax.Array:
        """``log |d to_constrained(u) / du|``."""
        lo, hi = self.lower, self.upper
        if math.isinf(lo) and math.isinf(hi):
            return jnp.zeros_like(u)
        if math.isinf(hi):
            return jax.nn.log_sigmoid(u)
        if math.isinf(lo):
            return jax.nn.log_sigmoid(-u)
        return math.log(hi - lo) + jax.nn.log_sigmoid(u) + jax.nn.log_sigmoid(-u)


def _softplus_inverse(y: jax.Array) -> jax.Array:
    return y + jnp.log(-jnp.expm1(-y))


@dataclass(frozen=True)
class ParamSpace:
    """The named parameters of a model, in a fixed order."""

    params: Mapping[str, Param] = field(default_factory=dict)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.params)

    def __getitem__(self, name: str) -> Param:
        self._check_names([name])
        return self.params[name]

    def __contains__(self, name: object) -> bool:
        return name in self.params

    def __len__(self) -> int:
        return len(self.params)

    def defaults(self) -> Params:
        """Default values as float scalars (:func:`real_dtype`), in declaration order."""
        return {n: jnp.asarray(p.default, real_dtype()) for n, p in self.params.items()}

    def _check_names(self, names: Iterable[str]) -> None:
        unknown = [n for n in names if n not in self.params]
        if unknown:
            raise ParameterError(
                f"unknown parameter {unknown[0]!r}; valid names are: {', '.join(self.names)}"
            )

    def complete(self, params: Mapping[str, object] | None) -> Params:
        """Check names, fill missing ones with defaults, cast to :func:`real_dtype`, check bounds.

        Bounds are checked only for concrete values (not under ``jit``/``grad`` tracing).
        """
        params = dict(params or {})
        self._check_names(params)
        out = self.defaults()
        for name, value in params.items():
            value = jnp.asarray(value, real_dtype())
            if not isinstance(value, jax.core.Tracer):
                self._check_bounds(name, np.asarray(value))
            out[name] = value
        return out

    def _check_bounds(self, name: str, value: np.ndarray) -> None:
        p = self.params[name]
        if np.any(np.isnan(value)):
            raise ParameterError(f"parameter {name!r} is NaN")
        if np.any(value < p.lower) or np.any(value > p.upper):
            raise ParameterError(
                f"parameter {name!r}={value.tolist()} is outside its bounds [{p.lower}, {p.upper}]"
            )

    def to_constrained(self, u: Mapping[str, jax.Array]) -> Params:
        return {n: self.params[n].to_constrained(u[n]) for n in self.names}

    def to_unconstrained(self, x: Mapping[str, jax.Array]) -> Params:
        return {n: self.params[n].to_unconstrained(jnp.asarray(x[n])) for n in self.names}

    def log_abs_det_jacobian(self, u: Mapping[str, jax.Array]) -> jax.Array:
        return sum(self.params[n].log_abs_det_jacobian(u[n]) for n in self.names)

    def log_prior(self, x: Mapping[str, jax.Array]) -> jax.Array:
        """Sum of the per-parameter prior log-densities (independent priors)."""
        self._require_priors()
        return sum(self.params[n].prior.log_prob(jnp.asarray(x[n])) for n in self.names)

    def sample_prior(self, key: jax.Array, shape: tuple[int, ...] = ()) -> Params:
        """Independent draws from every parameter's prior."""
        self._require_priors()
        keys = jax.random.split(key, len(self.names))
        return {
            n: self.params[n].prior.sample(k, shape) for n, k in zip(self.names, keys, strict=True)
        }

    def _require_priors(self) -> None:
        missing = [n for n, p in self.params.items() if p.prior is None]
        if missing:
            raise ParameterError(
                f"parameter {missing[0]!r} has no prior; give one with "
                "ParamSpace.with_priors({name: prior})"
            )

    def with_priors(self, priors: Mapping[str, Prior]) -> ParamSpace:
        """A copy with some priors replaced."""
        self._check_names(priors)
        new = dict(self.params)
        for name, prior in priors.items():
            p = new[name]
            new[name] = dataclasses.replace(p, prior=prior)
        return ParamSpace(new)
