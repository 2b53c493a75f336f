"""One simulation across several devices: the agent axis partitioned over a mesh.

``simulate(model, params, key, T, sharding=ag.Sharding(devices=2))`` runs the same
``lax.scan`` as on one device, with every state array split in contiguous blocks along
its longest axis (the agents of a population, the rows of a grid; the first of equal
axes) over a one-dimensional device mesh (axis ``"agents"``):

    state leaf x with longest axis a of size n  ->  device d holds x[..., dn/D : (d+1)n/D, ...]

Leaves whose longest axis is not a multiple of D (scalars, small counters, the
stochastic-derivative reservoir) are replicated.  The constraint is applied to the
initial state and after every step (``lax.with_sharding_constraint``), and XLA's SPMD
partitioner (GSPMD) splits the work.  Graphs are laid out explicitly
(:meth:`Graph.partition`): device d owns the edges into its block of receivers, and a
neighbour sum is one ``all_gather`` of the N node values followed by a local gather
and ``segment_sum`` (``shard_map``), so edge memory and work are divided by D.  For a
grid model the row blocks exchange their boundary rows (halo) where neighbours are
counted with rolls or convolutions.

Devices may belong to several processes (``jax.distributed``, see
:mod:`agentgrad.distributed`): the mesh then spans machines and the same program runs
on each process (SPMD).  Sums computed in a different order over blocks make results
equal to the single-device run to float rounding, not always bitwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import equinox as eqx
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from agentgrad.errors import AgentgradError

AXIS = "agents"


class Sharding(eqx.Module):
    """Partition a simulation's agents over devices (a one-axis mesh named ``"agents"``).

    Args:
        devices: how many of ``jax.devices()`` to use (the first ``devices``), an explicit
            sequence of devices, or ``None`` for all of them.

    Raises :class:`~agentgrad.errors.AgentgradError` when more devices are asked for than
    exist.  On CPU, ``jax.config.update("jax_num_cpu_devices", D)`` (before any
    computation) gives D host devices.
    """

    devices: tuple[Any, ...] = eqx.field(static=True)

    def __init__(self, devices: int | Sequence[Any] | None = None):
        available = jax.devices()
        if devices is None:
            chosen = tuple(available)
        elif isinstance(devices, int) and not isinstance(devices, bool):
            if devices < 1:
                raise AgentgradError(f"Sharding: devices must be >= 1, got {devices}")
            if devices > len(available):
                raise AgentgradError(
                    f"Sharding: {devices} devices requested but only {len(available)} "
                    f"exist ({available[0].platform}); on CPU set "
                    f'jax.config.update("jax_num_cpu_devices", {devices}) before any '
                    "computation, or XLA_FLAGS=--xla_force_host_platform_device_count="
                    f"{devices}"
                )
            chosen = tuple(available[:devices])
        else:
            chosen = tuple(devices)
            if not chosen:
                raise AgentgradError("Sharding: the device list is empty")
            unknown = [d for d in chosen if d not in available]
            if unknown:
                raise AgentgradError(f"Sharding: {unknown[0]} is not one of jax.devices()")
            if len(set(chosen)) != len(chosen):
                raise AgentgradError("Sharding: a device is listed twice")
        self.devices = chosen

    @property
    def size(self) -> int:
        """Number of devices D."""
        return len(self.devices)

    @property
    def mesh(self) -> Mesh:
        """The one-axis device mesh (axis name ``"agents"``)."""
        return Mesh(np.array(self.devices, dtype=object), (AXIS,))

    def spec(self, x: Any) -> NamedSharding:
        """Blocks along the longest axis if its size is a multiple of D, else replicated."""
        shape = np.shape(x)
        if not shape:
            return NamedSharding(self.mesh, PartitionSpec())
        axis = int(np.argmax(shape))
        if shape[axis] < self.size or shape[axis] % self.size:
            return NamedSharding(self.mesh, PartitionSpec())
        return NamedSharding(self.mesh, PartitionSpec(*([None] * axis), AXIS))

    def check(self, state: Any) -> None:
        """Raise a one-line error when the state's agent axis cannot be split in D blocks.

        The agent axis is the longest axis of the state's largest array; its size must
        be a multiple of D (choose the population or grid, or D).
        """
        arrays = [x for x in jax.tree.leaves(state) if np.ndim(x) >= 1]
        if not arrays:
            raise AgentgradError("Sharding: the model's state has no array to partition")
        n = max(np.shape(max(arrays, key=np.size)))
        if n % self.size:
            raise AgentgradError(
                f"Sharding: the state's agent axis has {n} entries, not a multiple of "
                f"{self.size} devices; choose a population (or grid height) divisible "
                f"by {self.size}"
            )

    def constrain(self, tree: Any) -> Any:
        """``with_sharding_constraint`` on every array leaf (inside ``jit``)."""
        return jax.tree.map(lambda x: jax.lax.with_sharding_constraint(x, self.spec(x)), tree)

    def prepare(self, model: Any) -> Any:
        """``model`` with every :class:`~agentgrad.spaces.graphs.Graph` laid out in
        receiver blocks (:meth:`Graph.partition`); graphs whose edge arrays are traced
        (a model passed through ``jit``) are left to the automatic partitioner."""
        from agentgrad.spaces.graphs import Graph

        def lay_out(x):
            if isinstance(x, Graph) and not isinstance(x.senders, jax.core.Tracer):
                return x.partition(self)
            return x

        return jax.tree.map(lay_out, model, is_leaf=lambda x: isinstance(x, Graph))

    def put(self, tree: Any) -> Any:
        """``device_put`` every array leaf with :meth:`spec` (outside ``jit``)."""
        return jax.tree.map(lambda x: jax.device_put(x, self.spec(x)), tree)
