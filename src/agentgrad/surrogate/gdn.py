"""Graph Diffusion Network (`graph-diffusion-networks-for-abms` §3, App. A, Table 1).

For every agent ``i`` a message-passing GNN summarises its neighbourhood,

    g^i = MLP_omega([ sum_{j in N(i)} Z^j , Z^i ])          (Message(x_j) = x_j),

and a conditional denoising diffusion model samples the agent's next dynamic features
``z^i_{t+1}`` given the condition ``c^i = MLP(z^i_t) + MLP(g^i) + MLP(emb(tau))`` (Eq. 4).
Forward noising (Eq. 2): ``z(tau) = sqrt(abar_tau) z + sqrt(1 - abar_tau) eps``; the
schedule (Eq. 3) is ``beta_k = beta_start + (beta_end - beta_start)(1 - cos(pi k /
tau_max)) / 2`` for ``k = 0 .. tau_max`` (101 values at ``tau_max = 100``, as in the
reference code); training draws ``tau ~ U{0 .. tau_max - 1}`` per agent and minimises
``||eps - eps_hat(z(tau), c)||^2`` (Eq. 5) over all agents; sampling runs ``tau =
tau_max - 1 .. 0`` with the posterior-variance noise ``sigma_tau^2 = beta_tau (1 -
abar_{tau-1}) / (1 - abar_tau)`` and no noise at the last step (App. A.4).

Note that this schedule does not reach pure noise: ``abar_100 = 0.37`` (the sum of the
betas is about 1), yet sampling starts from ``N(0, I)``; a trained denoiser absorbs the
mismatch, an exact one does not (``tests/test_surrogate.py`` checks both against the
closed form of the Gaussian case).

Where the reference code (``models/surrogate/nnmodel.py``) and the paper differ
(digest §C.6), we follow the code by default and expose the paper's choice:

* ``tau`` range: code (``0 .. tau_max - 1``, one per agent) — followed;
* output layer: the code passes ``eps_hat`` through a LeakyReLU(0.1)
  (``output_activation="leaky_relu"``, default); ``"linear"`` is the usual DDPM head;
* time embedding: the code's sinusoidal embedding has the width of the dynamic features
  (``time_embedding_dim=None``); give a width (e.g. 128) for the paper's reading;
* state MLP input: the dynamic features only (code);
* initialisation: Xavier-uniform weights for the denoiser, PyTorch-default (Kaiming
  uniform) for the GNN, zero biases.

**Beyond the paper: parameter conditioning.**  The paper leaves feeding the ABM's
parameters ``Theta`` to the surrogate as future work.  With ``theta_names`` (parameters
of the model) and ``theta_ranges`` (their training range, default ``(0, 1)`` each) the
condition gets a fourth term, ``c^i = ... + MLP(theta~)`` with ``theta~ = 2 (theta -
low) / (high - low) - 1`` the same for every agent (with ``theta_input=
"condition+gnn"`` the GNN also reads ``[sum_j Z^j, Z^i, theta~]``), so one network
learns
``P(z^i_{t+1} | Z_t, Theta)`` from ramifications drawn at several ``Theta``
(:func:`~agentgrad.surrogate.data.ramifications` with ``condition_on``).  Since the
sampler is reparameterised, ``jax.grad`` runs through a rollout's macro statistics to
``Theta`` (:class:`~agentgrad.surrogate.model.GDNSurrogate` reads ``Theta`` from the
parameters it is simulated with).  For categorical agent states that gradient is close
to zero: a trained denoiser maps noise to the modes almost piecewise-constantly, so mass
that changes mode does not show in a reparameterised derivative
(``examples/surrogate_calibration.py``).  The likelihood-ratio gradient does see it:
``Schedule.sample(..., score=True)`` also returns the sampled path's log-density, and
``GDNSurrogate(..., gradient="score")`` with :func:`~agentgrad.surrogate.model.with_score`
turns it into an unbiased estimate of ``grad E[statistic]`` (up to the last,
noise-free denoising step's boundary term); common-random-number differences remain
the cheap alternative.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp

from agentgrad import rng
from agentgrad.errors import AgentgradError

HIDDEN = (128, 256, 1024, 1024, 256, 128)  # Table 1, denoiser
GNN_HIDDEN = (32, 64, 128)  # Table 1, GNN
CONDITION = 256  # condition and graph-embedding width


def leaky(x: jax.Array) -> jax.Array:
    return jax.nn.leaky_relu(x, 0.1)


def _linear(d_in: int, d_out: int, key: jax.Array, init: str) -> eqx.nn.Linear:
    layer = eqx.nn.Linear(d_in, d_out, key=key)
    if init == "xavier":
        bound = math.sqrt(6.0 / (d_in + d_out))
        w = jax.random.uniform(key, (d_out, d_in), minval=-bound, maxval=bound)
        layer = eqx.tree_at(lambda m: (m.weight, m.bias), layer, (w, jnp.zeros(d_out)))
    return layer


class MLP(eqx.Module):
    """Linear layers with LeakyReLU(0.1) between them (and after the last if ``act_last``)."""

    layers: list[eqx.nn.Linear]
    act_last: bool = eqx.field(static=True)

    def __init__(
        self, dims: Sequence[int], key: jax.Array, act_last: bool = False, init: str = "torch"
    ):
        keys = jax.random.split(key, len(dims) - 1)
        self.layers = [
            _linear(a, b, k, init) for a, b, k in zip(dims[:-1], dims[1:], keys, strict=True)
        ]
        self.act_last = act_last

    def __call__(self, x: jax.Array) -> jax.Array:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1 or self.act_last:
                x = leaky(x)
        return x


def sinusoidal(tau: jax.Array, dim: int) -> jax.Array:
    """The reference's embedding: ``half = dim // 2`` (``dim`` if that is 0) frequencies
    ``exp(-log(1e4) k / half)``, features ``[sin(tau f), -cos(tau f)]``."""
    half = dim // 2 or dim
    freqs = jnp.exp(jnp.arange(half, dtype=jnp.float32) * -(math.log(10000.0) / half))
    arg = jnp.asarray(tau, jnp.float32) * freqs
    return jnp.concatenate([jnp.sin(arg), -jnp.cos(arg)])


class ConditionBlock(eqx.Module):
    """LayerNorm -> Linear+act -> + Linear(act(c)) -> Linear+act -> + residual (Table 1)."""

    norm: eqx.nn.LayerNorm
    first: eqx.nn.Linear
    cond: eqx.nn.Linear
    second: eqx.nn.Linear
    residual: eqx.nn.Linear | None

    def __init__(self, d_in: int, d_out: int, key: jax.Array, condition: int = CONDITION):
        k = jax.random.split(key, 4)
        self.norm = eqx.nn.LayerNorm(d_in)
        self.first = _linear(d_in, d_out, k[0], "xavier")
        self.cond = _linear(condition, d_out, k[1], "xavier")
        self.second = _linear(d_out, d_out, k[2], "xavier")
        self.residual = _linear(d_in, d_out, k[3], "xavier") if d_in != d_out else None

    def __call__(self, x: jax.Array, c: jax.Array) -> jax.Array:
        h = leaky(self.first(self.norm(x))) + self.cond(leaky(c))
        h = leaky(self.second(h))
        return h + (x if self.residual is None else leaky(self.residual(x)))


class Denoiser(eqx.Module):
    """``eps_hat(z(tau), c)`` for one agent: the conditional diffusion network of Table 1."""

    time_mlp: MLP
    state_mlp: MLP
    graph_mlp: MLP
    param_mlp: MLP | None
    first: eqx.nn.Linear
    blocks: list[ConditionBlock]
    last: eqx.nn.Linear
    time_dim: int = eqx.field(static=True)
    output_activation: str = eqx.field(static=True)

    def __init__(
        self,
        dim: int,
        key: jax.Array,
        hidden: Sequence[int] = HIDDEN,
        time_embedding_dim: int | None = None,
        output_activation: str = "leaky_relu",
        condition: int = CONDITION,
        n_params: int = 0,
    ):
        if output_activation not in ("leaky_relu", "linear"):
            raise ValueError("output_activation must be 'leaky_relu' (code) or 'linear'")
        k = jax.random.split(key, 7)
        self.time_dim = time_embedding_dim or dim
        t_in = 2 * (self.time_dim // 2 or self.time_dim)
        c = condition
        self.time_mlp = MLP([t_in, c, c], k[0])
        self.state_mlp = MLP([dim, c, c, c], k[1])
        self.graph_mlp = MLP([c, c, c, c], k[2])
        self.param_mlp = MLP([n_params, c, c], k[6]) if n_params else None
        self.first = _linear(dim, hidden[0], k[3], "xavier")
        keys = jax.random.split(k[4], len(hidden) - 1)
        self.blocks = [
            ConditionBlock(a, b, kk, c)
            for a, b, kk in zip(hidden[:-1], hidden[1:], keys, strict=True)
        ]
        self.last = _linear(hidden[-1], dim, k[5], "xavier")
        self.output_activation = output_activation

    def __call__(
        self,
        z: jax.Array,
        state: jax.Array,
        g: jax.Array,
        tau: jax.Array,
        theta: jax.Array | None = None,
    ):
        c = (
            self.state_mlp(state)
            + self.graph_mlp(g)
            + self.time_mlp(sinusoidal(tau, self.time_dim))
        )
        if self.param_mlp is not None:
            c = c + self.param_mlp(theta)
        h = leaky(self.first(z))
        for block in self.blocks:
            h = block(h, c)
        out = self.last(h)
        return leaky(out) if self.output_activation == "leaky_relu" else out


class GNN(eqx.Module):
    """``g = MLP([sum_j Z^j, Z^i])`` with LeakyReLU after every layer (Table 1);
    ``g = MLP([sum_j Z^j, Z^i, theta~])`` with ``extra = p`` parameter inputs."""

    mlp: MLP

    def __init__(
        self,
        state_dim: int,
        key: jax.Array,
        hidden: Sequence[int] = GNN_HIDDEN,
        condition: int = CONDITION,
        extra: int = 0,
    ):
        self.mlp = MLP([2 * state_dim + extra, *hidden, condition], key, act_last=True)

    def __call__(
        self, aggregated: jax.Array, z: jax.Array, theta: jax.Array | None = None
    ) -> jax.Array:
        parts = [aggregated, z] if theta is None else [aggregated, z, theta]
        return self.mlp(jnp.concatenate(parts))


class Schedule(eqx.Module):
    """Eq. 3's cosine schedule on beta and the quantities of Eq. 2 and App. A.4 (arrays
    computed from the three settings, so they are never trained)."""

    tau_max: int = eqx.field(static=True, default=100)
    beta_start: float = eqx.field(static=True, default=1e-4)
    beta_end: float = eqx.field(static=True, default=0.02)

    @property
    def betas(self) -> jax.Array:
        k = jnp.arange(self.tau_max + 1, dtype=jnp.float32)
        cos = jnp.cos(jnp.pi * k / self.tau_max)
        return self.beta_start + 0.5 * (self.beta_end - self.beta_start) * (1 - cos)

    @property
    def alphas(self) -> jax.Array:
        return 1.0 - self.betas

    @property
    def alpha_bar(self) -> jax.Array:
        return jnp.cumprod(self.alphas)

    @property
    def posterior_variance(self) -> jax.Array:
        abar = self.alpha_bar
        prev = jnp.concatenate([jnp.ones(1), abar[:-1]])
        return self.betas * (1 - prev) / (1 - abar)

    def noise(self, z: jax.Array, tau: jax.Array, eps: jax.Array) -> jax.Array:
        """``z(tau) = sqrt(abar_tau) z + sqrt(1 - abar_tau) eps`` (Eq. 2), row-wise tau."""
        a = self.alpha_bar[tau][:, None]
        return jnp.sqrt(a) * z + jnp.sqrt(1.0 - a) * eps

    def sample(
        self, eps_fn, shape: tuple[int, int], key: jax.Array, score: bool = False
    ) -> jax.Array | tuple[jax.Array, jax.Array]:
        """Ancestral sampling (App. A.4) for ``tau = tau_max - 1 .. 0``:
        ``x <- m_tau(x) + sigma_tau z`` with ``m_tau(x) = (x - beta_tau / sqrt(1 -
        abar_tau) eps_fn(x, tau)) / sqrt(alpha_tau)``, ``sigma_tau^2`` the posterior
        variance and no noise at ``tau = 0``; ``eps_fn(x, tau)`` gets a row-wise ``tau``
        of shape ``(n,)``.

        With ``score``, also return the log-density of the sampled path (up to a
        constant), ``log q = -sum_{tau >= 1} ||x_{tau-1} - m_tau(x_tau)||^2 / (2
        sigma_tau^2)``, with the path itself held fixed (``stop_gradient``): its
        gradient is the score ``grad log q`` of the likelihood-ratio (REINFORCE)
        estimator, ``grad E[f(x)] = E[f(x) grad log q]``, which sees samples change
        mode.  The last, noise-free step stays pathwise, so a derivative through a
        discontinuous decoding of ``x_0`` misses the boundary term of that one
        deterministic step (``tests/test_surrogate.py`` states its size).
        """
        betas, alphas, abar = self.betas, self.alphas, self.alpha_bar
        sd = jnp.sqrt(self.posterior_variance).at[0].set(0.0)
        k0, k_steps = jax.random.split(key)

        @jax.checkpoint  # reverse mode keeps x per denoising step, not the network's
        def body(carry, inp):  # activations (recomputed on the way back)
            x, log_q = carry
            tau, k = inp
            x_in = jax.lax.stop_gradient(x) if score else x
            eps_hat = eps_fn(x_in, jnp.full((shape[0],), tau))
            scale = betas[tau] / jnp.sqrt(1 - abar[tau])
            mean = (x_in - scale * eps_hat) / jnp.sqrt(alphas[tau])
            noise = rng.normal(k, x.shape, x.dtype)
            if not score:
                return (mean + sd[tau] * noise, log_q), None
            # tau = 0 has no noise: the last step is pathwise, with no density term
            noisy = tau > 0
            drawn = jax.lax.stop_gradient(mean + sd[tau] * noise)
            term = -jnp.sum((drawn - mean) ** 2) / (2 * jnp.where(noisy, sd[tau], 1.0) ** 2)
            return (jnp.where(noisy, drawn, mean), log_q + jnp.where(noisy, term, 0.0)), None

        taus = jnp.arange(self.tau_max - 1, -1, -1)
        x0 = rng.normal(k0, shape)
        keys = jax.random.split(k_steps, self.tau_max)
        (x, log_q), _ = jax.lax.scan(body, (x0, jnp.zeros((), x0.dtype)), (taus, keys))
        return (x, log_q) if score else x


class AgentNetwork(eqx.Module):
    """What every per-agent next-state network shares: feature sizes, the neighbour
    aggregation, and its constructor settings (for save / load)."""

    static_dim: int = eqx.field(static=True)
    dynamic_dim: int = eqx.field(static=True)
    aggregation: str = eqx.field(static=True)
    config: tuple = eqx.field(static=True)

    @property
    def theta_names(self) -> tuple[str, ...]:
        """The model parameters the network is conditioned on (none by default)."""
        return tuple(dict(self.config).get("theta_names", ()))

    def scaled_theta(self, theta: jax.Array | None) -> jax.Array | None:
        """``theta`` ``(p,)`` in the network's input scale ``[-1, 1]`` over the training
        range; a one-line error when it is missing or has the wrong length."""
        names = self.theta_names
        if not names:
            if theta is not None:
                raise AgentgradError(
                    "this surrogate is not parameter-conditioned (trained without "
                    "theta_names); drop theta"
                )
            return None
        if theta is None or jnp.shape(theta) != (len(names),):
            raise AgentgradError(
                f"this surrogate is conditioned on {list(names)}: pass theta of shape "
                f"({len(names)},), got {None if theta is None else jnp.shape(theta)}"
            )
        ranges = jnp.asarray(dict(self.config)["theta_ranges"], jnp.float32)
        low, high = ranges[:, 0], ranges[:, 1]
        return 2.0 * (jnp.asarray(theta, jnp.float32) - low) / (high - low) - 1.0

    def aggregate(self, aggregated: jax.Array, degree: jax.Array) -> jax.Array:
        """The neighbour sums, divided by the degree for mean aggregation."""
        if self.aggregation == "mean":
            return aggregated / jnp.maximum(degree, 1.0)[:, None]
        return aggregated


class GDN(AgentNetwork):
    """A Graph Diffusion Network over agents with ``static_dim + dynamic_dim`` features.

    ``aggregation``: ``"sum"`` (predator-prey) or ``"mean"`` (Schelling) over the
    neighbours (§3).  ``hidden`` / ``gnn_hidden`` / ``condition`` (the width of the
    condition and graph embedding, 256) default to Table 1; smaller widths make CPU
    training feasible.

    ``context="flat"`` is the paper's diffusion-only ablation (§4.1): the GNN embedding
    is replaced by an MLP of the flat concatenation of all ``n_agents`` agent states,
    the same vector for every agent (no relational structure).

    ``theta_names`` / ``theta_ranges``: condition on these model parameters (module
    docstring); ``loss`` and ``sample`` then take ``theta`` ``(p,)``.  ``theta_input``:
    ``"condition"`` (default) adds ``MLP(theta~)`` to the condition only;
    ``"condition+gnn"`` also appends ``theta~`` to every agent's GNN input, so the
    neighbourhood summary can interact with the parameters.  On the Flip rule of
    ``tests/test_surrogate.py`` the default interpolated better (P at held-out 0.3 / 0.7:
    0.35 / 0.70 against 0.41 / 0.72); on predator-prey the two did not differ.
    """

    gnn: GNN | MLP
    denoiser: Denoiser
    schedule: Schedule

    def __init__(
        self,
        static_dim: int,
        dynamic_dim: int,
        key: jax.Array,
        *,
        aggregation: str = "sum",
        hidden: Sequence[int] = HIDDEN,
        gnn_hidden: Sequence[int] = GNN_HIDDEN,
        tau_max: int = 100,
        time_embedding_dim: int | None = None,
        output_activation: str = "leaky_relu",
        context: str = "graph",
        n_agents: int | None = None,
        condition: int = CONDITION,
        theta_names: Sequence[str] = (),
        theta_ranges: Sequence[Sequence[float]] | None = None,
        theta_input: str = "condition",
    ):
        theta_names = tuple(theta_names)
        if theta_input not in ("condition", "condition+gnn"):
            raise ValueError(
                f"theta_input must be 'condition' or 'condition+gnn', got {theta_input!r}"
            )
        if theta_ranges is None:
            theta_ranges = [(0.0, 1.0)] * len(theta_names)
        theta_ranges = tuple((float(lo), float(hi)) for lo, hi in theta_ranges)
        if len(theta_ranges) != len(theta_names) or any(hi <= lo for lo, hi in theta_ranges):
            raise ValueError("theta_ranges needs one (low, high) with low < high per theta name")
        if context not in ("graph", "flat") or (context == "flat" and not n_agents):
            raise ValueError("context must be 'graph', or 'flat' with n_agents")
        if aggregation not in ("sum", "mean"):
            raise ValueError(f"aggregation must be 'sum' or 'mean', got {aggregation!r}")
        if dynamic_dim < 1 or static_dim < 0 or tau_max < 2 or len(hidden) < 2:
            raise ValueError("need dynamic_dim >= 1, static_dim >= 0, tau_max >= 2, >= 2 hidden")
        k_gnn, k_den = jax.random.split(key)
        width = static_dim + dynamic_dim
        if context == "graph":
            extra = len(theta_names) if theta_input == "condition+gnn" else 0
            self.gnn = GNN(width, k_gnn, gnn_hidden, condition, extra)
        else:
            self.gnn = MLP([n_agents * width, condition, condition], k_gnn, act_last=True)
        self.denoiser = Denoiser(
            dynamic_dim,
            k_den,
            hidden,
            time_embedding_dim,
            output_activation,
            condition,
            len(theta_names),
        )
        self.schedule = Schedule(tau_max)
        self.static_dim, self.dynamic_dim, self.aggregation = static_dim, dynamic_dim, aggregation
        self.config = (
            ("static_dim", static_dim),
            ("dynamic_dim", dynamic_dim),
            ("aggregation", aggregation),
            ("hidden", tuple(hidden)),
            ("gnn_hidden", tuple(gnn_hidden)),
            ("tau_max", tau_max),
            ("time_embedding_dim", time_embedding_dim),
            ("output_activation", output_activation),
            ("context", context),
            ("n_agents", n_agents),
            ("condition", condition),
            ("theta_names", theta_names),
            ("theta_ranges", theta_ranges),
            ("theta_input", theta_input),
        )

    def embed(
        self,
        z: jax.Array,
        aggregated: jax.Array,
        degree: jax.Array,
        scaled_theta: jax.Array | None = None,
    ) -> jax.Array:
        """Per-agent graph embedding ``g`` ``(N, condition)`` from the full states ``z``
        ``(N, s+d)`` and their neighbour sums (divided by the degree for mean aggregation),
        and the scaled parameters when they are a GNN input."""
        if isinstance(self.gnn, MLP):  # diffusion-only ablation: one flat context
            flat = self.gnn(z.reshape(-1))
            return jnp.broadcast_to(flat, (z.shape[0], flat.shape[0]))
        if dict(self.config).get("theta_input") != "condition+gnn":
            scaled_theta = None
        return jax.vmap(self.gnn, (0, 0, None))(self.aggregate(aggregated, degree), z, scaled_theta)

    def loss(
        self,
        z: jax.Array,
        aggregated: jax.Array,
        degree: jax.Array,
        target: jax.Array,
        key: jax.Array,
        theta: jax.Array | None = None,
    ) -> jax.Array:
        """Eq. 5 over all agents: one ``tau`` and one ``eps`` per agent."""
        scaled = self.scaled_theta(theta)
        n = z.shape[0]
        k_tau, k_eps = jax.random.split(key)
        tau = jax.random.randint(k_tau, (n,), 0, self.schedule.tau_max)
        eps = rng.normal(k_eps, target.shape, target.dtype)
        noisy = self.schedule.noise(target, tau, eps)
        g = self.embed(z, aggregated, degree, scaled)
        current = z[:, self.static_dim :]
        eps_hat = jax.vmap(self.denoiser, (0, 0, 0, 0, None))(noisy, current, g, tau, scaled)
        return jnp.mean((eps - eps_hat) ** 2)

    def sample(
        self,
        z: jax.Array,
        aggregated: jax.Array,
        degree: jax.Array,
        key: jax.Array,
        theta: jax.Array | None = None,
        score: bool = False,
    ) -> jax.Array | tuple[jax.Array, jax.Array]:
        """One draw of every agent's next dynamic features (App. A.4), ``(N, d)``.

        Reparameterised: the noise is an input, so the draw is differentiable in the
        network's inputs (``z``, hence initial agent states), ``theta`` and weights.
        With ``score``, also the path's log-density for the likelihood-ratio gradient
        (:meth:`Schedule.sample`)."""
        scaled = self.scaled_theta(theta)
        g = self.embed(z, aggregated, degree, scaled)
        current = z[:, self.static_dim :]

        def eps_fn(x, tau):
            return jax.vmap(self.denoiser, (0, 0, 0, 0, None))(x, current, g, tau, scaled)

        return self.schedule.sample(eps_fn, (z.shape[0], self.dynamic_dim), key, score)


class GNNOnly(AgentNetwork):
    """The paper's GNN-only ablation (§4.1, App. A.2): no diffusion; a deterministic MLP
    of ``[sum_j Z^j, Z^i]`` (hidden [32, 64, 128, 128, 64, 32], LeakyReLU output as in
    the reference code) trained by MSE to the next dynamic features."""

    mlp: MLP

    def __init__(
        self,
        static_dim: int,
        dynamic_dim: int,
        key: jax.Array,
        *,
        aggregation: str = "sum",
        hidden: Sequence[int] = (32, 64, 128, 128, 64, 32),
    ):
        width = static_dim + dynamic_dim
        self.mlp = MLP([2 * width, *hidden, dynamic_dim], key, act_last=True)
        self.static_dim, self.dynamic_dim, self.aggregation = static_dim, dynamic_dim, aggregation
        self.config = (
            ("static_dim", static_dim),
            ("dynamic_dim", dynamic_dim),
            ("aggregation", aggregation),
            ("hidden", tuple(hidden)),
        )

    @property
    def gnn(self) -> MLP:  # trained with the GNN learning rate
        return self.mlp

    def predict(self, z: jax.Array, aggregated: jax.Array, degree: jax.Array) -> jax.Array:
        inputs = jnp.concatenate([self.aggregate(aggregated, degree), z], axis=1)
        return jax.vmap(self.mlp)(inputs)

    def loss(self, z, aggregated, degree, target, key, theta=None) -> jax.Array:
        self.scaled_theta(theta)  # the ablation is never parameter-conditioned
        return jnp.mean((self.predict(z, aggregated, degree) - target) ** 2)

    def sample(self, z, aggregated, degree, key, theta=None, score=False):
        self.scaled_theta(theta)
        x = self.predict(z, aggregated, degree)
        return (x, jnp.zeros((), x.dtype)) if score else x  # deterministic: no density


NETWORKS = {"GDN": GDN, "GNNOnly": GNNOnly}
FORMAT = "agentgrad-gdn-1"


def save_gdn(path: str | Path, gdn: AgentNetwork, meta: dict[str, Any] | None = None) -> Path:
    """Write one file: a JSON header line (format, class, settings, ``meta`` such as the
    model it surrogates and the training history), then the weights."""
    path = Path(path)
    header = {
        "format": FORMAT,
        "class": type(gdn).__name__,
        "config": dict(gdn.config),
        "meta": meta or {},
    }
    with path.open("wb") as f:
        f.write(json.dumps(header).encode("utf-8") + b"\n")
        eqx.tree_serialise_leaves(f, gdn)
    return path


def load_gdn(path: str | Path) -> tuple[AgentNetwork, dict[str, Any]]:
    """Read a network written by :func:`save_gdn`; returns ``(network, meta)``."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            header = json.loads(f.readline().decode("utf-8"))
            if header.get("format") != FORMAT:
                raise ValueError(f"format {header.get('format')!r}")
            config = dict(header["config"])
            static_dim, dynamic_dim = config.pop("static_dim"), config.pop("dynamic_dim")
            cls = NETWORKS[header.get("class", "GDN")]
            template = cls(static_dim, dynamic_dim, jax.random.key(0), **config)
            gdn = eqx.tree_deserialise_leaves(f, template)
    except FileNotFoundError:
        raise AgentgradError(
            f"no trained surrogate at {path}; train one with `agentgrad surrogate train`"
        ) from None
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, AttributeError) as err:
        raise AgentgradError(f"{path} is not an agentgrad surrogate checkpoint ({err})") from None
    return gdn, header.get("meta", {})
