"""One simulation across machines: multi-process SPMD with ``jax.distributed``.

Every process runs the same Python program.  After :func:`initialize`,
``jax.devices()`` lists the devices of all processes, so
``ag.Sharding()`` spans the machines and ``simulate(..., sharding=ag.Sharding())``
partitions the agents over all of them (see :mod:`agentgrad.sharding`); observables
(sums over agents) come back replicated on every process.

Launch recipe (two machines, or two processes on one)::

    # on each process i = 0, 1 (same script, same arguments):
    AGENTGRAD_COORDINATOR=host0:12345 AGENTGRAD_NUM_PROCESSES=2 AGENTGRAD_PROCESS_ID=i \\
        python my_run.py

    # my_run.py
    import agentgrad as ag
    ag.distributed.initialize()          # before any other JAX computation
    traj = ag.simulate(model, params, key, T, sharding=ag.Sharding())

Under SLURM (``srun``), Open MPI or other clusters JAX detects the coordinator, process
count and id itself: call ``initialize()`` with no arguments and no variables.  On CPU
the processes exchange data with gloo collectives (enabled here).

Failure modes: processes other than 0 wait up to ``timeout_s`` for the coordinator
and then raise a one-line error.  Once connected, JAX itself terminates every process
of the run when one of them dies or never arrives (its coordination service aborts
after ``timeout_s``); this cannot be turned into a Python exception.
"""

from __future__ import annotations

import os

import jax

from agentgrad.errors import AgentgradError

ENV = ("AGENTGRAD_COORDINATOR", "AGENTGRAD_NUM_PROCESSES", "AGENTGRAD_PROCESS_ID")


def _int_env(name: str) -> int | None:
    value = os.environ.get(name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise AgentgradError(f"{name}={value!r} is not an integer") from None


def initialize(
    coordinator: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    timeout_s: int = 300,
) -> None:
    """Join this process to a multi-process JAX run (``jax.distributed.initialize``).

    Args:
        coordinator: ``host:port`` of process 0's coordinator service; default
            ``$AGENTGRAD_COORDINATOR``, else the cluster environment (SLURM, MPI, ...).
        num_processes: total number of processes; default ``$AGENTGRAD_NUM_PROCESSES``.
        process_id: this process's rank in ``[0, num_processes)``; default
            ``$AGENTGRAD_PROCESS_ID``.
        timeout_s: seconds to wait for all processes to connect.

    Raises :class:`~agentgrad.errors.AgentgradError` (one line) for inconsistent
    arguments and when the coordinator cannot be reached within ``timeout_s``.
    """
    coordinator = coordinator or os.environ.get(ENV[0])
    num_processes = num_processes if num_processes is not None else _int_env(ENV[1])
    process_id = process_id if process_id is not None else _int_env(ENV[2])
    explicit = [coordinator, num_processes, process_id]
    if any(v is not None for v in explicit) and any(v is None for v in explicit):
        raise AgentgradError(
            "distributed.initialize: give the coordinator address, the number of processes "
            f"and this process's id together (or none of them, on a cluster); set {', '.join(ENV)}"
        )
    if num_processes is not None:
        if num_processes < 1:
            raise AgentgradError(
                f"distributed.initialize: num_processes must be >= 1, got {num_processes}"
            )
        if not 0 <= process_id < num_processes:
            raise AgentgradError(
                f"distributed.initialize: process_id must be in [0, {num_processes}), "
                f"got {process_id}"
            )
        if ":" not in coordinator:
            raise AgentgradError(
                f"distributed.initialize: coordinator must be host:port, got {coordinator!r}"
            )
    if _backend_started():
        raise AgentgradError(
            "distributed.initialize must run before any JAX computation (call it first in "
            "the script)"
        )
    if process_id:  # JAX aborts the process when the coordinator is unreachable
        wait_for_port(
            coordinator,
            timeout_s,
            f"distributed.initialize: could not join the run at {coordinator}",
        )
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(
            coordinator_address=coordinator,
            num_processes=num_processes,
            process_id=process_id,
            initialization_timeout=int(timeout_s),
        )
    except Exception as err:  # noqa: BLE001 - JAX raises RuntimeError/ValueError/XlaRuntimeError
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise AgentgradError(
            f"distributed.initialize: could not join the run at {coordinator or 'the cluster'} "
            f"within {timeout_s} s ({first[:200]}); check the address and that every process "
            "was started"
        ) from None


def wait_for_port(address: str, timeout_s: float, what: str) -> None:
    """Poll a TCP connection to ``host:port`` until it opens; after ``timeout_s`` raise
    the one-line error ``what`` (with the reason)."""
    import socket
    import time

    host, _, port = address.rpartition(":")
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=1.0):
                return
        except (OSError, ValueError) as err:
            if time.monotonic() >= deadline:
                raise AgentgradError(
                    f"{what} within {timeout_s:g} s ({err}); check the address and that the "
                    "server (process 0, the Ray head) was started"
                ) from None
            time.sleep(0.2)


def _backend_started() -> bool:
    """Whether a JAX backend already exists (then it is too late to initialize)."""
    from jax._src import xla_bridge

    return bool(xla_bridge.backends_are_initialized())


def is_leader() -> bool:
    """True on process 0 (the one that should write files and print)."""
    return jax.process_index() == 0
