"""SchellingAgents: the GDN reference code's rules (neighbourhood on the 51-cycle with
co-located agents, isolated agents stay, moves to any other cell with period-50 wrap),
the three regimes of xi, its agent view, and the mean trajectories against the
reference code's (``benchmarks/schelling_reference.py``)."""

import csv
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import agentgrad as ag
from agentgrad.metrics import smape
from agentgrad.models import SchellingAgents
from agentgrad.models.schelling_agents import XI, SchellingAgentsState, wrap

REFERENCE = Path(__file__).parent / "data" / "schelling_reference.csv"


def brute_force_counts(colour, x, y):
    n = len(x)
    like, total = np.zeros(n), np.zeros(n)
    for i in range(n):
        for j in range(n):
            if i == j:
                continue
            nx = (np.abs(x[i] - x[j]) <= 1) | ({x[i], x[j]} == {25, -25})
            ny = (np.abs(y[i] - y[j]) <= 1) | ({y[i], y[j]} == {25, -25})
            if (x[i] == x[j] and ny) or (y[i] == y[j] and nx):
                total[i] += 1
                like[i] += colour[i] == colour[j]
    return like, total


def random_state(n=60, seed=0):
    rng = np.random.default_rng(seed)
    # crowd agents into a corner so that co-located agents, wrap-around neighbours and
    # isolated agents all occur
    x = rng.choice([-25, -24, 24, 25, 0, 10], n)
    y = rng.choice([-25, -24, 25, 3, 4], n)
    x[:3], y[:3] = [-10, 15, -5], [-10, -15, 20]  # three isolated agents
    colour = rng.integers(0, 2, n)
    return SchellingAgentsState(*(jnp.asarray(v, jnp.int32) for v in (colour, x, y)))


def test_neighbour_counts_match_the_reference_rule():
    s = random_state()
    like, total = SchellingAgents().neighbour_counts(s)
    ref_like, ref_total = brute_force_counts(*(np.asarray(v) for v in (s.colour, s.x, s.y)))
    np.testing.assert_array_equal(np.asarray(total), ref_total)
    np.testing.assert_array_equal(np.asarray(like), ref_like)


def test_wrap_is_the_reference_toroid():
    def toroid(v):
        return (v if v <= 25 else v - 50) if v >= -25 else v + 50

    values = np.arange(-75, 76)
    np.testing.assert_array_equal(wrap(jnp.asarray(values)), [toroid(v) for v in values])


def test_movement_rules():
    """Isolated and happy agents stay; unhappy agents leave their cell; all stay in
    [-25, 25]."""
    model = SchellingAgents()
    s = random_state(seed=1)
    params = {"threshold": 0.75}
    like, total = (np.asarray(v) for v in model.neighbour_counts(s))
    unhappy = (total > 0) & (like / np.maximum(total, 1) < 0.75)
    new = model.step(s, params, jax.random.key(0), 0.0)
    moved = (np.asarray(new.x) != np.asarray(s.x)) | (np.asarray(new.y) != np.asarray(s.y))
    np.testing.assert_array_equal(moved, unhappy)
    assert unhappy.any() and (~unhappy & (total == 0)).any() and (~unhappy & (total > 0)).any()
    for v in (new.x, new.y):
        assert -25 <= int(v.min()) and int(v.max()) <= 25
    np.testing.assert_array_equal(new.colour, s.colour)


def test_regimes():
    """xi = 0.625 segregates quickly (>= 95% happy by step 20), 0.75 later (>= 85% by
    step 25), 0.875 never settles (< 30% happy at step 25)."""
    model = SchellingAgents()
    happy = {
        name: np.asarray(
            ag.simulate(model, {"threshold": xi}, jax.random.key(0), 25).observables["happy"]
        )
        / model.n_agents
        for name, xi in XI.items()
    }
    assert happy["xi1"][19] >= 0.95
    assert happy["xi2"][24] >= 0.85 and happy["xi2"][4] < 0.6
    assert happy["xi3"][24] < 0.3


@pytest.mark.parametrize("name", list(XI))
def test_mean_trajectories_match_the_reference(name):
    """Mean of 10 runs (30 steps) against the reference code's mean of 10 runs: sMAPE of
    the happy count < 0.08 and of the segregation < 0.05."""
    with REFERENCE.open() as f:
        rows = [r for r in csv.DictReader(f) if r["xi"] == name]
    model, params = SchellingAgents(), {"threshold": XI[name]}
    traj = ag.ensemble(model, params, jax.random.key(11), len(rows) - 1, 10).observables
    for k, tol in (("happy", 0.08), ("segregation", 0.05)):
        ref = np.array([float(r[f"{k}_mean"]) for r in rows])[1:]
        assert smape(ref, np.asarray(traj[k]).mean(0)) < tol, k


def test_agent_view():
    """Features as the reference featurizer (colour one-hot, x/25, y/25); neighbour sums
    over the Moore neighbourhood on the 51-torus with co-located agents; positions
    round-trip through with_dynamic."""
    model = SchellingAgents()
    s = random_state(seed=2)
    static, dynamic = model.agent_features(s)
    np.testing.assert_allclose(dynamic * 25, np.stack([s.x, s.y], 1))
    x = jax.random.normal(jax.random.key(0), (60, 3))
    got = np.asarray(model.neighbour_sum(s, x))
    px, py = np.asarray(s.x) + 25, np.asarray(s.y) + 25
    dx = np.abs(px[:, None] - px[None])
    dy = np.abs(py[:, None] - py[None])
    dx, dy = np.minimum(dx, 51 - dx), np.minimum(dy, 51 - dy)
    adj = (dx <= 1) & (dy <= 1) & ~np.eye(60, dtype=bool)
    np.testing.assert_allclose(got, adj.astype(float) @ np.asarray(x), atol=1e-5)
    back = model.with_dynamic(s, dynamic)
    np.testing.assert_array_equal(back.x, s.x)
    np.testing.assert_array_equal(back.y, s.y)


def test_bad_configuration():
    with pytest.raises(ValueError, match="density"):
        SchellingAgents(density=0.0)
    with pytest.raises(ValueError, match="max_trials"):
        SchellingAgents(max_trials=0)
