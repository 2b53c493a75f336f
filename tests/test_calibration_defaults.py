"""Calibration with default settings (issue 15): recovery, diagnostics, SBI, bad input."""

import json

import jax
import numpy as np
import pytest

import agentgrad as ag
from agentgrad.calibration import GVI, calibrate
from agentgrad.calibration.losses import SyntheticLikelihood, effective_dimension
from agentgrad.cli import app


def _cli(*args):
    from typer.testing import CliRunner

    return CliRunner().invoke(app, [str(a) for a in args])


def _check_recovery(out, truth):
    """90% intervals contain the truth, means within 25%, contraction > 50%."""
    import arviz as az

    idata = az.from_netcdf(out / "posterior.nc")
    diagnostics = json.loads((out / "diagnostics.json").read_text())
    for name, value in truth.items():
        draws = idata.posterior[name].values.ravel()
        lo, hi = np.percentile(draws, [5, 95])
        assert lo <= value <= hi, (name, lo, hi)
        assert abs(draws.mean() - value) <= 0.25 * value, (name, draws.mean())
        assert diagnostics["contraction"][name] > 0.5, (name, diagnostics["contraction"])
    assert {"posterior", "posterior_predictive", "observed_data"} <= set(idata.groups())


@pytest.mark.slow
def test_defaults_recover_sir_network(tmp_path):
    """The issue's command without --loss/--epochs/--kl-weight (truth beta 0.3, gamma 0.08)."""
    out = tmp_path / "cal"
    result = _cli(
        "calibrate",
        "sir-network",
        "--graph",
        "complete",
        "--agents",
        2000,
        "--steps",
        40,
        "--synthetic",
        "beta=0.3,gamma=0.08",
        "--params",
        "beta,gamma",
        "--out",
        out,
    )
    assert result.exit_code == 0, result.output
    assert "contraction" in result.output
    _check_recovery(out, {"beta": 0.3, "gamma": 0.08})


@pytest.mark.slow
def test_defaults_recover_sirs_grid(tmp_path):
    """Table 1 of ad-vs-sbi: 40x40 grid, 20 steps, theta* = (0.6, 0.3, 0.1)."""
    out = tmp_path / "cal"
    truth = {"p_infect": 0.6, "p_recover": 0.3, "p_wane": 0.1}
    result = _cli(
        "calibrate",
        "sirs-grid",
        "--synthetic",
        "p_infect=0.6,p_recover=0.3,p_wane=0.1",
        "--params",
        "p_infect,p_recover,p_wane",
        "--out",
        out,
    )
    assert result.exit_code == 0, result.output
    _check_recovery(out, truth)


def test_uninformed_parameter_is_reported(calibrate_uninformed):
    """distancing_start has no effect when distancing_factor = 1: its posterior is no
    narrower than the family reaches with no data (< 10%) and the diagnostics say so."""
    post = calibrate_uninformed(GVI(family="gaussian", epochs=150), jax.random.key(0))
    contraction = post.diagnostics["contraction_vs_no_data"]
    assert contraction["distancing_start"] < 0.1, contraction
    assert contraction["beta"] > 0.5, contraction
    warnings = post.diagnostics["warnings"]
    assert any("did not inform distancing_start" in w for w in warnings), warnings
    assert not any("inform beta" in w for w in warnings), warnings


def test_synthetic_likelihood_is_scale_free():
    """Rescaling the observables (fractions -> counts) shifts the loss by a constant."""
    x = {"a": jax.random.normal(jax.random.key(0), (4, 10)) + 2.0}
    y = {"a": jax.numpy.linspace(1.0, 3.0, 10)}
    loss = SyntheticLikelihood()
    c = 1000.0
    shift = float(loss({"a": c * x["a"]}, {"a": c * y["a"]}) - loss(x, y))
    assert shift == pytest.approx(10 * np.log(c), rel=1e-3)  # only log(2 pi s2) moves
    assert float(SyntheticLikelihood(0.25)(x, y)) == pytest.approx(0.25 * float(loss(x, y)))


def test_effective_dimension():
    """Participation ratio: one shared mode -> 1; independent noise -> about the size."""
    rng = np.random.default_rng(0)
    shared = rng.normal(size=(200, 1)) * np.ones((1, 30))
    assert effective_dimension(shared)[0] == pytest.approx(1.0, abs=1e-6)
    d, n = effective_dimension(np.c_[rng.normal(size=(4000, 5)), np.zeros((4000, 2))])
    assert n == 5 and d == pytest.approx(5.0, rel=0.05)


def test_budget_counts_runs_and_minimum():
    model = ag.models.SIRSGrid(size=10, n_agents=60, n_infected=6, n_recovered=3)
    obs = ag.simulate(model, model.param_space.defaults(), jax.random.key(1), 5).observables
    method = GVI(family="gaussian")
    with pytest.raises(ag.AgentgradError, match=f"at least {method.minimum_budget()}"):
        calibrate(model, obs, jax.random.key(0), method, budget=10)
    post = calibrate(model, obs, jax.random.key(0), method, budget=32 + 20 * 7)
    assert post.history["simulations"] == 32 + 20 * 7
    assert len(post.history["train"]) == 7
    with pytest.raises(ag.AgentgradError, match="method object"):
        calibrate(model, obs, jax.random.key(0), method, loss="mse")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--method", "mcmc"], "unknown method 'mcmc'"),
        (["--budget", "0"], "--budget must be a positive integer"),
        (["--budget", "5"], "needs at least"),
        (["--method", "abc", "--loss", "mse"], "--loss does not apply to --method abc"),
        (["--method", "npe", "--alpha", "0.5"], "--alpha does not apply to --method npe"),
        (["--particles", "10"], "--particles does not apply to --method gvi"),
        (["--alpha", "1.5", "--method", "snvi"], "--alpha must be in (0, 1)"),
        (["--kl-weight", "inf"], "finite"),
        (["--learning-rate", "nan"], "finite"),
        (["--loss", "l1"], "unknown loss"),
    ],
)
def test_calibrate_method_errors(tmp_path, args, message):
    out = tmp_path / "c"
    result = _cli("calibrate", "sirs-grid", "--synthetic", "p_infect=0.6", *args, "--out", out)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not out.exists() or not any(out.iterdir())


