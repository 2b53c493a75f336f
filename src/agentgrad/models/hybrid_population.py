"""Synthetic populations with household, school, workplace and community contact layers.

The structure epidemiological ABMs use (covasim's and starsim's "hybrid" networks,
Kerr et al. 2021 §2.2), generated with vectorised NumPy so that 10^7 agents take
seconds to a minute:

* **households** — sizes drawn from :data:`HOUSEHOLD_SIZES` (shares of households of
  1..7 people, roughly the US 2020 census); everyone in a household is in contact
  (a clique).  Ages are mixed as in a family: the first member (the reference adult)
  is 20-99 by the adult decades of :data:`~agentgrad.models.population.AGE_PYRAMID`
  (25-54 uniform in households of 3 or more), the second a partner within 5 years
  (at least 18), the others children uniform in ``0..min(reference - 20, 24)``.
* **schools** — everyone aged 5-18 goes to school; pupils of the same age are grouped
  in classes of ``class_size`` (in a random order), and each pupil meets
  ``school_contacts`` classmates (a ring lattice within the class: exactly
  ``min(school_contacts, class size - 1)`` contacts each, rounded down to even).
* **workplaces** — each person aged 19-64 works with probability ``employment``;
  workers are put in workplaces of ``workplace_size`` in a random order and meet
  ``work_contacts`` colleagues (ring lattice within the workplace, as for classes).
* **community** — random contacts across the whole population: ``n c / 2`` uniformly
  random pairs (Erdős–Rényi-like, mean degree ``c = community_contacts``).

The layers are merged into one contact network (a pair met in two layers is one
contact), which is what :class:`~agentgrad.models.SEIRM` reads; the group ids
(household, class, workplace; -1 for none) are kept on the population.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from agentgrad.models.population import AGE_PYRAMID, Population, PopulationError
from agentgrad.resources import INT32_MAX, graph_bytes, require_memory
from agentgrad.spaces import graphs

#: share of households with 1, 2, ..., 7 members
HOUSEHOLD_SIZES = (0.28, 0.35, 0.15, 0.13, 0.06, 0.02, 0.01)
SCHOOL_AGES = (5, 18)
WORK_AGES = (19, 64)


def hybrid_population(
    n: int,
    *,
    class_size: int = 20,
    school_contacts: int = 10,
    workplace_size: int = 16,
    work_contacts: int = 8,
    employment: float = 0.7,
    community_contacts: float = 4.0,
    key: Any = None,
) -> Population:
    """``n`` agents with household, school, workplace and community layers (module doc).

    With the defaults the mean number of contacts is about 11 (households ~1.9,
    school ~1.6, work ~3.0, community ~4).  Returns a
    :class:`~agentgrad.models.population.Population` whose ``groups`` hold the
    household, class and workplace of every agent (-1 for none).
    """
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 2:
        raise PopulationError(f"a population needs an integer n >= 2 agents, got {n!r}")
    if n > INT32_MAX:
        raise PopulationError(f"at most {INT32_MAX} agents are supported, got {n}")
    for name, value in (("class_size", class_size), ("workplace_size", workplace_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 2:
            raise PopulationError(f"{name} must be an integer >= 2, got {value!r}")
    for name, value in (("school_contacts", school_contacts), ("work_contacts", work_contacts)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise PopulationError(f"{name} must be an integer >= 0, got {value!r}")
    if not 0 <= employment <= 1:
        raise PopulationError(f"employment must be in [0, 1], got {employment}")
    if not 0 <= community_contacts <= n - 1:
        raise PopulationError(f"community_contacts must be in [0, n-1], got {community_contacts}")
    # households ~2, pupils ~20% and workers ~50% of agents (upper estimates)
    mean_degree = 3 + 0.25 * school_contacts + 0.6 * work_contacts + community_contacts
    require_memory(
        64 * n + 1.5 * graph_bytes(n, n * mean_degree / 2),
        f"a hybrid population of {n} agents",
        "use fewer agents (--agents)",
    )
    rng = graphs._rng(key)

    # households: sizes until n people, member index within the household
    shares = np.asarray(HOUSEHOLD_SIZES) / sum(HOUSEHOLD_SIZES)
    expected = float(np.dot(np.arange(1, len(shares) + 1), shares))
    sizes = 1 + rng.choice(len(shares), size=int(n / expected * 1.05) + 16, p=shares)
    sizes = sizes[: np.searchsorted(np.cumsum(sizes), n) + 1]
    sizes[-1] -= sizes.sum() - n
    household = np.repeat(np.arange(sizes.size), sizes)
    first = np.cumsum(sizes) - sizes
    member = np.arange(n) - first[household]

    # ages: reference adult by the pyramid's adult decades (25-54 with children), partner
    # within 5 years, children 0 to (reference adult - 20, at most 24) years old
    adult_share = np.asarray(AGE_PYRAMID[2:])
    decade = 2 + rng.choice(adult_share.size, size=sizes.size, p=adult_share / adult_share.sum())
    head = 10 * decade + rng.integers(0, 10, sizes.size) + 10 * (decade == len(AGE_PYRAMID) - 1)
    family = sizes >= 3
    head[family] = rng.integers(25, 55, int(family.sum()))
    ages = head[household].copy()
    partner = member == 1
    ages[partner] = np.clip(ages[partner] + rng.integers(-5, 6, int(partner.sum())), 18, 99)
    child = member >= 2
    oldest = np.minimum(ages[child] - 20, 24)
    ages[child] = np.floor(rng.random(int(child.sum())) * (oldest + 1)).astype(np.int64)

    edges = [_household_edges(first, sizes)]
    groups = {"household": household}

    # schools: same-age classes, ring contacts inside each class
    pupils = np.flatnonzero((ages >= SCHOOL_AGES[0]) & (ages <= SCHOOL_AGES[1]))
    pupils = pupils[np.lexsort((rng.random(pupils.size), ages[pupils]))]
    groups["class"] = _group_ids(n, pupils, ages[pupils], class_size)  # ascending along pupils
    edges.append(_grouped_ring(pupils, groups["class"][pupils], school_contacts))

    # workplaces: employed adults in random order
    adults = np.flatnonzero((ages >= WORK_AGES[0]) & (ages <= WORK_AGES[1]))
    workers = rng.permutation(adults[rng.random(adults.size) < employment])
    groups["workplace"] = _group_ids(n, workers, np.zeros(workers.size), workplace_size)
    edges.append(_grouped_ring(workers, groups["workplace"][workers], work_contacts))

    # community: uniformly random pairs
    m = int(rng.poisson(n * community_contacts / 2)) if community_contacts > 0 else 0
    edges.append(np.stack([rng.integers(0, n, m), rng.integers(0, n, m)]))

    contact = np.concatenate(edges, axis=1)
    graph = graphs.from_edges(contact[0], contact[1], n)
    return Population(ages.astype(np.int64), graph, groups)


def _household_edges(first: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """All pairs within each household (a clique per household)."""
    edges = []
    for size in range(2, int(sizes.max()) + 1):  # at most 7 sizes, not a loop over agents
        starts = first[sizes == size]
        i, j = np.triu_indices(size, 1)
        edges.append(np.stack([(starts[:, None] + i).ravel(), (starts[:, None] + j).ravel()]))
    return np.concatenate(edges, axis=1) if edges else np.zeros((2, 0), np.int64)


def _group_ids(n: int, members: np.ndarray, cohort: np.ndarray, size: int) -> np.ndarray:
    """Group id per agent (-1 outside): consecutive runs of ``size`` members within each
    cohort (``members`` sorted by cohort)."""
    ids = np.full(n, -1, np.int64)
    if members.size == 0:
        return ids
    new_cohort, within = _runs(cohort)
    ids[members] = np.cumsum(new_cohort | (within % size == 0)) - 1
    return ids


def _runs(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For a sorted label array: where each run of equal labels starts (bool) and each
    entry's position within its run."""
    new = np.concatenate([[True], labels[1:] != labels[:-1]])
    start = np.maximum.accumulate(np.where(new, np.arange(labels.size), 0))
    return new, np.arange(labels.size) - start


def _grouped_ring(members: np.ndarray, group: np.ndarray, contacts: int) -> np.ndarray:
    """Ring contacts within groups of unequal sizes (``members`` sorted by ``group``)."""
    if members.size < 2 or contacts < 2:
        return np.zeros((2, 0), np.int64)
    new, pos = _runs(group)
    run = np.cumsum(new) - 1
    size = np.bincount(run)[run]
    start = np.arange(members.size) - pos
    edges = []
    for d in range(1, contacts // 2 + 1):  # contacts/2 offsets, not a loop over agents
        ok = (size > 2 * d) | ((size == 2 * d) & (pos < d))
        other = start + (pos + d) % size
        edges.append(np.stack([members[ok], members[other[ok]]]))
    return np.concatenate(edges, axis=1)
