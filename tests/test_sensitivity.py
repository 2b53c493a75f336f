"""One-shot sensitivity: forward = reverse, ranking stability, FD comparison."""

import jax
import numpy as np
import pytest

import agentgrad as ag
from agentgrad.sensitivity import choose_mode, ranking, sensitivity


@pytest.fixture(scope="module")
def model():
    return ag.models.SIRNetwork(graph=ag.graphs.complete(3000))


@pytest.mark.slow
def test_forward_and_reverse_agree(model):
    key = jax.random.key(0)
    fwd = sensitivity(model, None, key, 40, 4, "new_infected", mode="forward")
    rev = sensitivity(model, None, key, 40, 4, "new_infected", mode="reverse")
    ckp = sensitivity(model, None, key, 40, 4, "new_infected", mode="reverse", checkpoint=True)
    assert fwd.attrs["mode"] == "forward" and rev.attrs["mode"] == "reverse"
    scale = np.abs(fwd["jacobian"].values).max()
    np.testing.assert_allclose(fwd["jacobian"].values, rev["jacobian"].values, atol=1e-5 * scale)
    np.testing.assert_allclose(ckp["jacobian"].values, rev["jacobian"].values, atol=1e-5 * scale)
    assert fwd["jacobian"].dims == ("parameter", "step")
    assert fwd["jacobian"].shape == (9, 40)


def test_ranking_dominant_parameter_stable_across_seeds(model):
    tops = []
    for seed in range(3):
        ds = sensitivity(model, None, jax.random.key(seed), 40, 8, "infected")
        tops.append(ranking(ds)[0][0])
        assert sorted(ds["rank"].values.tolist()) == list(range(1, 10))
    assert tops == ["beta"] * 3


def test_elasticity_definition_and_fd_comparison(model):
    ds = sensitivity(
        model,
        {"quarantine_compliance": 0.0},
        jax.random.key(1),
        30,
        16,
        "infected",
        parameters=["beta", "gamma"],
        compare_fd=True,
    )
    assert ds.attrs["ad_simulations"] == 16 and ds.attrs["fd_simulations"] == 64
    beta = float(ds["parameter_value"].sel(parameter="beta"))
    expected = beta * ds["jacobian"].sel(parameter="beta") / ds["value"]
    np.testing.assert_allclose(ds["elasticity"].sel(parameter="beta"), expected, rtol=1e-5)
    for name in ("beta", "gamma"):
        ad = ds["jacobian"].sel(parameter=name).values
        fd = ds["fd_jacobian"].sel(parameter=name).values
        assert np.linalg.norm(ad - fd) < 0.15 * np.linalg.norm(fd), name


def test_mode_choice_and_errors(model):
    assert choose_mode(9, 60) == "forward" and choose_mode(100, 60) == "reverse"
    assert choose_mode(9, 60, "reverse") == "reverse"
    with pytest.raises(ag.AgentgradError, match="mode must be"):
        choose_mode(9, 60, "both")
    with pytest.raises(ag.AgentgradError, match="unknown observable"):
        sensitivity(model, None, jax.random.key(0), 5, 2, "deaths")
