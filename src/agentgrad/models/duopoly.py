"""Opinion dynamics in a duopoly with learnable per-agent follower tendencies
(`flame-framework-for-learning-in-abms` §4.3, mode 1, after Garlick & Chli 2010).

Consumers on a contact graph buy one of two products, A or B, every step.  The paper
leaves the utility, qualities and graph open (reproductions.md §B.5 C6); this module
fixes them as follows.  Consumer ``i`` holds an opinion ``o_ik`` of each product's
quality and a *follower tendency* ``f_i = sigmoid(theta_i)`` (``theta`` is a per-agent
parameter array of the ``purchase`` substep, trainable with :func:`agentgrad.train`):

* observe: the share ``n_i`` of neighbours that bought A at the previous step;
* policy: buy A with probability
  ``p_i = (1 - f_i) sigmoid((o_iA - o_iB) / temperature) + f_i n_i``
  (exploitation of one's own experience vs following the neighbours), a discrete draw
  through the model's estimator;
* transition: the bought product ``k`` is experienced with quality
  ``u_i = q_k + sigma_i eps`` (``eps ~ N(0, 1)``) and the opinion of it moves towards
  the experience, ``o_ik <- o_ik + learning_rate (u_i - o_ik)``; the expected
  experience ``q_k`` is added to the agent's return.

Initial opinions are ``prior_a``/``prior_b`` plus ``N(0, prior_sd^2)`` noise, and the
initial "previous purchases" are Bernoulli(sigmoid((o_iA - o_iB) / temperature)).
Consumers differ in how well they judge quality: ``sigma_i`` is ``noise_low`` for a
fraction ``1 - novice_share`` of them and ``noise_high`` for the rest (fixed at
construction), so the best tendency differs between agents.  Observables: ``share_a``
(fraction buying A) and ``mean_utility`` (mean expected experience this step).
"""

from __future__ import annotations

import math
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from agentgrad import frames, rng
from agentgrad.errors import AgentgradError
from agentgrad.estimators import Estimator, StraightThrough
from agentgrad.params import Param, Params, ParamSpace, real_dtype
from agentgrad.sampling import bernoulli
from agentgrad.spaces.graphs import Graph, lattice
from agentgrad.substeps import Substep, SubstepModel

DUOPOLY_PARAMS = ParamSpace(
    {
        "quality_a": Param(1.0, -10.0, 10.0, None, "mean experienced quality of product A"),
        "quality_b": Param(0.7, -10.0, 10.0, None, "mean experienced quality of product B"),
        "prior_a": Param(0.5, -10.0, 10.0, None, "mean initial opinion of A"),
        "prior_b": Param(0.9, -10.0, 10.0, None, "mean initial opinion of B"),
        "prior_sd": Param(0.2, 0.0, 10.0, None, "sd of initial opinions"),
        "learning_rate": Param(0.3, 0.0, 1.0, None, "weight of a new experience in an opinion"),
        "temperature": Param(0.1, 1e-3, 10.0, None, "softness of the own-opinion choice"),
    }
)


class DuopolyState(eqx.Module):
    """Opinions ``(2, N)`` (A, B), last purchases (1 = A), cumulative expected utility."""

    opinion: jax.Array
    bought_a: jax.Array
    utility: jax.Array  # (N,) expected experience this step
    total: jax.Array  # (N,) cumulative expected experience


class Purchase(Substep):
    """Observe neighbours' purchases, buy (policy), experience and update (transition)."""

    name: ClassVar[str] = "purchase"
    graph: Graph
    tendency_logit: jax.Array  # (N,) theta_i, f_i = sigmoid(theta_i)
    noise: jax.Array  # (N,) sigma_i
    estimator: Estimator

    def observe(self, s: DuopolyState, params: Params, t) -> jax.Array:
        return self.graph.neighbour_mean(s.bought_a)

    def policy(self, share, s: DuopolyState, params: Params, key, t) -> jax.Array:
        follow = jax.nn.sigmoid(self.tendency_logit)
        own = jax.nn.sigmoid((s.opinion[0] - s.opinion[1]) / params["temperature"])
        p = (1.0 - follow) * own + follow * share
        return bernoulli(key, p, self.estimator)

    def transition(self, s: DuopolyState, buy_a, params: Params, key, t) -> dict:
        quality = jnp.stack([params["quality_a"], params["quality_b"]])
        mean = buy_a * quality[0] + (1.0 - buy_a) * quality[1]
        experience = mean + self.noise * rng.normal(key, buy_a.shape, buy_a.dtype)
        bought = jnp.stack([buy_a, 1.0 - buy_a])
        opinion = s.opinion + params["learning_rate"] * bought * (experience - s.opinion)
        return {"opinion": opinion, "bought_a": buy_a, "utility": mean, "total": s.total + mean}