def test_missing_sbi_extra_gives_an_install_hint(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "sbi", None)  # import sbi -> ImportError
    result = _cli(
        "calibrate",
        "sirs-grid",
        "--synthetic",
        "p_infect=0.6",
        "--method",
        "npe",
        "--out",
        tmp_path / "c",
    )
    assert result.exit_code == 2
    assert 'pip install "agentgrad[sbi]"' in result.output


TRUTH = {"p_infect": 0.6, "p_recover": 0.3, "p_wane": 0.1}


def _small_grid_problem():
    model = ag.models.SIRSGrid(size=12, n_agents=100, n_infected=12, n_recovered=6)
    full = model.param_space.complete(TRUTH)
    obs = ag.simulate(model, full, jax.random.key(1), 8).observables
    return model, {k: np.asarray(v) for k, v in obs.items()}


@pytest.mark.parametrize(
    "method",
    [
        pytest.param("NPE", id="npe", marks=pytest.mark.slow),
        pytest.param("SNVI", id="snvi", marks=pytest.mark.slow),
    ],
)
def test_sbi_methods_run_end_to_end(method, tmp_path):
    """Tiny budget (80 runs), small grid: the method runs, spends exactly its budget, returns the
    common posterior (samples, log_prob, InferenceData, diagnostics, save/load)."""
    pytest.importorskip("sbi")
    from agentgrad.calibration import sbi

    model, observed = _small_grid_problem()
    settings = {"vi_iterations": 50} if method == "SNVI" else {}
    post = calibrate(
        model, observed, jax.random.key(0), getattr(sbi, method)(**settings), budget=80
    )
    assert post.history["simulations"] == 80
    assert post.history["summary"]["observables"] == ["infected", "recovered"]  # S dropped
    draws = post.sample(jax.random.key(1), 200)
    for name in TRUTH:
        assert draws[name].shape == (200,)
        assert bool(np.all((draws[name] >= 0) & (draws[name] <= 1)))
    assert np.all(np.isfinite(np.asarray(post.log_prob({k: draws[k][:5] for k in draws}))))
    assert set(post.diagnostics["contraction"]) == set(TRUTH)
    post.save(tmp_path / "p.pt")
    again = sbi.SBIPosterior.load(tmp_path / "p.pt", model)
    assert set(again.sample(jax.random.key(2), 3)) == set(TRUTH)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["NPE", "NRE", "SNPE", "SNLE", "SNVI", "ABC"])
def test_sbi_methods_recover_the_truth(method):
    """Moderate budget on the default 40x40 sirs-grid: theta* inside the 90% interval.

    NLE is left out: at seed 0 its 90% intervals miss theta* at 1000 runs (p_infect
    [0.606, 0.669], p_recover [0.257, 0.291]) and at 2000 (p_recover [0.250, 0.281],
    p_wane [0.056, 0.079]): sbi's NLE is over-confident on these 40-point series.
    """
    pytest.importorskip("sbi")
    from agentgrad.calibration import sbi

    model = ag.models.SIRSGrid()
    obs = ag.simulate(model, model.param_space.complete(TRUTH), jax.random.key(1), 20)
    observed = {k: np.asarray(v) for k, v in obs.observables.items()}
    budget = 2000 if method == "ABC" else 1000
    post = calibrate(model, observed, jax.random.key(0), getattr(sbi, method)(), budget=budget)
    draws = post.sample(jax.random.key(1), 2000)
    for name, value in TRUTH.items():
        lo, hi = np.percentile(np.asarray(draws[name]), [5, 95])
        assert lo <= value <= hi, (method, name, lo, hi)


@pytest.mark.slow
def test_ad_vs_sbi_benchmark_quick(tmp_path):
    """benchmarks/ad_vs_sbi.py --quick: every method at two budgets, NLPD finite, figure."""
    import csv
    import subprocess
    import sys

    results = tmp_path / "ad.csv"
    done = subprocess.run(
        [sys.executable, "benchmarks/ad_vs_sbi.py", "--quick", "--results", str(results)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rows = list(csv.DictReader(results.open()))
    reference = [r for r in rows if r["method"] == "truth"]
    rows = [r for r in rows if r["method"] != "truth"]
    assert len(reference) == 1 and len(rows) == 12  # 6 methods x 2 budgets x 1 seed
    for row in rows:
        assert np.isfinite(float(row["nlpd"])), row
        assert int(float(row["runs_used"])) <= int(row["budget"]), row
    assert results.with_suffix(".png").stat().st_size > 1000
    assert "| uniform | snvli |" in done.stdout
