"""Every example script runs."""

import runpy
import sys

import numpy as np
import pytest


def test_quickstart_example(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["quickstart", "2000"])
    runpy.run_path("examples/sir_network_quickstart.py", run_name="__main__")
    out = capsys.readouterr().out
    assert "peak daily new infections" in out
    assert out.count("d total_infections / d") == 9
    value = float(out.split("d beta")[1].split("=")[1].split()[0])
    assert value == pytest.approx(value) and value != 0.0


def test_random_walk_example(capsys):
    runpy.run_path("examples/random_walk.py", run_name="__main__")
    lines = capsys.readouterr().out.splitlines()
    st = float(lines[0].split("=")[1].split()[0])
    fd = float(lines[2].split("=")[1].split()[0])
    assert st == pytest.approx(50.0, rel=1e-4)  # straight-through is exact for a linear walk
    assert fd == pytest.approx(50.0, rel=0.1)


def test_estimator_comparison_example(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(
        sys,
        "argv",
        ["x", "--agents", "200", "--steps", "5", "--runs", "64", "--out", str(tmp_path)],
    )
    runpy.run_path("examples/sir_estimator_comparison.py", run_name="__main__")
    assert (tmp_path / "estimator_comparison.png").stat().st_size > 1000
    out = capsys.readouterr().out
    assert "StochasticDerivative" in out and "max_abs_z" in out


@pytest.mark.slow
def test_calibrate_paper_example(monkeypatch, capsys, tmp_path):
    """examples/calibrate_paper.py: both estimators on the 9-parameter SIR (tiny run)."""
    monkeypatch.setattr(
        sys, "argv", ["x", "--quick", "--models", "sir", "--epochs", "3", "--out", str(tmp_path)]
    )
    runpy.run_path("examples/calibrate_paper.py", run_name="__main__")
    for name in ("loss", "pathwise_pairs", "vargrad_pairs", "pathwise_predictive"):
        assert (tmp_path / f"paper_sir_{name}.png").stat().st_size > 1000
    out = capsys.readouterr().out
    assert "sir pathwise" in out and "sir vargrad" in out
    assert out.count("covers") == 18  # 9 parameters x 2 estimators


@pytest.mark.slow  # run by .ci/run
def test_firms_sugarscape_example(monkeypatch, capsys, tmp_path):
    args = [
        "--firm-agents",
        "60",
        "--firm-steps",
        "2",
        "--sugar-size",
        "8",
        "--sugar-agents",
        "10",
        "--sugar-steps",
        "2",
        "--runs",
        "4",
        "--out",
        str(tmp_path),
    ]
    monkeypatch.setattr(sys, "argv", ["x", *args])
    runpy.run_path("examples/firms_sugarscape_gradients.py", run_name="__main__")
    for name in ("amof", "sugarscape"):
        assert (tmp_path / f"{name}_gradcheck.png").stat().st_size > 1000
    out = capsys.readouterr().out
    assert "alpha_theta" in out and "p_vision_high" in out


def test_nca_morphogenesis_example(capsys, tmp_path):
    """examples/nca_morphogenesis.py --quick: the loss falls (3.3x in 60 steps when
    written; the full run's 10x is in docs/benchmarks.md) and the figure is drawn."""
    module = runpy.run_path("examples/nca_morphogenesis.py")
    result = module["main"](["--quick", "--out", str(tmp_path / "nca")])
    assert result["first"] > 2.0 * result["last"]
    assert (tmp_path / "nca.png").stat().st_size > 1000
    assert (tmp_path / "nca.gif").stat().st_size > 1000
    assert "agent-steps/s" in capsys.readouterr().out


def test_opinion_dynamics_example(capsys, tmp_path):
    """examples/opinion_dynamics.py --quick: the training return rises, the learned
    tendencies beat every shared fixed tendency on held-out keys, and poor judges of
    quality learn to follow more than good judges."""
    module = runpy.run_path("examples/opinion_dynamics.py")
    out = module["main"](["--quick", "--out", str(tmp_path / "od")])
    returns = out["returns"]
    assert returns[-5:].mean() > returns[:5].mean()
    assert out["learned"] > max(out["baselines"]["same"].values())
    f, novice = out["tendency"], out["novice"]
    assert f[novice].mean() > f[~novice].mean() + 0.3
    assert (tmp_path / "od.png").stat().st_size > 1000


@pytest.mark.slow
def test_vaccination_delay_example(tmp_path):
    """examples/vaccination_delay.py --quick: calibration recovers the transmission, a
    later start costs infections, and the AD gradient in the start day agrees with the
    finite-difference slopes between neighbouring delays (mean of the AD values at the
    two ends, within 25% of the largest AD value; measured: within 1.3 of ~10.2). The quick
    grid starts at day 5: at day 0 the derivative is one-sided (see the example's
    docstring)."""
    module = runpy.run_path("examples/vaccination_delay.py")
    out = module["main"](["--quick", "--out", str(tmp_path / "vd")])
    assert abs(out["fitted"] - 0.15) < 0.03
    assert np.all(np.diff(out["means"]) > 0)
    ad = np.array(list(out["ad"].values()))
    np.testing.assert_allclose(out["slopes"], 0.5 * (ad[1:] + ad[:-1]), atol=0.25 * ad.max())
    assert (tmp_path / "vd.png").stat().st_size > 1000


@pytest.mark.slow
def test_county_forecast_example():
    """examples/county_forecast.py --quick: all three methods train through the counties'
    ABMs (finite losses, and training changes the loss on fixed keys) and report finite
    forecast errors. Quick mode cannot show the loss falling: with 2 runs of 200-300
    agents the gradient noise dominates 15 iterations (measured on fixed keys: a 0.433 ->
    0.426, b 0.441 -> 0.385, c 0.401 -> 0.474); the full run's table is in the docs."""
    module = runpy.run_path("examples/county_forecast.py")
    out = module["main"](["--quick", "--seeds", "1"])
    for method, rows in out["table"].items():
        assert np.all(np.isfinite(out["losses"][method][0])), method
        before, after = out["before_after"][method][0]
        assert np.isfinite(after) and after != before, method
        assert all(np.isfinite(v) for v in rows[0].values())


@pytest.mark.slow
def test_model_gallery_example(monkeypatch, tmp_path):
    from PIL import Image

    monkeypatch.setattr(sys, "argv", ["x", "--quick", "--out", str(tmp_path)])
    runpy.run_path("examples/model_gallery.py", run_name="__main__")
    for name in ("sirs-grid", "schelling"):
        assert (tmp_path / f"{name}.png").stat().st_size > 1000
        with Image.open(tmp_path / f"{name}.gif") as gif:
            assert gif.n_frames == 5  # the initial state and 4 steps (--quick)
    assert (tmp_path / "sir-network.png").stat().st_size > 1000


@pytest.mark.slow
def test_surrogate_calibration_example(tmp_path):
    """examples/surrogate_calibration.py --quick (smoke run at tiny sizes): trains a
    parameter-conditioned GDN, evaluates the loss grid, the pathwise, score-function and
    central-difference gradients, both descents and the initial-state gradients;
    everything finite and Theta stays in its range."""
    module = runpy.run_path("examples/surrogate_calibration.py")
    out = module["main"](["--quick", "--out", str(tmp_path / "sc")])
    assert np.all(np.isfinite(np.asarray(out["scan"])))
    assert np.all(np.isfinite(np.asarray(out["checks"])))
    assert len(out["score_checks"]) == 1 and np.all(np.isfinite(out["score_checks"]))
    for path in out["paths"].values():
        assert all(0.05 <= v <= 0.95 for v in path)
    assert np.all(np.isfinite(out["initial_gradient"])) and len(out["removal"]) == 3
    assert (tmp_path / "sc" / "surrogate_calibration.npz").stat().st_size > 0
