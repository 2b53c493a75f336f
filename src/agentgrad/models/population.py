"""Populations for network epidemic models: ages plus a contact network.

File formats.  The binary one (fast: a 10^7-agent population loads in seconds):

* ``population.npz`` — NumPy arrays ``ages`` (int, years), the contact network in CSR
  form ``indptr`` (n + 1,) and ``neighbours`` (2 E,) int32 (agent i's contacts are
  ``neighbours[indptr[i]:indptr[i+1]]``, sorted, each undirected contact listed from
  both ends), and optional group ids ``group_<layer>`` (n,) (-1 for none).

The text one (a directory, or two paths):

* ``ages.csv`` — one row per agent, in agent order: the agent's age in whole years
  (an integer 0-120).  An optional first line ``age`` is a header; blank lines are not
  allowed (they would shift agent ids).
* ``contacts.csv`` — an undirected edge list, one ``u v`` (or ``u,v``) pair per line with
  0-based agent ids below the number of rows of ``ages.csv``; ``#`` comments allowed
  (see :func:`agentgrad.graphs.from_edge_list`).

:func:`synthetic_population` draws ages from a fixed age pyramid (decades 0-9 ... 80+,
roughly the US 2020 census shares) and an Erdős–Rényi contact network.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agentgrad.errors import AgentgradError, GraphError
from agentgrad.resources import INT32_MAX, graph_bytes, require_memory
from agentgrad.spaces import graphs
from agentgrad.spaces.graphs import Graph

#: share of the population per age decade 0-9, 10-19, ..., 70-79, 80+
AGE_PYRAMID = (0.12, 0.13, 0.14, 0.13, 0.12, 0.13, 0.12, 0.07, 0.04)
N_AGE_GROUPS = len(AGE_PYRAMID)
MAX_AGE = 120


class PopulationError(AgentgradError):
    """Malformed population file or arguments."""


@dataclass(frozen=True)
class Population:
    """Agent ages (years, int), their contact network and, optionally, group ids per
    layer (e.g. ``{"household": ids, "class": ids, "workplace": ids}``, -1 for none)."""

    ages: np.ndarray
    graph: Graph
    groups: dict[str, np.ndarray] | None = None

    def __post_init__(self) -> None:
        ages = np.asarray(self.ages)
        if ages.ndim != 1 or not np.issubdtype(ages.dtype, np.integer):
            raise PopulationError("ages must be a 1-D array of integer years")
        if ages.size != self.graph.n_nodes:
            raise PopulationError(
                f"{ages.size} ages but the contact network has {self.graph.n_nodes} agents"
            )
        if ages.size and (ages.min() < 0 or ages.max() > MAX_AGE):
            raise PopulationError(f"ages must be in [0, {MAX_AGE}] years")
        for layer, ids in (self.groups or {}).items():
            if np.shape(ids) != ages.shape:
                raise PopulationError(f"group ids of {layer!r} must have one entry per agent")

    @property
    def age_groups(self) -> np.ndarray:
        """Decade index 0..8 (80+ is group 8)."""
        return np.minimum(np.asarray(self.ages) // 10, N_AGE_GROUPS - 1).astype(np.int32)

    def save(self, directory: str | os.PathLike, binary: bool = False) -> None:
        """Write ``ages.csv`` and ``contacts.csv``, or with ``binary`` ``population.npz``
        (the formats read by :func:`load_population`)."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        if binary:
            write_binary(self, d / BINARY)
            return
        write_ages(self, d / "ages.csv")
        write_contacts(self, d / "contacts.csv")


BINARY = "population.npz"


def write_binary(population: Population, path: str | os.PathLike) -> None:
    """Write ``population.npz`` (module docstring); uncompressed, so it loads at disk speed."""
    graph = population.graph
    degree = np.asarray(graph.degree).astype(np.int64)
    indptr = np.concatenate([[0], np.cumsum(degree)])
    groups = {f"group_{k}": np.asarray(v) for k, v in (population.groups or {}).items()}
    with open(path, "wb") as fh:  # a file object: np.savez would append .npz to the name
        np.savez(
            fh,
            ages=np.asarray(population.ages).astype(np.int16),
            indptr=indptr,
            neighbours=graph.csr()[0].astype(np.int32),
            **groups,
        )


