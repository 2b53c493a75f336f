"""What every calibration method sees: the model, the calibrated parameters and the data.

A :class:`Problem` fixes the model, the parameter space (with any prior overrides),
the calibrated names, the values of the other parameters and the observed series
(name -> array of length ``T``).  :meth:`Problem.simulate` runs the model at a batch of
parameter values — one run each, vmapped in chunks — and is the only way methods reach
the simulator outside their gradient code, so simulation budgets are counted in one
place (:attr:`Problem.runs`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from agentgrad.engine import Model, simulate
from agentgrad.errors import AgentgradError
from agentgrad.params import Params, ParamSpace


def sample_priors(space: ParamSpace, names: Sequence[str], key: jax.Array, n: int):
    """``n`` independent draws from the priors of ``names`` (name -> array (n,))."""
    keys = jax.random.split(key, len(names))
    return {name: space[name].prior.sample(k, (n,)) for name, k in zip(names, keys, strict=True)}


@eqx.filter_jit
def simulate_at(
    model: Model,
    base: Params,
    theta: Mapping[str, jax.Array],
    keys: jax.Array,
    n_steps: int,
    names: tuple[str, ...] | None = None,
) -> dict[str, jax.Array]:
    """One run per row of ``theta`` (name -> ``(n,)``), the other parameters from
    ``base``: the observables ``names`` (default: all) as name -> ``(n, n_steps)``.

    The model is an argument of the compiled function, not a constant closed over: its
    arrays (a graph's edges) stay device buffers instead of being embedded in the
    program, which halves the memory and shortens compilation on large graphs.
    """

    def one(t, k):
        obs = simulate(model, {**base, **t}, k, n_steps).observables
        return obs if names is None else {n: obs[n] for n in names}

    return jax.vmap(one)(dict(theta), keys)


@dataclass
class Problem:
    """A calibration task; ``runs`` counts the simulator runs spent on it so far."""

    model: Model
    space: ParamSpace
    names: list[str]
    base: Params
    observed: dict[str, jax.Array]
    runs: int = 0

    @property
    def n_steps(self) -> int:
        return int(next(iter(self.observed.values())).shape[0])

    def sample_prior(self, key: jax.Array, n: int) -> dict[str, jax.Array]:
        """``n`` independent draws from the calibrated parameters' priors."""
        return sample_priors(self.space, self.names, key, n)

    def simulate(
        self,
        theta: Mapping[str, Any],
        key: jax.Array,
        chunk: int = 256,
        progress: Callable[[int], None] | None = None,
    ) -> dict[str, np.ndarray]:
        """One run per row of ``theta`` (name -> (n,)); observed observables (n, T).

        Vmapped over chunks of ``chunk`` rows (one compilation per distinct size);
        ``progress(done)`` is called after each chunk.
        """
        theta = {n: np.asarray(theta[n], np.float32) for n in self.names}
        total = len(next(iter(theta.values())))
        keys = jax.random.split(key, total)
        out: dict[str, list[np.ndarray]] = {n: [] for n in self.observed}
        for start in range(0, total, chunk):
            rows = slice(start, min(start + chunk, total))
            size = rows.stop - rows.start
            batch = {n: jnp.asarray(v[rows]) for n, v in theta.items()}
            sims = simulate_at(
                self.model, self.base, batch, keys[rows], self.n_steps, tuple(self.observed)
            )
            for n in self.observed:
                out[n].append(np.asarray(sims[n]))
            self.runs += size
            if progress is not None:
                progress(rows.stop)
        return {n: np.concatenate(v) for n, v in out.items()}


def make_problem(
    model: Model,
    observed: Mapping[str, Any],
    parameters: Sequence[str] | None,
    fixed: Mapping[str, float] | None,
    priors: Mapping[str, Any] | None,
) -> Problem:
    """Validate the inputs of :func:`~agentgrad.calibration.calibrate` into a problem."""
    from agentgrad.calibration.families import support_param
    from agentgrad.gradients import select_parameters

    space = model.param_space.with_priors(priors) if priors else model.param_space
    names = list(select_parameters(space, parameters))
    for name in names:
        support_param(space, name)  # raises when a calibrated parameter has no prior
    base = space.complete(fixed)
    observed = {k: jnp.asarray(v, jnp.float32) for k, v in observed.items()}
    if not observed:
        raise AgentgradError("observed data must contain at least one observable")
    shapes = {v.shape for v in observed.values()}
    if len(shapes) != 1 or len(next(iter(shapes))) != 1:
        raise AgentgradError("every observed series must be 1-D with the same length")
    if not all(bool(jnp.all(jnp.isfinite(v))) for v in observed.values()):
        raise AgentgradError("observed data contain NaN or infinite values")
    return Problem(model, space, names, base, observed)
