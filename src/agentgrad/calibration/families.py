"""Variational families over a model's (selected) parameters.

Every family draws ``z`` in the unconstrained space and maps it to the parameters'
supports with the :class:`~agentgrad.params.ParamSpace` bijection
(`automatic-differentiation-of-abms` §6.1, "Constrained parameter domains"):

    log q(theta) = log q_u(u) - sum_i log |d theta_i / d u_i|,   theta = T(u).

* :class:`DiagonalGaussian` — ``u = mu + exp(log_sigma) * eps``.
* :class:`Flow` — a flowjax masked autoregressive flow (§10.2.1; `ad-vs-sbi-for-abms`
  App. B): ``kind="maf"`` (affine transformers, 8 layers of width 50, flowjax's
  defaults) or ``kind="spline"`` (rational-quadratic splines), built in the sampling
  direction so that a sample and its density take one pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from agentgrad.errors import ParameterError
from agentgrad.params import Param, ParamSpace

_LOG_2PI = float(np.log(2 * np.pi))


class Family(eqx.Module):
    """A distribution over unconstrained vectors of dimension ``dim``."""

    def sample_and_log_prob(self, key: jax.Array, n: int) -> tuple[jax.Array, jax.Array]:
        """``n`` reparameterised samples ``u`` (n, dim) and ``log q_u(u)`` (n,)."""
        raise NotImplementedError

    def log_prob(self, u: jax.Array) -> jax.Array:
        """``log q_u(u)`` for ``u`` of shape (..., dim)."""
        raise NotImplementedError


def _std_normal_logpdf(eps: jax.Array) -> jax.Array:
    return -0.5 * jnp.sum(eps**2 + _LOG_2PI, axis=-1)


class DiagonalGaussian(Family):
    """Independent Gaussians in the unconstrained space."""

    mean: jax.Array
    log_std: jax.Array

    def __init__(self, dim: int, mean: jax.Array | None = None, log_std: float = -1.0):
        self.mean = jnp.zeros(dim, jnp.float32) if mean is None else jnp.asarray(mean)
        self.log_std = jnp.full((dim,), log_std, jnp.float32)

    def sample_and_log_prob(self, key, n):
        eps = jax.random.normal(key, (n, self.mean.shape[0]))
        u = self.mean + jnp.exp(self.log_std) * eps
        return u, _std_normal_logpdf(eps) - jnp.sum(self.log_std)

    def log_prob(self, u):
        eps = (u - self.mean) / jnp.exp(self.log_std)
        return _std_normal_logpdf(eps) - jnp.sum(self.log_std)


class Flow(Family):
    """A normalizing flow from flowjax on a standard normal base: ``u = shift + scale z``.

    ``kind="maf"``: masked autoregressive flow with affine transformers
    (:func:`flowjax.flows.masked_autoregressive_flow`); ``kind="spline"``: the same with
    rational-quadratic spline transformers (``knots`` inner knots on ``[-interval,
    interval]``, identity outside).  ``invert=False``: sampling and the density of one's
    own samples take one pass (what GVI needs); ``log_prob`` of arbitrary points inverts
    the autoregressive layers (``dim`` passes each).
    """

    flow: Any
    shift: jax.Array  # location and scale, initialised at the prior's (unconstrained)
    log_scale: jax.Array
    dim: int = eqx.field(static=True)
    kind: str = eqx.field(static=True)
    layers: int = eqx.field(static=True)
    width: int = eqx.field(static=True)

    def __init__(
        self,
        dim: int,
        key: jax.Array,
        kind: str = "maf",
        layers: int = 8,
        width: int = 50,
        shift: jax.Array | None = None,
        scale: jax.Array | None = None,
        knots: int = 8,
        interval: float = 4.0,
    ):
        from flowjax.bijections import Affine, RationalQuadraticSpline
        from flowjax.distributions import StandardNormal
        from flowjax.flows import masked_autoregressive_flow

        if kind not in FLOW_KINDS:
            raise ParameterError(f"unknown flow kind {kind!r}; use {' or '.join(FLOW_KINDS)}")
        if kind == "maf":
            transformer = Affine()
        else:
            transformer = RationalQuadraticSpline(knots=knots, interval=interval)
        self.dim, self.kind, self.layers, self.width = dim, kind, layers, width
        self.flow = masked_autoregressive_flow(
            key,
            base_dist=StandardNormal((dim,)),
            transformer=transformer,
            flow_layers=layers,
            nn_width=width,
            invert=False,
        )
        self.shift = jnp.zeros(dim, jnp.float32) if shift is None else jnp.asarray(shift)
        self.log_scale = jnp.zeros(dim, jnp.float32) if scale is None else jnp.log(scale)

    def sample_and_log_prob(self, key, n):
        z, log_q = self.flow.sample_and_log_prob(key, (n,))
        return self.shift + jnp.exp(self.log_scale) * z, log_q - jnp.sum(self.log_scale)

    def log_prob(self, u):
        z = (u - self.shift) * jnp.exp(-self.log_scale)
        return self.flow.log_prob(z) - jnp.sum(self.log_scale)


FLOW_KINDS = ("maf", "spline")


def MaskedAutoregressiveFlow(dim: int, key: jax.Array, **options: Any) -> Flow:  # noqa: N802
    """A :class:`Flow` with affine transformers (the name before flowjax)."""
    return Flow(dim, key, "maf", **options)


def trainable(family: Family) -> tuple[Family, Family]:
    """``(trainable, static)`` parts of a family (flowjax's non-trainable leaves static)."""
    import paramax

    return eqx.partition(
        family, eqx.is_inexact_array, is_leaf=lambda x: isinstance(x, paramax.NonTrainable)
    )


def support_param(space: ParamSpace, name: str) -> Param:
    """The parameter with its bounds narrowed to its prior's support (the map ``T``)."""
    p = space[name]
    if p.prior is None:
        raise ParameterError(f"parameter {name!r} has no prior; calibration needs one")
    lo, hi = p.prior.support
    default = min(max(p.default, lo), hi)
    if not lo < default < hi:  # default on the edge: use the middle (or an inside point)
        default = (lo + hi) / 2 if np.isfinite(lo + hi) else (lo + 1 if np.isfinite(lo) else hi - 1)
    return Param(default, lo, hi, p.prior)


def to_params(space: ParamSpace, names: Sequence[str], u: jax.Array):
    """Map unconstrained rows ``u`` (..., D) onto the priors' supports: parameters and
    ``log |det J|``."""
    theta, log_det = {}, jnp.zeros(u.shape[:-1])
    for i, name in enumerate(names):
        p = support_param(space, name)
        theta[name] = p.to_constrained(u[..., i])
        log_det = log_det + p.log_abs_det_jacobian(u[..., i])
    return theta, log_det


def initial_mean(space: ParamSpace, names: Sequence[str]) -> jax.Array:
    """Unconstrained image of each parameter's (support-clipped) default."""
    return jnp.stack(
        [
            support_param(space, n).to_unconstrained(jnp.float32(support_param(space, n).default))
            for n in names
        ]
    )
