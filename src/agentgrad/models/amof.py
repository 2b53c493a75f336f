"""Axtell's model of firms (`automatic-differentiation-of-abms` §2.1, §4.1, Table 1, §10.1;
after Axtell 1999).

Agents have a work-leisure preference ``theta_i ~ Beta(alpha_theta, beta_theta)`` and an
effort ``e_i`` in ``[0, 1]`` (initially ``~ Beta(alpha_effort, beta_effort)``).  A firm
``f`` with total effort ``E_f`` produces ``O_f = a_f E_f + b_f E_f^2`` (production scale
``a_f ~ Beta(alpha_a, beta_a)``, increasing returns ``b_f ~ Beta(alpha_b, beta_b)``), shared
equally by its ``n_f`` members; agent utility is Cobb-Douglas,
``U_i = (O_f / n_f)^theta_i (1 - e_i)^(1 - theta_i)``.

Each step every agent evaluates the options ``F_i`` = its current firm, its friends' firms
(1-4 random friends, fixed) and a new singleton firm (not offered to an agent already
alone).  Each agent's prospective start-up has its own technology ``(a, b)``, drawn from
the firm Beta laws once at the start (drawing afresh every step would cost ~7x the rest of
the step in forward mode, for the implicit Beta gradients).  For each option it takes
Axtell's closed-form optimal effort (``E`` the firm's effort without agent ``i``)::

    x* = E + e*  solves  b(1 + theta) x^2 + (a - 2 theta b (1 + E)) x - theta a (1 + E) = 0,
    e* = clip(x* - E, 0, 1)

and joins the option with the largest utility (eq. 37), all agents synchronously.  Agents
start alone in their own firms.  The firm table has one slot per agent; founders take free
slots in index order, so two new firms never collide.

Differentiable by the surrogate of §4.1: the choice is a one-hot vector in the primal pass
and ``softmax(U / temperature)`` in the tangent pass (eq. 38); firm sizes (eq. 39), firm
efforts and agent efforts (eq. 40) are updated with that one-hot vector, so their tangents
are the softmax-weighted mixtures.  All Beta draws are reparameterised (implicit gradients).

By default (``state_feedback=False``) the tangents of firm sizes and efforts do not feed
back into the next choices and optimal efforts: a first-order surrogate, as §4.2 drops
second-order terms for Sugarscape.  With ``state_feedback=True`` they do, and the tangent
is amplified every step (softmax gain ~ p(1-p)/temperature times the firm-size effect;
the effort best-response loop has gain ~ firm size): at 1000 agents its mean grows to
~10^2 by step 30 and ~10^5 with effort feedback alone, while finite differences stay ~1.
The initial efforts' tangents do enter the first step's choices and efforts (one step
cannot amplify), so their parameters have a gradient at step 1 and none later (FD is
within noise of zero after step 1 at 300 agents); preferences and firm technologies
track FD over 30 steps (see tests/test_amof.py and docs/benchmarks.md).

Observables: ``mean_effort`` (over agents), ``mean_firm_size`` (agents per active firm),
``mean_output`` (mean ``O_f`` over active firms; the observable of §5.1).
"""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp

from agentgrad.engine import Model
from agentgrad.estimators import straight_through
from agentgrad.models._checks import require_int
from agentgrad.params import Param, Params, ParamSpace

_BETA = (0.1, 20.0)


def _beta_param(default: float, what: str) -> Param:
    return Param(default, *_BETA, None, what)


AMOF_PARAMS = ParamSpace(
    {
        "alpha_theta": _beta_param(2.0, "preference theta ~ Beta(alpha_theta, beta_theta)"),
        "beta_theta": _beta_param(2.0, "preference theta ~ Beta(alpha_theta, beta_theta)"),
        "alpha_effort": _beta_param(2.0, "initial effort ~ Beta(alpha_effort, beta_effort)"),
        "beta_effort": _beta_param(2.0, "initial effort ~ Beta(alpha_effort, beta_effort)"),
        "alpha_a": _beta_param(2.0, "production scale a ~ Beta(alpha_a, beta_a)"),
        "beta_a": _beta_param(2.0, "production scale a ~ Beta(alpha_a, beta_a)"),
        "alpha_b": _beta_param(2.0, "increasing returns b ~ Beta(alpha_b, beta_b)"),
        "beta_b": _beta_param(2.0, "increasing returns b ~ Beta(alpha_b, beta_b)"),
    }
)