def read_binary(path: str | os.PathLike) -> Population:
    """Read ``population.npz``; checks shapes, id ranges and the CSR layout (one line)."""

    where = f"population file {str(path)!r}"
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError) as err:
        raise PopulationError(f"cannot read {where}: {err}") from None
    missing = {"ages", "indptr", "neighbours"} - set(arrays)
    if missing:
        raise PopulationError(f"{where} lacks the arrays {sorted(missing)}")
    ages, indptr, neighbours = arrays["ages"], arrays["indptr"], arrays["neighbours"]
    n = ages.size
    if ages.ndim != 1 or n < 2 or not np.issubdtype(ages.dtype, np.integer):
        raise PopulationError(f"{where}: ages must be a 1-D integer array of >= 2 agents")
    if indptr.shape != (n + 1,) or indptr[0] != 0 or indptr[-1] != neighbours.size:
        raise PopulationError(f"{where}: indptr must have n + 1 = {n + 1} offsets from 0 to E")
    degree = np.diff(indptr)
    if degree.min(initial=0) < 0:
        raise PopulationError(f"{where}: indptr must not decrease")
    if neighbours.size and (neighbours.min() < 0 or neighbours.max() >= n):
        raise PopulationError(f"{where}: contact ids must be in [0, {n})")
    if neighbours.size % 2:
        raise PopulationError(f"{where}: every contact must be listed from both ends")
    receivers = np.repeat(np.arange(n, dtype=np.int32), degree)
    graph = graphs.from_csr(neighbours, receivers, degree, n)
    groups = {k[6:]: v for k, v in arrays.items() if k.startswith("group_")}
    return Population(ages.astype(np.int64), graph, groups or None)


def write_ages(population: Population, path: str | os.PathLike) -> None:
    """Write the ages file (header ``age``, one integer per agent)."""
    np.savetxt(path, np.asarray(population.ages), fmt="%d", header="age", comments="")


def write_contacts(population: Population, path: str | os.PathLike) -> None:
    """Write the contacts file (``u,v`` per undirected edge, ``u < v``)."""
    senders = np.asarray(population.graph.senders)
    receivers = np.asarray(population.graph.receivers)
    keep = senders < receivers
    edges = np.stack([senders[keep], receivers[keep]], axis=1)
    np.savetxt(path, edges, fmt="%d", delimiter=",", header="u,v", comments="#")


def synthetic_population(n: int, mean_degree: float = 10.0, *, key: Any = None) -> Population:
    """``n`` agents with ages from :data:`AGE_PYRAMID` (uniform within a decade, 80-99 for
    the last) and an Erdős–Rényi contact network of the given mean degree."""
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 2:
        raise PopulationError(f"a population needs an integer n >= 2 agents, got {n!r}")
    if n > INT32_MAX:
        raise PopulationError(f"at most {INT32_MAX} agents are supported, got {n}")
    require_memory(
        32 * n + graph_bytes(n, n * mean_degree / 2),
        f"a synthetic population of {n} agents",
        "use fewer agents (--agents)",
    )
    rng = graphs._rng(key)
    decade = rng.choice(N_AGE_GROUPS, size=n, p=np.asarray(AGE_PYRAMID) / sum(AGE_PYRAMID))
    width = np.where(decade == N_AGE_GROUPS - 1, 20, 10)
    ages = (10 * decade + np.floor(rng.random(n) * width)).astype(np.int64)
    return Population(ages, graphs.erdos_renyi(n, mean_degree, key=int(rng.integers(2**31))))


def read_ages(path: str | os.PathLike) -> np.ndarray:
    """Read an ages file (module docstring); line-numbered errors."""
    try:
        lines = Path(path).read_text(encoding="utf-8-sig").splitlines()
    except OSError as err:
        raise PopulationError(f"cannot read ages file {str(path)!r}: {err.strerror}") from None
    except UnicodeDecodeError:
        raise PopulationError(f"ages file {str(path)!r} is not a text CSV") from None
    if lines and lines[0].strip().lower() == "age":
        lines, first = lines[1:], 2
    else:
        first = 1
    ages = []
    for lineno, line in enumerate(lines, first):
        text = line.strip().split(",")[0].strip()
        try:
            age = int(text)
        except ValueError:
            raise PopulationError(
                f"{path}:{lineno}: expected an integer age in years, got {line.strip()[:40]!r}"
            ) from None
        if not 0 <= age <= MAX_AGE:
            raise PopulationError(f"{path}:{lineno}: age {age} is outside [0, {MAX_AGE}]")
        ages.append(age)
    if len(ages) < 2:
        raise PopulationError(f"ages file {str(path)!r} needs at least two agents")
    return np.asarray(ages, np.int64)


def load_population(
    ages: str | os.PathLike, contacts: str | os.PathLike | None = None
) -> Population:
    """Read a population: a directory holding ``population.npz`` (preferred when present)
    or ``ages.csv`` and ``contacts.csv``; a ``.npz`` path; or the two CSV paths.  Contact
    ids must be below the number of ages."""
    if contacts is None:
        d = Path(ages)
        if d.suffix == ".npz" and d.is_file():
            return read_binary(d)
        if not d.is_dir():
            raise PopulationError(
                f"population {str(ages)!r} is not a directory with population.npz or "
                "ages.csv and contacts.csv"
            )
        if (d / BINARY).is_file():
            return read_binary(d / BINARY)
        ages, contacts = d / "ages.csv", d / "contacts.csv"
    age_array = read_ages(ages)
    try:
        graph = graphs.from_edge_list(contacts, n_nodes=age_array.size)
    except GraphError as err:
        raise PopulationError(f"contacts: {err} (ids must be < {age_array.size})") from None
    return Population(age_array, graph)
