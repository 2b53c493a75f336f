"""Memory estimates checked before any memory is spent.

A command refuses, with one line, work whose estimated peak memory exceeds what the
machine has: the estimate, the limit and the option to change.  Estimates are cheap
(sizes and ``jax.eval_shape``, nothing allocated) and deliberately rough — they exist
to stop a billion-agent typo before it takes the machine down, not to predict usage to
the byte.  Near the limit, a simulation's estimate is XLA's own count of the compiled
program (:func:`compiled_run_bytes`; within a few percent of measured peaks), which
costs a compilation but no allocation (:func:`require_simulation_memory`).

The limit is the smaller of ``MemAvailable`` (``/proc/meminfo``) and the cgroup limit
(``/sys/fs/cgroup/memory.max``) on the host, and the device's ``bytes_limit`` on an
accelerator.  ``AGENTGRAD_MEMORY_LIMIT`` overrides it (``16G``, ``500M``, bytes), and
``AGENTGRAD_MEMORY_LIMIT=off`` disables the check.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from agentgrad.errors import AgentgradError

INT32_MAX = 2**31 - 1
XLA_MARGIN = 1.1  # measured peaks: 0.99-1.0x of XLA's count at 10^6 (benchmarks/memory_model.py)
_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


class ResourceError(AgentgradError):
    """The requested work does not fit in memory, or a size overflows."""


def format_bytes(n: float) -> str:
    """``1.5 GiB``-style text."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"  # pragma: no cover


def _parse_limit(text: str) -> int | None:
    text = text.strip().upper().removesuffix("B").removesuffix("I")
    if text in ("OFF", "NONE", "0", ""):
        return None
    unit = text[-1] if text[-1] in _UNITS else ""
    try:
        return int(float(text[: len(text) - len(unit)]) * _UNITS[unit])
    except ValueError:
        raise ResourceError(
            f"AGENTGRAD_MEMORY_LIMIT={text!r} is not a size (e.g. 16G, 500M) or 'off'"
        ) from None


def host_memory_limit() -> int:
    """Bytes of host memory this process can still use."""
    limits = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                limits.append(int(line.split()[1]) * 1024)
    except OSError:
        pass
    try:
        text = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if text.isdigit():
            limits.append(int(text))
    except OSError:
        pass
    if not limits:
        try:
            limits.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))
        except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
            limits.append(2**63)
    return min(limits)


def memory_limit(device: bool = False) -> int | None:
    """The limit checks compare against (``None``: checking is switched off)."""
    override = os.environ.get("AGENTGRAD_MEMORY_LIMIT")
    if override is not None:
        return _parse_limit(override)
    if device:
        dev = jax.devices()[0]
        if dev.platform != "cpu":
            stats = dev.memory_stats() or {}
            if "bytes_limit" in stats:
                return int(stats["bytes_limit"])
    return host_memory_limit()


def require_memory(nbytes: float, what: str, hint: str, device: bool = False) -> None:
    """Raise :class:`ResourceError` if ``nbytes`` exceeds the memory limit.

    ``what`` says what needs the memory, ``hint`` which option to change.
    """
    limit = memory_limit(device)
    if limit is not None and nbytes > limit:
        raise ResourceError(
            f"{what} needs about {format_bytes(nbytes)} of memory but only "
            f"{format_bytes(limit)} is available; {hint}"
        )


def require_simulation_memory(model: Any, params: Any, what: str, hint: str, **sizes: Any) -> None:
    """Refuse (:class:`ResourceError`) a simulation that would not fit in memory.

    ``sizes`` are :func:`simulation_bytes`' keywords.  The fitted formula decides
    where it is below half the limit (no compilation); nearer the limit, XLA's count
    of the compiled program decides, because the formula can be off by 2x either way.
    A program that fails to compile here keeps the formula's estimate (the run itself
    will report the failure).
    """
    limit = memory_limit(device=True)
    if limit is None:
        return
    need = simulation_bytes(model, params, **sizes)
    if need > limit / 2:
        try:
            need = simulation_bytes(model, params, **sizes, compiled=True)
        except Exception:  # noqa: BLE001 - an estimate must not be what fails
            pass
    require_memory(need, what, hint, device=True)


def check_size(value: int, name: str, maximum: int = INT32_MAX) -> int:
    """An integer size that fits the int32 indices the engine uses."""
    if value > maximum:
        raise ResourceError(f"{name} = {value} is too large: at most {maximum} is supported")
    return value


def tree_bytes(tree: Any) -> int:
    """Bytes of every array (or ``ShapeDtypeStruct``) leaf of a pytree."""
    total = 0
    for leaf in jax.tree.leaves(tree):
        if hasattr(leaf, "shape") and hasattr(leaf, "dtype"):
            total += int(np.prod(leaf.shape, dtype=np.float64)) * np.dtype(leaf.dtype).itemsize
    return total


def _run_bytes(model: Any, params: Any) -> tuple[int, int]:
    """Bytes of one run's state and of one step's observables, from a single
    ``jax.eval_shape`` of ``init`` + ``observe`` (nothing allocated)."""

    def shapes(key):
        state = model.init(params, key)
        return state, model.observe(state, params, jnp.zeros((), jnp.float32))

    state, obs = jax.eval_shape(shapes, jax.random.key(0))
    return tree_bytes(state), tree_bytes(obs)


