"""The simulation engine: the ``Model`` contract, ``simulate`` and ``ensemble``.

A model is an :class:`equinox.Module` holding static structure (graph, grid,
sizes, chosen estimator).  Its dynamics are three pure functions

    state_0   = init(params, key)
    state_t+1 = step(state_t, params, key_t, t)          t = 0, 1, ..., T-1
    y_t+1     = observe(state_t+1, params, t + 1)

where ``params`` is a dict of named scalars described by ``param_space`` and
``state`` is a pytree of fixed-shape arrays (agents that appear or disappear use
a fixed capacity with an ``alive`` mask).  :func:`simulate` runs the whole
trajectory as one ``lax.scan`` inside ``jit``; observables are collected inside
the scan.  Step keys are ``fold_in(k_run, t)`` with ``k_init, k_run = split(key)``,
so the same key always gives the same trajectory.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from agentgrad.errors import AgentgradError
from agentgrad.params import Params, ParamSpace
from agentgrad.sharding import Sharding
from agentgrad.stochad import estimate as stochad_estimate
from agentgrad.stochad import recorder

State = Any


class GradientValidityWarning(UserWarning):
    """Gradients requested outside the estimators and horizons a model was validated for."""


class Model(eqx.Module):
    """Abstract agent-based model; subclass and implement the four members below.

    Optional declarations: ``observable_units`` (observable name -> unit, used for plot
    labels and ``agentgrad models``), :meth:`gradient_warning` (where the model's
    gradients have not been validated against finite differences) and :meth:`frame` (a
    picture of the state, for animations).
    """

    observable_units: ClassVar[Mapping[str, str]] = {}

    @property
    def param_space(self) -> ParamSpace:
        """Names, defaults, bounds and priors of the model's parameters."""
        raise NotImplementedError

    def init(self, params: Params, key: jax.Array) -> State:
        """Initial state (a pytree of fixed-shape arrays)."""
        raise NotImplementedError

    def step(self, state: State, params: Params, key: jax.Array, t: jax.Array) -> State:
        """Advance from time ``t`` (float32 scalar) to ``t + 1``."""
        raise NotImplementedError

    def observe(self, state: State, params: Params, t: jax.Array) -> dict[str, jax.Array]:
        """Observables of ``state`` at time ``t``."""
        raise NotImplementedError

    def frame(self, state: State) -> jax.Array:
        """Optional: a picture of ``state``, ``(H, W, 3)`` RGB in ``[0, 1]`` (spatial models;
        used by ``agentgrad run MODEL --animate`` and :func:`agentgrad.plotting.animate`)."""
        raise NotImplementedError(f"{type(self).__name__} has no picture of its state (frame)")

    def gradient_warning(self, n_steps: int) -> str | None:
        """Why gradients of this configuration over ``n_steps`` steps are not validated
        (a one-line message naming the measured bias and the alternative), or ``None``."""
        return None


def warn_if_unvalidated(model: Model, n_steps: int) -> str | None:
    """Issue :class:`GradientValidityWarning` (once per message) when ``model``'s
    gradients over ``n_steps`` are outside what its tests validate; return the message."""
    message = model.gradient_warning(n_steps)
    if message:
        warnings.warn(message, GradientValidityWarning, stacklevel=3)
    return message


class Trajectory(eqx.Module):
    """Result of :func:`simulate`.

    Attributes:
        observables: name -> array of shape ``(n_steps, ...)``; entry ``t`` is observed
            after step ``t`` (time ``t + 1``).  :func:`ensemble` adds a leading run axis.
        initial_observables: name -> observables of the initial state (time 0).
        final_state: state after the last step.
        states: states saved every ``save_every`` steps (leading axis), or ``None``.
        reservoir: inside :func:`agentgrad.stochad.derivative_estimate` only, the
            stochastic-derivative reservoir of the run (see :mod:`agentgrad.stochad`).
    """

    observables: dict[str, jax.Array]
    initial_observables: dict[str, jax.Array]
    final_state: State
    states: State | None = None
    reservoir: jax.Array | None = None