class AMOFState(eqx.Module):
    """Agents: preference, effort, firm slot, friends; firms: size, effort, a, b."""

    theta: jax.Array  # (N,)
    effort: jax.Array  # (N,)
    firm: jax.Array  # (N,) int32 slot
    friends: jax.Array  # (N, max_friends) int32 agent indices
    friend_mask: jax.Array  # (N, max_friends) bool
    size: jax.Array  # (N,) members per slot (tangent: eq. 39)
    total_effort: jax.Array  # (N,) E per slot
    a: jax.Array  # (N,) production scale per slot
    b: jax.Array  # (N,) increasing returns per slot
    startup_a: jax.Array  # (N,) a of the firm each agent would found
    startup_b: jax.Array  # (N,) b of the firm each agent would found


def optimal_effort(theta: jax.Array, E: jax.Array, a: jax.Array, b: jax.Array) -> jax.Array:
    """Axtell's utility-maximising effort ``e*`` for joining a firm with others' effort ``E``.

    Positive root of ``A x^2 + B x + C`` (module docstring) in the cancellation-free form.
    """
    A = b * (1.0 + theta)
    B = a - 2.0 * theta * b * (1.0 + E)
    C = theta * a * (1.0 + E)  # = -constant term
    root = jnp.sqrt(B * B + 4.0 * A * C)
    x = jnp.where(B > 0, 2.0 * C / jnp.maximum(B + root, 1e-30), (root - B) / (2.0 * A))
    return jnp.clip(x - E, 0.0, 1.0)


def log_utility(
    theta: jax.Array, e: jax.Array, E: jax.Array, n: jax.Array, a: jax.Array, b: jax.Array
) -> jax.Array:
    """``log U = theta log((a x + b x^2) / n) + (1 - theta) log(1 - e)``, ``x = E + e``."""
    x = E + e
    output = jnp.maximum(a * x + b * x * x, 1e-30)
    return theta * jnp.log(output / n) + (1.0 - theta) * jnp.log(jnp.maximum(1.0 - e, 1e-30))