def state_bytes(model: Any, params: Any) -> int:
    """Bytes of one run's state (``jax.eval_shape``; nothing allocated)."""
    return _run_bytes(model, params)[0]


def graph_bytes(n_nodes: float, n_edges: float) -> int:
    """Rough peak host bytes of building a graph (int64 sort temporaries, int32 result)."""
    return int(120 * n_edges + 24 * n_nodes)


def simulation_bytes(
    model: Any,
    params: Any,
    *,
    batch: int,
    steps: int,
    runs: int,
    directions: int = 0,
    reverse: bool = False,
    checkpoint: bool = False,
    compiled: bool = False,
) -> int:
    """Rough peak bytes of simulating ``runs`` runs, ``batch`` at a time.

    With ``compiled``, one run's working memory is XLA's count
    (:func:`compiled_run_bytes`, times ``XLA_MARGIN``) instead of the fitted formula
    below: accurate to a few percent, but it compiles the program.

    The memory model, calibrated on SIRNetwork and SEIRM at 10^7 agents / 10^8 directed
    edges (``benchmarks/scale.py``; docs/benchmarks.md): per run in a batch, four copies
    of the state (the state, the new state, random bits and temporaries) and one value
    per element of the model's arrays (the per-edge gather); forward
    mode multiplies this by ``1 + directions`` (one tangent per direction) and is
    constant in the number of steps; reverse mode also keeps about two states per step,
    or, with ``checkpoint``, per block boundary and per step of one block
    (``2 sqrt(steps) + 1``).  Outputs: ``runs x steps`` observables (and Jacobian
    columns) on the host.
    """
    state, obs = _run_bytes(model, params)
    structure = tree_bytes(jax.tree.leaves(model))
    options = dict(steps=steps, directions=directions, reverse=reverse, checkpoint=checkpoint)
    counted = compiled_run_bytes(model, params, **options) if compiled else None
    if counted is not None:
        per_run = XLA_MARGIN * counted
    else:
        per_run = (4 * state + structure) * (1 + (0 if reverse else directions))
        if reverse:
            stored = 2 * int(np.sqrt(steps)) + 1 if checkpoint else steps
            per_run += 2 * state * stored
    outputs = obs * steps * runs * (1 + directions)
    return int(structure + batch * per_run + outputs)


def memory_program(
    model: Any,
    params: Any,
    *,
    steps: int,
    directions: int = 0,
    reverse: bool = False,
    checkpoint: bool = False,
) -> tuple[Any, Any, Any]:
    """The program whose memory :func:`compiled_run_bytes` counts, as
    ``(fn, arrays, params)``: ``jax.jit(fn)(arrays, params)`` runs it, with ``arrays``
    the model's arrays (the rest of the model is closed over, static).

    One ``simulate`` of ``steps`` steps: its observables (forward); their
    ``directions`` JVPs, vmapped (forward mode); or the gradient of their sum with
    respect to every parameter (reverse, with ``checkpoint`` as in ``simulate``).
    """
    import equinox as eqx

    from agentgrad.engine import simulate

    params = model.param_space.complete(params)
    arrays, static = eqx.partition(model, eqx.is_array)
    key = jax.random.key(0)
    real = jnp.result_type(float)

    def observables(m, p):
        obs = simulate(m, p, key, steps, checkpoint=checkpoint).observables
        return jax.tree.map(lambda v: v.astype(real), obs)

    def program(a, p):
        m = eqx.combine(a, static)
        if reverse:
            return jax.grad(lambda q: sum(jnp.sum(v) for v in observables(m, q).values()))(p)
        if not directions:
            return observables(m, p)

        def column(row):
            tangent = {n: row[i].astype(jnp.asarray(p[n]).dtype) for i, n in enumerate(p)}
            return jax.jvp(lambda q: observables(m, q), (p,), (tangent,))[1]

        # one tangent per direction (their values do not matter, only the buffers)
        return jax.vmap(column)(jnp.eye(directions, len(p), dtype=real))

    return program, arrays, params


def compiled_run_bytes(model: Any, params: Any, **options: Any) -> int | None:
    """XLA's own count of the working memory of one run: the temporaries and outputs
    of the compiled :func:`memory_program` (``Compiled.memory_analysis()``), the
    model's arrays excluded.  Nothing runs and nothing is allocated, but the program
    is compiled (1–3 s at 10^6 agents).  Unlike :func:`simulation_bytes` this is not a
    fit but the compiler's buffer assignment.  ``options`` are
    :func:`memory_program`'s (``steps``, ``directions``, ``reverse``, ``checkpoint``).
    ``None`` where the backend gives no analysis.
    """
    program, arrays, params = memory_program(model, params, **options)
    analysis = jax.jit(program).lower(arrays, params).compile().memory_analysis()
    if analysis is None:
        return None
    return int(analysis.temp_size_in_bytes + analysis.output_size_in_bytes)
