"""Variational families over a model's (selected) parameters.

Every family draws ``z`` in the unconstrained space and maps it to the parameters'
supports with the :class:`~agentgrad.params.ParamSpace` bijection
(`automatic-differentiation-of-abms` §6.1, "Constrained parameter domains"):

    log q(theta) = log q_u(u) - sum_i log |d theta_i / d u_i|,   theta = T(u).

* :class:`DiagonalGaussian` — ``u = mu + exp(log_sigma) * eps``.
* :class:`MaskedAutoregressiveFlow` — affine autoregressive layers (MADE conditioners,
  hidden sizes ``(32, 32)``, 4 layers with order reversal between layers, §10.2.1) on a
  standard normal base, used in the inverse-autoregressive direction
  ``u_i = eps_i * exp(s_i(eps_<i)) + m_i(eps_<i)`` so that sampling *and* the density
  of one's own samples take one pass (what GVI needs); ``log_prob`` of an arbitrary
  point inverts each layer with ``D`` sequential passes.
"""

from __future__ import annotations

from collections.abc import Sequence

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


class _MADE(eqx.Module):
    """Masked MLP: output i (shift, log-scale) depends only on inputs < i."""

    weights: list[jax.Array]
    biases: list[jax.Array]
    masks: list[np.ndarray]  # boolean NumPy: never trained (not an inexact array)

    def __init__(self, dim: int, hidden: Sequence[int], key: jax.Array):
        degrees_in = np.arange(dim)
        sizes = [dim, *hidden, 2 * dim]
        degrees = [degrees_in]
        for h in hidden:
            degrees.append(np.arange(h) % max(dim - 1, 1))
        degrees.append(np.concatenate([degrees_in, degrees_in]))
        self.weights, self.biases, self.masks = [], [], []
        keys = jax.random.split(key, len(sizes) - 1)
        for layer, k in enumerate(keys):
            d_in, d_out = degrees[layer], degrees[layer + 1]
            last = layer == len(sizes) - 2
            mask = (d_out[:, None] > d_in[None, :]) if last else (d_out[:, None] >= d_in[None, :])
            scale = 0.01 if last else 1.0 / np.sqrt(sizes[layer])
            self.weights.append(scale * jax.random.normal(k, (sizes[layer + 1], sizes[layer])))
            self.biases.append(jnp.zeros(sizes[layer + 1]))
            self.masks.append(np.asarray(mask, bool))

    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        h = x
        for i, (w, b, m) in enumerate(zip(self.weights, self.biases, self.masks, strict=True)):
            h = (w * jnp.asarray(m, w.dtype)) @ h + b
            if i < len(self.weights) - 1:
                h = jax.nn.tanh(h)
        shift, log_scale = jnp.split(h, 2)
        return shift, jnp.clip(log_scale, -6.0, 4.0)


class MaskedAutoregressiveFlow(Family):
    """Affine autoregressive flow (see module docstring); 4 layers, hidden (32, 32)."""

    layers: list[_MADE]
    shift: jax.Array  # final location, initialised at the priors' defaults
    dim: int = eqx.field(static=True)
    hidden: tuple[int, ...] = eqx.field(static=True)

    def __init__(
        self,
        dim: int,
        key: jax.Array,
        n_layers: int = 4,
        hidden: Sequence[int] = (32, 32),
        shift: jax.Array | None = None,
    ):
        self.dim, self.hidden = dim, tuple(hidden)
        self.layers = [_MADE(dim, hidden, k) for k in jax.random.split(key, n_layers)]
        self.shift = jnp.zeros(dim, jnp.float32) if shift is None else jnp.asarray(shift)

    def _forward(self, eps: jax.Array) -> tuple[jax.Array, jax.Array]:
        x, log_det = eps, jnp.zeros(())
        for layer in self.layers:
            shift, log_scale = layer(x)
            x = (x * jnp.exp(log_scale) + shift)[::-1]
            log_det = log_det + jnp.sum(log_scale)
        return x + self.shift, log_det

    def sample_and_log_prob(self, key, n):
        eps = jax.random.normal(key, (n, self.dim))
        u, log_det = jax.vmap(self._forward)(eps)
        return u, _std_normal_logpdf(eps) - log_det

    def _inverse(self, u: jax.Array) -> tuple[jax.Array, jax.Array]:
        x, log_det = u - self.shift, jnp.zeros(())
        for layer in reversed(self.layers):
            y = x[::-1]
            z = jnp.zeros_like(y)
            for _ in range(self.dim):  # D sequential passes (D = number of parameters)
                shift, log_scale = layer(z)
                z = (y - shift) * jnp.exp(-log_scale)
            log_det = log_det + jnp.sum(log_scale)
            x = z
        return x, log_det

    def log_prob(self, u):
        flat = u.reshape(-1, self.dim)
        eps, log_det = jax.vmap(self._inverse)(flat)
        return (_std_normal_logpdf(eps) - log_det).reshape(u.shape[:-1])


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
