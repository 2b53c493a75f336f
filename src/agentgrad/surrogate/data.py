"""Ramification datasets (`graph-diffusion-networks-for-abms` §3, Fig. 1).

From an initial state, at every step ``t = 0 .. T-2`` the ABM is advanced ``R`` times
from the *main-branch* state ``Z_t[0]`` with independent keys; child 0 becomes the next
main-branch state, and all ``R`` children are the targets.  This gives ``T - 1``
conditions with ``R`` outcomes each for every agent without exponential growth
(the reference code's ``generate_ramifications``: T = 10 yields 9 transitions).

Layout (arrays, saved by :meth:`Ramifications.save` as ``.npz``):

``static``       ``(N, s)``       static features (constant along the branch)
``context``      ``(T-1, N, s+d)`` full agent states ``Z_t`` of the main branch
``aggregated``   ``(T-1, N, s+d)`` their neighbour sums ``sum_{j in N_t(i)} Z_t^j``
``degree``       ``(T-1, N)``      neighbour counts (for mean aggregation)
``stochastic``   ``(T-1, N)``      agents whose transition is random (``model.
                                  stochastic_agents``; all True if it has none)
``targets``      ``(T-1, R, N, d)`` dynamic features of the ``R`` children; ``targets[t,
                                  0]`` is the main branch's ``Z_{t+1}``
``obs_NAME``     ``(T,)``          the model's scalar observables along the main branch
``theta``        ``(T-1, p)``      (only with ``condition_on``) the values of the model
                                  parameters ``meta["theta_names"]`` for each transition

**Across parameters** (beyond the paper): ``ramifications(..., condition_on=names)``
stores the parameters ``names`` with every transition, and
:func:`concatenate_ramifications` joins datasets drawn at several parameter values
along the transition axis, the training set of a parameter-conditioned GDN
(:class:`~agentgrad.surrogate.gdn.GDN` with ``theta_names``).

Since ``Message(x_j) = x_j``, the neighbour sums of the data are fixed and precomputed,
so training needs no model code.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from agentgrad.errors import AgentgradError
from agentgrad.params import Params
from agentgrad.surrogate.view import features, require_agent_view

FORMAT = "agentgrad-ramifications-1"
ARRAYS = ("context", "aggregated", "degree", "targets", "stochastic")


@dataclasses.dataclass(frozen=True)
class Ramifications:
    """A ramification dataset (module docstring); ``meta`` records how it was made."""

    static_dim: int
    context: np.ndarray
    aggregated: np.ndarray
    degree: np.ndarray
    targets: np.ndarray
    stochastic: np.ndarray
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)
    observables: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    theta: np.ndarray | None = None

    @property
    def theta_names(self) -> tuple[str, ...]:
        """The parameters stored with every transition (``condition_on``)."""
        return tuple(self.meta.get("theta_names", ()))

    @property
    def n_transitions(self) -> int:
        return self.targets.shape[0]

    @property
    def n_branches(self) -> int:
        return self.targets.shape[1]

    def save(self, path: str | Path) -> Path:
        """Write a compressed ``.npz`` at exactly ``path``."""
        path = Path(path)
        with path.open("wb") as f:  # a file object: numpy adds no suffix
            np.savez_compressed(
                f,
                format=FORMAT,
                static_dim=self.static_dim,
                meta=json.dumps(self.meta),
                **{k: getattr(self, k) for k in ARRAYS},
                **({} if self.theta is None else {"theta": self.theta}),
                **{f"obs_{k}": v for k, v in self.observables.items()},
            )
        return path

    @classmethod
    def load(cls, path: str | Path) -> Ramifications:
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as f:
                if str(f["format"]) != FORMAT:
                    raise ValueError(f"format {f['format']!s}")
                data = {k: np.asarray(f[k]) for k in ARRAYS}
                static_dim, meta = int(f["static_dim"]), json.loads(str(f["meta"]))
                obs = {k[4:]: np.asarray(f[k]) for k in f.files if k.startswith("obs_")}
                theta = np.asarray(f["theta"]) if "theta" in f.files else None
        except FileNotFoundError:
            raise AgentgradError(f"no ramification file at {path}") from None
        except Exception as err:  # zip, key or json errors: not our file
            raise AgentgradError(
                f"{path} is not an agentgrad ramification file ({err}); regenerate it with "
                "`agentgrad surrogate data`"
            ) from None
        T, R, N, d = data["targets"].shape
        expected = {k: (T, N) for k in ("context", "aggregated", "degree", "stochastic")}
        names = meta.get("theta_names", ())
        bad_theta = (theta is None) != (not names) or (
            theta is not None and theta.shape != (T, len(names))
        )
        if any(data[k].shape[:2] != v for k, v in expected.items()) or bad_theta:
            raise AgentgradError(f"{path}: arrays of inconsistent shapes; regenerate it")
        return cls(static_dim, meta=meta, observables=obs, theta=theta, **data)


def concatenate_ramifications(datasets: Sequence[Ramifications]) -> Ramifications:
    """Join ramification datasets of the same model (same agents, features, branches and
    ``theta_names``; e.g. drawn at several parameter values) along the transition axis.
    The main-branch observables are per-dataset series and are not carried over."""
    datasets = list(datasets)
    if not datasets:
        raise AgentgradError("concatenate_ramifications needs at least one dataset")
    first = datasets[0]
    for d in datasets[1:]:
        same = (
            d.static_dim == first.static_dim
            and d.targets.shape[1:] == first.targets.shape[1:]
            and d.theta_names == first.theta_names
        )
        if not same:
            raise AgentgradError(
                "cannot concatenate ramifications of different shapes (agents, features, "
                "branches) or parameters (theta_names); draw them with the same settings"
            )
    join = {k: np.concatenate([getattr(d, k) for d in datasets]) for k in ARRAYS}
    theta = None if first.theta is None else np.concatenate([d.theta for d in datasets])
    meta = {
        "model": first.meta.get("model"),
        "theta_names": list(first.theta_names),
        "parts": [d.meta for d in datasets],
    }
    return Ramifications(first.static_dim, meta=meta, theta=theta, **join)


def agent_graph_inputs(model: Any, state: Any) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(Z, sum_j Z^j, degree)`` of ``state``: what the GDN's GNN reads."""
    z = features(model, state)
    ones = jnp.ones((z.shape[0], 1), z.dtype)
    agg = model.neighbour_sum(state, jnp.concatenate([z, ones], 1))
    return z, agg[:, :-1], agg[:, -1]