def _check_options(n_steps: int, save_every: int | None) -> None:
    if not isinstance(n_steps, int) or isinstance(n_steps, bool) or n_steps < 1:
        raise ValueError(f"n_steps must be a positive integer, got {n_steps!r}")
    if save_every is not None and (
        not isinstance(save_every, int) or save_every < 1 or save_every > n_steps
    ):
        raise ValueError(f"save_every must be an integer in [1, n_steps], got {save_every!r}")


def _run(
    model: Model,
    params: Params,
    key: jax.Array,
    n_steps: int,
    save_every: int | None,
    checkpoint: bool,
    stochad_mode: str | None = None,
    stochad_group: int | None = None,
    plan: recorder.FlipPlan | None = None,
    sharding: Sharding | None = None,
) -> Trajectory:
    k_init, k_run = jax.random.split(key)
    place = (lambda s: s) if sharding is None else sharding.constrain
    k_select = jax.random.fold_in(key, 0x5AE)

    def scoped(fn, step):
        """Run ``fn`` in its own stochastic-derivative scope (see agentgrad.stochad)."""
        if stochad_mode is None:
            return fn(), []
        with recorder.scope(recorder.Scope(stochad_mode, plan, stochad_group, step)) as sc:
            out = fn()
        return out, sc.carriers

    def fold(res, carriers, step, k):
        if stochad_mode != "record":
            return res
        return stochad_estimate.fold_scope(res, carriers, stochad_group, step, k)

    state0, carriers = scoped(lambda: model.init(params, k_init), jnp.int32(-1))
    if sharding is not None:
        sharding.check(state0)
    state0 = place(state0)
    res0 = fold(
        stochad_estimate.empty_reservoir(), carriers, -1, jax.random.fold_in(k_select, n_steps)
    )

    def body(carry, t):
        state, res = carry
        new, carriers = scoped(
            lambda: place(
                model.step(state, params, jax.random.fold_in(k_run, t), t.astype(jnp.float32))
            ),
            t,
        )
        res = fold(res, carriers, t, jax.random.fold_in(k_select, t))
        return (new, res), model.observe(new, params, (t + 1).astype(jnp.float32))

    steps = jnp.arange(n_steps, dtype=jnp.int32)
    block_size = save_every or (math.isqrt(n_steps - 1) + 1 if checkpoint else None)
    if block_size is None:
        (final, res), obs = jax.lax.scan(body, (state0, res0), steps)
        saved = None
    else:
        n_blocks = n_steps // block_size
        blocks = steps[: n_blocks * block_size].reshape(n_blocks, block_size)

        def block(carry, ts):
            carry, obs = jax.lax.scan(body, carry, ts)
            return carry, (carry[0] if save_every else None, obs)

        if checkpoint:  # two-level (sqrt) checkpointing: store only block boundaries
            block = jax.checkpoint(block)
        (final, res), (saved, obs) = jax.lax.scan(block, (state0, res0), blocks)
        obs = jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), obs)
        if n_blocks * block_size < n_steps:
            (final, res), rest = jax.lax.scan(body, (final, res), steps[n_blocks * block_size :])
            obs = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), obs, rest)
    initial = model.observe(state0, params, jnp.zeros((), jnp.float32))
    return Trajectory(obs, initial, final, saved, res if stochad_mode == "record" else None)


_run_jit = eqx.filter_jit(_run)


@eqx.filter_jit
def _run_ensemble(model, params, keys, n_steps, save_every, checkpoint):
    return jax.vmap(lambda k: _run(model, params, k, n_steps, save_every, checkpoint))(keys)