class AMOF(Model):
    """Axtell's model of firms with a softmax-tangent firm choice (see module docstring)."""

    observable_units: ClassVar[dict[str, str]] = {
        "mean_effort": "effort (0-1)",
        "mean_firm_size": "agents per firm",
        "mean_output": "output per firm",
    }

    def gradient_warning(self, n_steps: int) -> str | None:
        """Validated over 10 steps for all 8 parameters (tests/test_amof.py)."""
        if n_steps <= 10:
            return None
        return (
            f"amof gradients are validated against finite differences over 10 steps, not "
            f"{n_steps}: preferences and technologies track FD to 30 steps (1000 agents), the "
            "effort parameters only at step 1 (docs/benchmarks.md); use --steps 10 or check "
            "with `agentgrad gradcheck amof`"
        )

    n_agents: int = eqx.field(static=True, default=1000)
    max_friends: int = eqx.field(static=True, default=4)
    temperature: float = eqx.field(static=True, default=0.05)
    state_feedback: bool = eqx.field(static=True, default=False)

    def __check_init__(self) -> None:
        require_int("n_agents", self.n_agents, 2)
        require_int("max_friends", self.max_friends, 1)
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature!r}")

    @property
    def param_space(self) -> ParamSpace:
        return AMOF_PARAMS

    def _firm_draws(self, params: Params, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        ka, kb = jax.random.split(key)
        n = (self.n_agents,)
        a = jax.random.beta(ka, params["alpha_a"], params["beta_a"], n)
        b = jax.random.beta(kb, params["alpha_b"], params["beta_b"], n)
        return a, b

    def init(self, params: Params, key: jax.Array) -> AMOFState:
        N, K = self.n_agents, self.max_friends
        k_theta, k_effort, k_firm, k_count, k_friend, k_startup = jax.random.split(key, 6)
        theta = jax.random.beta(k_theta, params["alpha_theta"], params["beta_theta"], (N,))
        effort = jax.random.beta(k_effort, params["alpha_effort"], params["beta_effort"], (N,))
        a, b = self._firm_draws(params, k_firm)
        startup_a, startup_b = self._firm_draws(params, k_startup)
        # 1..K distinct-from-self random friends (§10.1)
        n_friends = jax.random.randint(k_count, (N,), 1, K + 1)
        offset = jax.random.randint(k_friend, (N, K), 1, N)
        friends = (jnp.arange(N)[:, None] + offset) % N
        friend_mask = jnp.arange(K)[None, :] < n_friends[:, None]
        return AMOFState(
            theta=theta,
            effort=effort,
            firm=jnp.arange(N, dtype=jnp.int32),
            friends=friends.astype(jnp.int32),
            friend_mask=friend_mask,
            size=jnp.ones(N, jnp.float32),
            total_effort=effort,
            a=a,
            b=b,
            startup_a=startup_a,
            startup_b=startup_b,
        )

    def options(self, s: AMOFState):
        """Per agent and option (current, friends' firms, new firm): slot (-1 for the new
        firm), validity, others' effort ``E``, size after joining, ``a``, ``b``."""
        N = self.n_agents
        friend_firm = s.firm[s.friends]  # (N, K)
        slots = jnp.concatenate([s.firm[:, None], friend_firm, jnp.full((N, 1), -1)], axis=1)
        alone = s.size[s.firm] < 1.5
        valid = jnp.concatenate(
            [
                jnp.ones((N, 1), bool),
                s.friend_mask & (friend_firm != s.firm[:, None]),
                ~alone[:, None],
            ],
            axis=1,
        )
        safe = jnp.maximum(slots, 0)
        current = jnp.arange(slots.shape[1]) == 0
        new = slots < 0
        E = jnp.where(current, s.total_effort[safe] - s.effort[:, None], s.total_effort[safe])
        n = jnp.where(current, s.size[safe], s.size[safe] + 1.0)
        E = jnp.where(new, 0.0, jnp.maximum(E, 0.0))
        n = jnp.where(new, 1.0, n)
        a = jnp.where(new, s.startup_a[:, None], s.a[safe])
        b = jnp.where(new, s.startup_b[:, None], s.b[safe])
        return slots, valid, E, n, a, b

    def step(self, s: AMOFState, params: Params, key: jax.Array, t: jax.Array) -> AMOFState:
        N = self.n_agents
        slots, valid, E, n, a, b = self.options(s)
        if not self.state_feedback:  # first-order surrogate (module docstring)
            first = t == 0  # the initial efforts' tangents enter the first choice only
            E = jnp.where(first, E, jax.lax.stop_gradient(E))
            n = jax.lax.stop_gradient(n)
        theta = s.theta[:, None]
        e_opt = optimal_effort(theta, E, a, b)
        logu = log_utility(theta, e_opt, E, n, a, b)
        utility = jnp.where(valid, jnp.exp(logu), -1.0)
        hard = jax.nn.one_hot(jnp.argmax(jnp.where(valid, logu, -jnp.inf), axis=1), slots.shape[1])
        probs = jax.nn.softmax(jnp.where(valid, utility / self.temperature, -jnp.inf), axis=1)
        choice = straight_through(hard, probs)  # eq. 38
        effort = jnp.sum(choice * e_opt, axis=1)  # eq. 40

        # slots: non-founders keep the chosen existing slot; founders take free slots
        chosen = jnp.argmax(hard, axis=1)
        founder = slots[jnp.arange(N), chosen] < 0
        dest = jnp.where(founder, N, slots[jnp.arange(N), chosen])
        taken = jnp.zeros(N, bool).at[dest].set(True, mode="drop")
        free = jnp.argsort(taken, stable=True)  # free slots first, in index order
        rank = jnp.cumsum(founder) - 1
        firm = jnp.where(founder, free[jnp.clip(rank, 0, N - 1)], dest).astype(jnp.int32)
        # a non-founder's new-firm tangent mass goes to a firm that does not exist (dropped)
        option_slot = jnp.where(slots < 0, jnp.where(founder, firm, N)[:, None], slots)

        flat = option_slot.reshape(-1)
        size = jax.ops.segment_sum(choice.reshape(-1), flat, num_segments=N)  # eq. 39
        total = jax.ops.segment_sum((choice * effort[:, None]).reshape(-1), flat, num_segments=N)
        founded = jnp.where(founder, firm, N)
        new_a_slot = s.a.at[founded].set(s.startup_a, mode="drop")
        new_b_slot = s.b.at[founded].set(s.startup_b, mode="drop")
        return eqx.tree_at(
            lambda x: (x.effort, x.firm, x.size, x.total_effort, x.a, x.b),
            s,
            (effort, firm, size, total, new_a_slot, new_b_slot),
        )

    def observe(self, s: AMOFState, params: Params, t: jax.Array) -> dict[str, jax.Array]:
        # firm count: exact forward; tangent 1 for firms of at most one member (they vanish
        # when that member's choice probability moves away)
        soft_active = jnp.where(s.size <= 1.0, s.size, 1.0)
        active = straight_through((s.size > 0.5).astype(jnp.float32), soft_active)
        n_firms = jnp.sum(active)
        output = s.a * s.total_effort + s.b * s.total_effort**2
        return {
            "mean_effort": jnp.mean(s.effort),
            "mean_firm_size": self.n_agents / n_firms,
            "mean_output": jnp.sum(active * output) / n_firms,
        }