def ramifications(
    model: Any,
    params: Params,
    key: jax.Array,
    n_steps: int,
    n_branches: int,
    state: Any = None,
    condition_on: Sequence[str] = (),
) -> tuple[Ramifications, Any]:
    """Simulate a ramification dataset of ``n_steps`` main-branch states (``n_steps - 1``
    transitions) with ``n_branches`` children each, from ``state`` (default: the model's
    initial state from ``key``); branches are vmapped, steps scanned.  Returns the data and
    the last main-branch state ``Z_{T-1}[0]`` (where the paper's test ramification and
    forecasts start).  ``condition_on``: parameter names stored with every transition
    (for a parameter-conditioned GDN)."""
    require_agent_view(model)
    condition_on = tuple(condition_on)
    unknown = [n for n in condition_on if n not in model.param_space.names]
    if unknown:
        raise AgentgradError(
            f"condition_on: {type(model).__name__} has no parameters {unknown}; "
            f"choose among {list(model.param_space.names)}"
        )
    if not isinstance(n_steps, int) or n_steps < 2:
        raise AgentgradError(f"n_steps (T) must be an integer >= 2, got {n_steps!r}")
    if not isinstance(n_branches, int) or n_branches < 1:
        raise AgentgradError(f"n_branches (R) must be an integer >= 1, got {n_branches!r}")
    params = model.param_space.complete(params)
    k_init, k_run = jax.random.split(key)
    if state is None:
        state = model.init(params, k_init)
    static_dim = int(model.agent_features(state)[0].shape[1])
    traced = {k: jnp.asarray(v) for k, v in params.items()}  # one compilation for all values
    final, (z, agg, deg, targets, stochastic, obs) = _ramify(
        model, traced, state, k_run, n_steps, n_branches
    )
    first = model.observe(state, params, jnp.float32(0.0))
    series = {
        k: np.concatenate([[np.asarray(first[k])], np.asarray(v)])
        for k, v in obs.items()
        if np.ndim(v) == 1
    }
    meta = {
        "model": type(model).__name__,
        "params": {k: float(v) for k, v in params.items()},
        "n_steps": n_steps,
        "n_branches": n_branches,
    }
    theta = None
    if condition_on:
        meta["theta_names"] = list(condition_on)
        row = np.array([float(params[n]) for n in condition_on], np.float32)
        theta = np.tile(row, (n_steps - 1, 1))
    data = Ramifications(
        static_dim,
        np.asarray(z),
        np.asarray(agg),
        np.asarray(deg),
        np.asarray(targets),
        np.asarray(stochastic),
        meta,
        series,
        theta,
    )
    return data, final


@eqx.filter_jit
def _ramify(model, params, state, k_run, n_steps: int, n_branches: int):
    """The scan of :func:`ramifications` (compiled once per model and sizes; parameters
    are traced, so datasets at several parameter values share the compilation)."""

    def one_step(s, inp):
        t, k = inp
        children = jax.vmap(lambda kk: model.step(s, params, kk, t))(
            jax.random.split(k, n_branches)
        )
        z, agg, deg = agent_graph_inputs(model, s)
        if callable(getattr(model, "stochastic_agents", None)):
            stochastic = model.stochastic_agents(s, params).astype(bool)
        else:
            stochastic = jnp.ones(z.shape[0], bool)
        targets = jax.vmap(lambda c: model.agent_features(c)[1])(children)
        main = jax.tree.map(lambda a: a[0], children)
        obs = model.observe(main, params, t + 1.0)
        return main, (z, agg, deg, targets, stochastic, obs)

    ts = jnp.arange(n_steps - 1, dtype=jnp.float32)
    return jax.lax.scan(one_step, state, (ts, jax.random.split(k_run, n_steps - 1)))