def simulate(
    model: Model,
    params: Mapping[str, Any] | None,
    key: jax.Array,
    n_steps: int,
    *,
    save_every: int | None = None,
    checkpoint: bool = False,
    sharding: Sharding | None = None,
) -> Trajectory:
    """Simulate ``model`` for ``n_steps`` steps as one jitted ``lax.scan``.

    Args:
        model: the model (static structure and estimator).
        params: parameter values by name; missing names take their defaults, unknown
            names or out-of-bounds values raise :class:`~agentgrad.errors.ParameterError`.
        key: a JAX PRNG key; the same key gives the same trajectory.
        n_steps: number of steps.
        save_every: if given, also return the full state after every ``save_every``-th step.
        checkpoint: for reverse mode on long runs: the steps are grouped in blocks of
            ``save_every`` (default ``ceil(sqrt(n_steps))``) steps and each block is
            rematerialised (``jax.checkpoint``), so only block-boundary states are stored:
            memory O(n_steps / B + B) states instead of O(n_steps) step residuals, for
            about one extra forward pass of compute.
        sharding: an :class:`~agentgrad.sharding.Sharding` to partition the agents over
            several devices (one simulation, SPMD); results equal the one-device run to
            float rounding.  ``None`` runs on the default device.  Each call lays the
            model's graphs out for the devices on the host; for repeated calls pass
            ``sharding.prepare(model)`` once (preparing again is free).

    Compilation is cached on the model's structure, the array shapes and the options,
    so new parameter values or keys reuse the compiled simulation.  ``simulate`` may be
    called under ``jax.grad``, ``jax.jvp`` and ``jax.vmap``.
    """
    _check_options(n_steps, save_every)
    params = model.param_space.complete(params)
    if sharding is not None:
        if not isinstance(sharding, Sharding):
            raise TypeError(f"sharding must be an agentgrad.Sharding, got {sharding!r}")
        model = sharding.prepare(model)
    scope = recorder.current()
    stochad = () if scope is None else (scope.mode, scope.next_site(), scope.plan)
    traj = _run_jit(
        model, params, key, n_steps, save_every, bool(checkpoint), *stochad, sharding=sharding
    )
    if scope is not None and scope.mode == "record":
        scope.register(traj.reservoir, "reservoir", stochad[1])
    return traj


def ensemble(
    model: Model,
    params: Mapping[str, Any] | None,
    key: jax.Array,
    n_steps: int,
    n_runs: int | None = None,
    *,
    save_every: int | None = None,
    checkpoint: bool = False,
) -> Trajectory:
    """Independent simulations batched with ``vmap``.

    Run ``r`` uses key ``split(key, n_runs)[r]``; alternatively pass ``n_runs=None`` and a
    batch of keys of shape ``(R,)`` as ``key``.  Every array of the returned
    :class:`Trajectory` has a leading run axis.
    """
    _check_options(n_steps, save_every)
    if recorder.current() is not None:
        raise AgentgradError(
            "ensemble() cannot run inside agentgrad.stochad estimates; vmap "
            "derivative_estimate over keys instead"
        )
    if n_runs is None:
        keys = key
        if keys.ndim != 1:
            raise ValueError("ensemble: give n_runs, or a 1-D batch of keys as key")
    else:
        if isinstance(n_runs, bool) or not isinstance(n_runs, int) or n_runs < 1:
            raise ValueError(f"n_runs must be a positive integer, got {n_runs!r}")
        keys = jax.random.split(key, n_runs)
    params = model.param_space.complete(params)
    return _run_ensemble(model, params, keys, n_steps, save_every, bool(checkpoint))


def map_key_batches(
    fn: Callable[[jax.Array], Any],
    keys: jax.Array,
    batch: int,
    on_batch: Callable[[int], None] | None = None,
) -> Any:
    """Apply ``fn`` to ``keys`` ``batch`` at a time; concatenate the results as NumPy.

    The last batch is padded with repeated keys (so every call has the same shape and
    compiles once) and the padding is dropped.  ``on_batch(n_done)`` reports progress.
    """
    n = keys.shape[0]
    batch = max(1, min(batch, n))
    n_batches = -(-n // batch)
    padded = jnp.concatenate([keys, keys[: n_batches * batch - n]])
    chunks = []
    for b in range(n_batches):
        chunks.append(jax.tree.map(np.asarray, fn(padded[b * batch : (b + 1) * batch])))
        if on_batch is not None:
            on_batch(min((b + 1) * batch, n))
    return jax.tree.map(lambda *c: np.concatenate(c)[:n], *chunks)
