"""Hybrid populations (household, school, workplace, community layers): layer sizes and
degrees as stated, family age mixing, the binary format round trip and its errors."""

import jax
import numpy as np
import pytest

import agentgrad as ag
from agentgrad.models import SEIRM
from agentgrad.models.hybrid_population import HOUSEHOLD_SIZES, SCHOOL_AGES, hybrid_population
from agentgrad.models.population import PopulationError, load_population

N = 20_000


@pytest.fixture(scope="module")
def pop():
    return hybrid_population(N, key=3)


def _edges(pop):
    s, r = np.asarray(pop.graph.senders), np.asarray(pop.graph.receivers)
    return s, r


def test_households_have_the_stated_sizes_and_are_cliques(pop):
    household = pop.groups["household"]
    sizes = np.bincount(household)
    shares = np.bincount(sizes[:-1], minlength=8)[1:] / (sizes.size - 1)  # last is truncated
    expected = np.asarray(HOUSEHOLD_SIZES) / sum(HOUSEHOLD_SIZES)
    se = np.sqrt(expected * (1 - expected) / sizes.size)
    assert np.all(np.abs(shares - expected) < 4 * se + 1e-3), (shares, expected)
    s, r = _edges(pop)
    same = household[s] == household[r]
    within = np.bincount(household[r[same]], minlength=sizes.size)  # directed, per household
    np.testing.assert_array_equal(within, sizes * (sizes - 1))  # every pair in contact


def test_family_age_mixing(pop):
    household, ages = pop.groups["household"], pop.ages
    first = np.searchsorted(household, household)  # index of each household's reference adult
    member = np.arange(N) - first
    children = member >= 2
    assert np.all(ages[first] >= 18)
    gap = ages[first[children]] - ages[children]
    assert gap.min() >= 20 and ages[children].max() <= 24
    partner = member == 1
    assert np.all(np.abs(ages[partner] - ages[first[partner]]) <= 5)
    assert np.mean(np.abs(ages[partner] - ages[first[partner]])) < 3.5


def test_classes_are_same_age_and_pupils_have_the_stated_contacts(pop):
    cls, ages = pop.groups["class"], pop.ages
    pupils = cls >= 0
    np.testing.assert_array_equal(pupils, (ages >= SCHOOL_AGES[0]) & (ages <= SCHOOL_AGES[1]))
    sizes = np.bincount(cls[pupils])
    assert sizes.max() == 20
    for c in np.flatnonzero(sizes)[:50]:
        assert len(set(ages[cls == c])) == 1
    s, r = _edges(pop)
    same_class = (cls[s] == cls[r]) & (cls[r] >= 0)
    contacts = np.bincount(r[same_class], minlength=N)
    full = pupils & (sizes[np.maximum(cls, 0)] == 20)
    assert np.all(contacts[full] >= 10)  # 10 ring contacts (+ siblings in the same class)


def test_workplaces_and_community(pop):
    work, ages = pop.groups["workplace"], pop.ages
    workers = work >= 0
    assert np.all((ages[workers] >= 19) & (ages[workers] <= 64))
    adults = (ages >= 19) & (ages <= 64)
    share = workers.sum() / adults.sum()
    assert abs(share - 0.7) < 4 * np.sqrt(0.21 / adults.sum())
    sizes = np.bincount(work[workers])
    assert sizes.max() == 16 and np.all(sizes[:-1] == 16)
    s, r = _edges(pop)
    other = (
        (pop.groups["household"][s] != pop.groups["household"][r])
        & ((work[s] != work[r]) | (work[r] < 0))
        & ((pop.groups["class"][s] != pop.groups["class"][r]) | (pop.groups["class"][r] < 0))
    )
    community = other.sum() / N  # mean community degree, about 4 (few overlaps)
    assert 3.8 < community < 4.1
    assert 10.5 < float(np.mean(np.asarray(pop.graph.degree))) < 12.5


def test_binary_format_round_trip_and_seirm(tmp_path, pop):
    pop.save(tmp_path, binary=True)
    again = load_population(tmp_path)
    np.testing.assert_array_equal(again.ages, pop.ages)
    np.testing.assert_array_equal(again.graph.senders, pop.graph.senders)
    np.testing.assert_array_equal(again.graph.receivers, pop.graph.receivers)
    np.testing.assert_array_equal(again.groups["workplace"], pop.groups["workplace"])
    assert load_population(tmp_path / "population.npz").graph.n_edges == pop.graph.n_edges
    small = hybrid_population(2000, key=1)
    traj = ag.simulate(SEIRM(small), None, jax.random.key(0), 10)
    assert np.all(np.isfinite(traj.observables["infected"]))


def test_bad_populations_fail_with_one_line(tmp_path):
    with pytest.raises(PopulationError, match="class_size"):
        hybrid_population(100, class_size=1)
    with pytest.raises(PopulationError, match="employment"):
        hybrid_population(100, employment=1.5)
    bad = tmp_path / "population.npz"
    bad.write_bytes(b"nonsense")
    with pytest.raises(PopulationError, match="cannot read"):
        load_population(tmp_path)
    np.savez(
        open(bad, "wb"),
        ages=np.arange(3),
        indptr=np.array([0, 1, 2, 2]),
        neighbours=np.array([1, 7], np.int32),
    )
    with pytest.raises(PopulationError, match=r"contact ids must be in \[0, 3\)"):
        load_population(bad)
    np.savez(
        open(bad, "wb"),
        ages=np.arange(3),
        indptr=np.array([0, 1]),
        neighbours=np.array([1], np.int32),
    )
    with pytest.raises(PopulationError, match="indptr"):
        load_population(bad)


def test_population_synthesize_hybrid_binary(tmp_path):
    from typer.testing import CliRunner

    from agentgrad.cli import app

    args = ["population", "synthesize", "--agents", "3000", "--structure", "hybrid"]
    result = CliRunner().invoke(app, [*args, "--binary", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    pop = load_population(tmp_path)
    assert pop.ages.size == 3000 and set(pop.groups) == {"household", "class", "workplace"}
    result = CliRunner().invoke(app, [*args, "--mean-degree", "4", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "--structure er only" in result.output