class Duopoly(SubstepModel):
    """Consumers choosing between two products (see module docstring)."""

    observable_units: ClassVar[dict[str, str]] = {
        "share_a": "fraction of consumers",
        "mean_utility": "quality units per consumer",
    }
    own_params: ClassVar[ParamSpace] = DUOPOLY_PARAMS
    estimator: Estimator

    def __init__(
        self,
        graph: Graph | None = None,
        *,
        tendency: float | jax.Array = 0.5,
        novice_share: float = 0.5,
        noise_low: float = 0.1,
        noise_high: float = 1.5,
        estimator: Estimator | None = None,
        key: jax.Array | None = None,
    ) -> None:
        graph = lattice(90) if graph is None else graph  # 8100 consumers (flame Fig. 1)
        n = graph.n_nodes
        tendency = np.broadcast_to(np.asarray(tendency, np.float64), (n,))
        if not np.all((tendency > 0) & (tendency < 1)):
            raise AgentgradError("follower tendencies must lie strictly between 0 and 1")
        if not 0.0 <= novice_share <= 1.0:
            raise AgentgradError(f"novice_share must be in [0, 1], got {novice_share!r}")
        if not (noise_low >= 0 and noise_high >= 0):
            raise AgentgradError("noise_low and noise_high must be >= 0")
        key = jax.random.key(0) if key is None else key
        novice = rng.uniform(key, (n,)) < novice_share
        noise = jnp.where(novice, noise_high, noise_low).astype(real_dtype())
        self.estimator = StraightThrough() if estimator is None else estimator
        logit = jnp.asarray(np.log(tendency / (1.0 - tendency)), real_dtype())
        self.substeps = (Purchase(graph, logit, noise, self.estimator),)

    @property
    def n_agents(self) -> int:
        return self.substeps[0].graph.n_nodes

    def frame(self, state: DuopolyState) -> jax.Array:
        """Last purchases on a square (consumers in index order, as on the default 90x90
        lattice): product A blue, product B orange."""
        side = math.isqrt(self.n_agents)
        if side * side != self.n_agents:
            raise AgentgradError(
                f"frame draws consumers on a square; {self.n_agents} is not a square number"
            )
        a = state.bought_a.reshape(side, side)
        return frames.paint([(a, frames.BLUE), (1.0 - a, frames.ORANGE)])

    @property
    def tendency(self) -> jax.Array:
        """Follower tendencies ``f_i``."""
        return jax.nn.sigmoid(self.substep("purchase").tendency_logit)

    @property
    def novice(self) -> jax.Array:
        """Consumers with the high experience noise."""
        noise = self.substep("purchase").noise
        return noise == jnp.max(noise)

    def init(self, params: Params, key: jax.Array) -> DuopolyState:
        n = self.n_agents
        k_op, k_buy = jax.random.split(key)
        prior = jnp.stack([params["prior_a"], params["prior_b"]])[:, None]
        opinion = prior + params["prior_sd"] * rng.normal(k_op, (2, n), real_dtype())
        own = jax.nn.sigmoid((opinion[0] - opinion[1]) / params["temperature"])
        bought = bernoulli(k_buy, own, self.estimator)
        zeros = jnp.zeros(n, real_dtype())
        return DuopolyState(opinion, bought, zeros, zeros)

    def observe(self, s: DuopolyState, params: Params, t) -> dict[str, jax.Array]:
        return {"share_a": jnp.mean(s.bought_a), "mean_utility": jnp.mean(s.utility)}


__all__ = ["DUOPOLY_PARAMS", "Duopoly", "DuopolyState", "Purchase"]
