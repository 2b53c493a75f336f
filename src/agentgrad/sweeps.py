"""Parameter sweeps: every point of a grid of parameter values, ``runs`` runs each.

``sweep(model, {"beta": [0.1, 0.2], "gamma": [0.05, 0.1]}, key, n_steps, runs=R)``
simulates the Cartesian product of the listed values (Mesa's ``batch_run``) and
returns one :class:`xarray.Dataset` with, for every observable, dimensions
``(beta, gamma, run, step)`` and the parameter values as coordinates.

* Common random numbers: run ``r`` uses the key ``split(key, R)[r]`` at every grid
  point, so differences between points are not blurred by different draws (and the
  result does not depend on how the work is chunked).
* The ``P x R`` simulations are flattened and cut in chunks of ``batch``; a chunk is one
  jitted ``vmap`` of the simulation (the last chunk is padded, so one compilation),
  split over ``devices`` (data parallel) when more than one is given.
* ``checkpoint=path``: finished chunks are saved (atomically) to ``path``; calling
  again with the same settings resumes after the last saved chunk.  Settings that
  differ from the checkpoint's raise an error instead of mixing two sweeps.
* ``executor``: ``None`` runs chunks here; :class:`RayExecutor` sends them to a Ray
  cluster (``pip install 'agentgrad[ray]'``).

Everything is differentiable: the chunk function is a plain ``vmap`` of
:func:`agentgrad.simulate`'s scan, so ``jax.grad`` of a sweep's summary works by
calling :func:`sweep_arrays`.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

if TYPE_CHECKING:
    import xarray as xr

from agentgrad.engine import Model, _check_options, _run
from agentgrad.errors import AgentgradError, ParameterError


def grid_points(model: Model, grid: Mapping[str, Sequence[float]]) -> dict[str, np.ndarray]:
    """Validate ``grid`` against the model's parameters; return the flattened Cartesian
    product (name -> array of length P, the first name varying slowest)."""
    if not grid:
        raise ParameterError("sweep: give at least one parameter with a list of values")
    space = model.param_space
    values = {}
    for name, vals in grid.items():
        arr = np.atleast_1d(np.asarray(vals, dtype=np.float64))
        if arr.ndim != 1 or arr.size == 0:
            raise ParameterError(f"sweep: {name!r} needs a non-empty list of values")
        if len(np.unique(arr)) != arr.size:
            raise ParameterError(f"sweep: {name!r} lists a value twice")
        for v in arr:  # unknown names, out-of-bounds values: one-line ParameterError
            space.complete({name: float(v)})
        values[name] = arr
    mesh = np.meshgrid(*values.values(), indexing="ij")
    return {name: m.ravel() for name, m in zip(values, mesh, strict=True)}


@eqx.filter_jit
def _run_items(model, fixed, swept, keys, n_steps):
    """One simulation per (swept parameters, key) pair, vmapped -> observables.  A
    module-level jit: compiled once per model structure, shapes and ``n_steps``."""

    def one(point, key):
        return _run(model, {**fixed, **point}, key, n_steps, None, False).observables

    return jax.vmap(one)(swept, keys)


def sweep_arrays(
    model: Model,
    points: Mapping[str, Any],
    keys: jax.Array,
    n_steps: int,
    params: Mapping[str, Any] | None = None,
) -> dict[str, jax.Array]:
    """Observables of ``len(keys)`` simulations, item ``i`` at parameters
    ``{**params, name: points[name][i]}`` with key ``keys[i]``; differentiable."""
    fixed = model.param_space.complete(params)
    swept = {k: jnp.asarray(v, fixed[k].dtype) for k, v in points.items()}
    return _run_items(model, fixed, swept, keys, n_steps)


def simulate_chunk(
    model: Model,
    fixed: Mapping[str, Any],
    n_steps: int,
    swept: Mapping[str, np.ndarray],
    key_data: np.ndarray,
    n_real: int,
    devices: int | None = None,
) -> dict[str, np.ndarray]:
    """One chunk of a sweep as NumPy (the unit an executor runs; plain data in and out).

    ``key_data`` holds the raw key data of the chunk's keys (``jax.random.key_data``);
    the first ``n_real`` items are kept (the rest is padding)."""
    keys = jax.random.wrap_key_data(jnp.asarray(key_data))
    swept = {k: jnp.asarray(v, fixed[k].dtype) for k, v in swept.items()}
    if devices is not None and devices > 1:
        from agentgrad.sharding import Sharding

        sharding = Sharding(devices)
        swept, keys = sharding.put(swept), sharding.put(keys)
    obs = _run_items(model, fixed, swept, keys, n_steps)
    return {k: np.asarray(v)[:n_real] for k, v in obs.items()}


Task = tuple  # (model, fixed, n_steps, swept, key_data, n_real, devices)


class LocalExecutor:
    """Run the chunks one after the other in this process."""

    def map(self, tasks: Mapping[int, Task]):
        """Yield ``(chunk index, observables)`` as chunks finish."""
        for c, task in tasks.items():
            yield c, simulate_chunk(*task)


class RayExecutor:
    """Send chunks to a Ray cluster as tasks (``pip install 'agentgrad[ray]'``).

    Args:
        address: ``ray.init`` address (``"auto"``, ``"ray://host:10001"``, ...);
            ``None`` starts a local Ray instance.
        timeout_s: seconds allowed for connecting; an unreachable address is a one-line
            :class:`~agentgrad.errors.AgentgradError`.
        num_cpus: CPUs each task reserves.
    """

    def __init__(self, address: str | None = None, timeout_s: float = 60.0, num_cpus: int = 1):
        self.address, self.timeout_s, self.num_cpus = address, timeout_s, num_cpus

    def _ray(self):
        try:
            import ray
        except ImportError:
            raise AgentgradError("RayExecutor needs Ray: pip install 'agentgrad[ray]'") from None
        if not ray.is_initialized():
            _init_ray(ray, self.address, self.timeout_s)
        return ray

    def map(self, tasks: Mapping[int, Task]):
        """Yield ``(chunk index, observables)`` as the cluster finishes chunks."""
        ray = self._ray()
        remote = ray.remote(num_cpus=self.num_cpus)(simulate_chunk)
        if not tasks:
            return
        model = ray.put(next(iter(tasks.values()))[0])  # shared by every chunk
        pending = {remote.remote(model, *task[1:]): c for c, task in tasks.items()}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            c = pending.pop(done[0])
            yield c, ray.get(done[0])


def _init_ray(ray, address: str | None, timeout_s: float) -> None:
    """``ray.init``, after checking within ``timeout_s`` that a ``host:port`` address
    accepts connections (Ray itself retries an unreachable address for minutes)."""
    kwargs: dict[str, Any] = {"address": address, "log_to_driver": False}
    if address is None:
        kwargs.update(num_cpus=os.cpu_count() or 1, include_dashboard=False)
    elif ":" in address:
        from agentgrad.distributed import wait_for_port

        where = address.split("://", 1)[-1]
        wait_for_port(where, timeout_s, f"RayExecutor: cannot reach Ray at {address}")
    try:
        ray.init(**kwargs)
    except Exception as err:  # noqa: BLE001 - Ray raises ConnectionError and others
        line = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise AgentgradError(f"RayExecutor: cannot connect to Ray at {address}: {line}") from None


def _fingerprint(model, fixed, points, runs, n_steps, batch, key) -> str:
    """Hash of everything that determines a sweep's numbers (the model's arrays included)."""
    digest = hashlib.sha256(str(jax.tree.structure(model)).encode())
    for leaf in jax.tree.leaves(model):
        array = np.asarray(leaf)
        digest.update(f"{array.shape}{array.dtype}".encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    text = json.dumps(
        {
            "model": digest.hexdigest(),
            "fixed": {k: float(v) for k, v in fixed.items()},
            "points": {k: np.asarray(v).tolist() for k, v in points.items()},
            "runs": runs,
            "steps": n_steps,
            "batch": batch,
            "key": np.asarray(jax.random.key_data(key)).tolist(),
        },
        sort_keys=True,
    )
    return hashlib.sha256(text.encode()).hexdigest()


def _load_checkpoint(path: Path, fingerprint: str) -> dict[int, dict[str, np.ndarray]]:
    if not path.exists():
        return {}
    try:
        with np.load(path, allow_pickle=False) as data:
            saved = str(data["fingerprint"])
            chunks: dict[int, dict[str, np.ndarray]] = {}
            for name in data.files:
                if name.startswith("c"):
                    c, obs = name[1:].split("/", 1)
                    chunks.setdefault(int(c), {})[obs] = data[name]
    except Exception as err:  # noqa: BLE001 - a damaged file of any kind
        raise AgentgradError(
            f"sweep checkpoint {str(path)!r} cannot be read ({err}); delete it to start over"
        ) from None
    if saved != fingerprint:
        raise AgentgradError(
            f"sweep checkpoint {str(path)!r} belongs to a sweep with other settings; "
            "delete it, or give another checkpoint path"
        )
    return chunks


def _save_checkpoint(path: Path, fingerprint: str, chunks: dict[int, dict[str, np.ndarray]]):
    from agentgrad.outputs import atomic_path

    arrays = {f"c{c}/{k}": v for c, obs in chunks.items() for k, v in obs.items()}
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, fingerprint=np.array(fingerprint), **arrays)


def sweep(
    model: Model,
    grid: Mapping[str, Sequence[float]],
    key: jax.Array,
    n_steps: int,
    runs: int = 1,
    *,
    params: Mapping[str, Any] | None = None,
    batch: int = 64,
    devices: int | None = None,
    checkpoint: str | os.PathLike | None = None,
    executor: LocalExecutor | RayExecutor | None = None,
    on_chunk: Callable[[int, int], None] | None = None,
) -> xr.Dataset:
    """Simulate every point of ``grid`` ``runs`` times; return an ``xarray.Dataset``.

    Args:
        model: the model.
        grid: parameter name -> the values to sweep (Cartesian product).
        key: PRNG key; run ``r`` uses ``split(key, runs)[r]`` at every point.
        n_steps: steps per simulation.
        runs: simulations per grid point.
        params: values of the parameters that are not swept (defaults otherwise).
        batch: simulations per chunk (one ``vmap``); memory grows with it.
        devices: split each chunk over this many local devices (data parallel);
            ``batch`` is rounded up to a multiple of it.
        checkpoint: ``.npz`` file to save finished chunks to and resume from.
        executor: where chunks run (:class:`LocalExecutor` by default, or
            :class:`RayExecutor`).
        on_chunk: progress callback ``(simulations done, total)``.

    Returns:
        One variable per observable, dims ``(*grid, run, step)``; the coordinates are
            the swept values, runs ``0..R-1`` and steps ``1..n_steps``.
    """
    _check_options(n_steps, None)
    for name, value in (("runs", runs), ("batch", batch)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"sweep: {name} must be a positive integer, got {value!r}")
    fixed = model.param_space.complete(params)
    clash = set(grid) & set(params or {})
    if clash:
        raise ParameterError(f"sweep: {sorted(clash)[0]!r} is both swept and fixed")
    points = grid_points(model, grid)
    n_points = len(next(iter(points.values())))
    total = n_points * runs
    if devices is not None and devices > 1:
        from agentgrad.sharding import Sharding

        Sharding(devices)  # more devices than exist: one-line error before any work
        batch = -(-batch // devices) * devices
    batch = min(batch, -(-total // (devices or 1)) * (devices or 1))
    n_chunks = -(-total // batch)
    run_keys = np.asarray(jax.random.key_data(jax.random.split(key, runs)))
    point_of = np.repeat(np.arange(n_points), runs)  # item i -> (point i // R, run i % R)
    run_of = np.tile(np.arange(runs), n_points)

    def task(c: int) -> Task:
        idx = np.arange(c * batch, (c + 1) * batch) % total  # pad by wrapping
        swept = {k: v[point_of[idx]] for k, v in points.items()}
        n_real = min(batch, total - c * batch)
        return (model, fixed, n_steps, swept, run_keys[run_of[idx]], n_real, devices)

    path = Path(checkpoint) if checkpoint is not None else None
    fingerprint = _fingerprint(model, fixed, points, runs, n_steps, batch, key)
    done = _load_checkpoint(path, fingerprint) if path is not None else {}

    def report() -> None:
        if on_chunk is not None:
            on_chunk(sum(min(batch, total - c * batch) for c in done), total)

    report()
    todo = {c: task(c) for c in range(n_chunks) if c not in done}
    for c, result in (executor or LocalExecutor()).map(todo):
        done[c] = result
        if path is not None:
            _save_checkpoint(path, fingerprint, done)
        report()
    flat = {k: np.concatenate([done[c][k] for c in range(n_chunks)]) for k in done[0]}
    return _dataset(flat, grid, runs, n_steps, fixed)


def _dataset(flat, grid, runs, n_steps, fixed):
    import xarray as xr

    from agentgrad.io import netcdf_attrs

    shape = [len(np.asarray(v)) for v in grid.values()]
    dims = list(grid)
    variables = {}
    for name, v in flat.items():
        extra = [f"{name}_dim{i}" for i in range(v.ndim - 2)]
        variables[name] = (
            (*dims, "run", "step", *extra),
            v.reshape(*shape, runs, n_steps, *v.shape[2:]),
        )
    coords = {k: np.asarray(v, np.float64) for k, v in grid.items()}
    coords.update(run=np.arange(runs), step=np.arange(1, n_steps + 1))
    attrs = {f"param_{k}": float(v) for k, v in fixed.items() if k not in grid}
    return xr.Dataset(variables, coords=coords, attrs=netcdf_attrs(attrs))
