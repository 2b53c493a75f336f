"""Command line: listing, running, outputs, and every bad-input case (exit code 2)."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from typer.testing import CliRunner

from agentgrad.cli import app

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, list(args))


def test_models_lists_models_and_parameters():
    result = invoke("models")
    assert result.exit_code == 0
    for text in ("sir-network", "sirs-grid", "quarantine_compliance", "p_wane"):
        assert text in result.output
    for name in ("amof", "sugarscape", "seirm", "schelling", "predator-prey", "psi4"):
        assert name in result.output


def test_run_writes_netcdf_plot_and_summary(tmp_path):
    out = tmp_path / "run"
    result = invoke(
        "run",
        "sir-network",
        "--agents",
        "500",
        "--steps",
        "12",
        "--runs",
        "5",
        "--batch",
        "2",
        "--graph",
        "watts-strogatz:6:0.1",
        "--param",
        "beta=0.5",
        "--estimator",
        "gs:0.1",
        "--seed",
        "3",
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.output
    ds = xr.open_dataset(out / "observables.nc", engine="h5netcdf")
    assert set(ds.data_vars) == {
        "new_infected",
        "new_recovered",
        "susceptible",
        "infected",
        "recovered",
    }
    assert ds["new_infected"].dims == ("run", "step") and ds["new_infected"].shape == (5, 12)
    assert ds.attrs["param_beta"] == pytest.approx(0.5)
    total = ds["susceptible"] + ds["infected"] + ds["recovered"]
    np.testing.assert_allclose(total.values, 1.0, atol=1e-5)
    # batching does not change results: run r always uses the r-th key
    out2 = tmp_path / "run2"
    invoke(
        "run",
        "sir-network",
        "--agents",
        "500",
        "--steps",
        "12",
        "--runs",
        "5",
        "--batch",
        "5",
        "--graph",
        "watts-strogatz:6:0.1",
        "--param",
        "beta=0.5",
        "--estimator",
        "gs:0.1",
        "--seed",
        "3",
        "--out",
        str(out2),
    )
    ds2 = xr.open_dataset(out2 / "observables.nc", engine="h5netcdf")
    np.testing.assert_array_equal(ds["infected"].values, ds2["infected"].values)
    assert (out / "observables.png").stat().st_size > 1000
    assert "peak of mean" in result.output


def test_run_grid_model_and_edge_list_file(tmp_path):
    result = invoke(
        "run", "sirs-grid", "--grid-size", "12", "--runs", "2", "--out", str(tmp_path / "g")
    )
    assert result.exit_code == 0, result.output
    edges = tmp_path / "edges.txt"
    edges.write_text("\n".join(f"{i} {(i + 1) % 50}" for i in range(50)))
    result = invoke(
        "run",
        "sir-network",
        "--graph",
        f"file:{edges}",
        "--runs",
        "2",
        "--steps",
        "5",
        "--out",
        str(tmp_path / "f"),
    )
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "sir-netwerk"], "unknown model 'sir-netwerk'"),
        (["run", "sir-network", "--param", "betta=0.3"], "unknown parameter 'betta'"),
        (["run", "sir-network", "--param", "beta"], "must look like name=value"),
        (["run", "sir-network", "--param", "beta=abc"], "is not a number"),
        (["run", "sir-network", "--param", "gamma=-1"], "outside its bounds"),
        (["run", "sir-network", "--param", "initial_infected=1.5"], "outside its bounds"),
        (["run", "sir-network", "--agents", "0"], "--agents must be a positive integer"),
        (["run", "sir-network", "--steps", "-5"], "--steps must be a positive integer"),
        (["run", "sir-network", "--runs", "0"], "--runs and --batch must be positive"),
        (["run", "sir-network", "--graph", "file:/no/such/file"], "cannot read graph file"),
        (["run", "sir-network", "--graph", "lattice"], "unknown graph 'lattice'"),
        (["run", "sir-network", "--graph", "erdos-renyi:x"], "arguments must be numbers"),
        (["run", "sir-network", "--estimator", "magic"], "unknown estimator 'magic'"),
        (["run", "sir-network", "--grid-size", "10"], "--grid-size does not apply"),
        (["run", "sirs-grid", "--graph", "complete"], "--graph does not apply"),
        (["run", "sirs-grid", "--grid-size", "3", "--agents", "20"], "does not fit"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(tmp_path, args, message):
    result = invoke(*args, "--out", str(tmp_path / "x"))
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_bad_graph_file_content(tmp_path):
    f = tmp_path / "bad.txt"
    f.write_text("0 1\n1 two\n")
    result = invoke("run", "sir-network", "--graph", f"file:{f}", "--out", str(tmp_path / "x"))
    assert result.exit_code == 2 and ":2: expected two integer node ids" in result.output


SMALL = ["--graph", "complete", "--agents", "500", "--steps", "15"]


def test_gradcheck_end_to_end(tmp_path):
    import pandas as pd

    out = tmp_path / "gc"
    result = invoke(
        "gradcheck",
        "sir-network",
        "--estimators",
        "st,gs:0.1",
        "--runs",
        "4",
        "--params",
        "beta,gamma",
        "--observable",
        "new_infected",
        *SMALL,
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out / "gradcheck.csv")
    assert list(table.columns) == [
        "estimator",
        "parameter",
        "step",
        "ad_mean",
        "ad_se",
        "fd_mean",
        "fd_se",
        "ad_nonzero_runs",
        "z",
    ]
    assert len(table) == 2 * 2 * 15
    assert set(table["estimator"]) == {"st", "gs:0.1"}
    assert (out / "gradcheck.png").stat().st_size > 1000
    assert "max |z|" in result.output


def test_gradcheck_expect_unbiased_exit_code(tmp_path):
    # no-gradient AD estimates are zero while FD is not: flagged as biased -> exit 1
    result = invoke(
        "gradcheck",
        "sir-network",
        "--estimators",
        "none,st",
        "--runs",
        "32",
        "--params",
        "beta",
        "--observable",
        "infected",
        "--graph",
        "complete",
        "--agents",
        "1000",
        "--steps",
        "15",
        "--expect-unbiased",
        "none",
        "--out",
        str(tmp_path / "gc"),
    )
    assert result.exit_code == 1, result.output
    assert "none differ from finite differences" in result.output


def test_sensitivity_end_to_end(tmp_path):
    out = tmp_path / "s"
    result = invoke(
        "sensitivity",
        "sir-network",
        "--observable",
        "new_infected",
        "--runs",
        "3",
        "--mode",
        "reverse",
        *SMALL,
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.output
    ds = xr.open_dataset(out / "sensitivity.nc", engine="h5netcdf")
    assert ds["jacobian"].dims == ("parameter", "step") and ds["jacobian"].shape == (9, 15)
    assert "elasticity" in ds and ds.attrs["mode"] == "reverse"
    assert (out / "sensitivity.png").exists()
    assert (out / "ranking.csv").read_text().startswith("rank,parameter,mean_abs_elasticity")


@pytest.mark.parametrize(
    "args, message",
    [
        (["gradcheck", "sir-network", "--estimators", "st,magic"], "unknown estimator 'magic'"),
        (["gradcheck", "sir-network", "--params", "beta,betta"], "unknown parameter 'betta'"),
        (["gradcheck", "sir-network", "--observable", "deaths"], "unknown observable 'deaths'"),
        (["gradcheck", "sir-network", "--runs", "0"], "must be positive integers"),
        (["gradcheck", "sir-network", "--expect-unbiased", "gs:0.1"], "is not among"),
        (["sensitivity", "sir-network", "--observable", "deaths"], "unknown observable"),
        (["sensitivity", "sir-network", "--runs", "-1"], "--runs must be a positive"),
        (["sensitivity", "sir-network", "--mode", "sideways"], "--mode must be"),
        (["sensitivity", "sir-network", "--params", "nope"], "unknown parameter 'nope'"),
        (["sensitivity", "sir-network", "--estimator", "magic"], "unknown estimator"),
    ],
)
def test_analysis_commands_bad_input(tmp_path, args, message):
    result = invoke(*args, *SMALL, "--out", str(tmp_path / "x"))
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1


CAL = [
    "calibrate",
    "sir-network",
    "--graph",
    "complete",
    "--agents",
    "300",
    "--param",
    "quarantine_compliance=0",
    "--param",
    "initial_infected=0.03",
]


def test_calibrate_synthetic_end_to_end(tmp_path):
    import arviz as az

    out = tmp_path / "cal"
    result = invoke(
        *CAL,
        "--steps",
        "10",
        "--synthetic",
        "beta=0.5,gamma=0.15",
        "--params",
        "beta,gamma",
        "--observables",
        "new_infected",
        "--family",
        "gaussian",
        "--epochs",
        "20",
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.output
    idata = az.from_netcdf(out / "posterior.nc")
    assert set(idata.posterior.data_vars) == {"beta", "gamma"}
    for name in ("training.png", "posterior_pairs.png", "predictive.png", "posterior.eqx"):
        assert (out / name).exists(), name


@pytest.mark.slow
def test_calibrate_from_csv(tmp_path):
    data = tmp_path / "obs.csv"
    data.write_text(
        "new_infected,new_recovered\n"
        + "\n".join(f"{0.01 * (i + 1)},{0.005 * i}" for i in range(8))
    )
    result = invoke(
        *CAL,
        "--data",
        str(data),
        "--params",
        "beta",
        "--family",
        "gaussian",
        "--epochs",
        "5",
        "--out",
        str(tmp_path / "c"),
    )
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    "content, message",
    [
        ("new_infected,deaths\n0.1,0.2\n", "unknown column 'deaths'"),
        ("new_infected\n0.1\nabc\n", "obs.csv:3: 'abc' is not a number"),
        ("new_infected\n0.1\nnan\n", "is not finite"),
        ("new_infected,infected\n0.1\n", "expected 2 values"),
        ("new_infected\n", "at least one row"),
    ],
)
def test_calibrate_bad_csv(tmp_path, content, message):
    data = tmp_path / "obs.csv"
    data.write_text(content)
    result = invoke(*CAL, "--data", str(data), "--out", str(tmp_path / "c"))
    assert result.exit_code == 2, result.output
    assert message in result.output and len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "exactly one of --data"),
        (["--synthetic", "beta=0.5", "--loss", "l1"], "unknown loss 'l1'"),
        (["--synthetic", "beta=0.5", "--gradient", "magic"], "gradient must be"),
        (["--synthetic", "beta=0.5", "--params", "betta"], "unknown parameter 'betta'"),
        (["--synthetic", "beta=0.5", "--epochs", "0"], "--epochs must be a positive"),
        (["--synthetic", "beta=0.5", "--observables", "deaths"], "unknown observable"),
    ],
)
def test_calibrate_bad_input(tmp_path, args, message):
    result = invoke(*CAL, *args, "--out", str(tmp_path / "c"))
    assert result.exit_code == 2, result.output
    assert message in result.output and len(result.output.strip().splitlines()) == 1


@pytest.mark.slow
def test_gradcheck_model_without_random_draws(tmp_path):
    """Draw-free models (AMOF) default to their own surrogate ('model'); asking for a
    random-draw estimator is a one-line error."""
    out = tmp_path / "g"
    common = ("--agents", "60", "--steps", "2", "--runs", "2", "--params", "alpha_theta")
    res = invoke("gradcheck", "amof", *common, "--out", str(out))
    assert res.exit_code == 0, res.output
    assert set(pd.read_csv(out / "gradcheck.csv").estimator) == {"model"}
    res = invoke("gradcheck", "amof", *common, "--estimators", "st", "--out", str(out))
    assert res.exit_code == 2 and "it has no random draws (use model)" in res.output


def test_seirm_population_directory(tmp_path):
    from agentgrad.models.population import synthetic_population

    synthetic_population(300, key=1).save(tmp_path / "pop")
    out = tmp_path / "o"
    res = invoke(
        "run", "seirm", "--population", str(tmp_path / "pop"), "--steps", "5", "--out", str(out)
    )
    assert res.exit_code == 0, res.output
    assert "new_dead" in xr.open_dataset(out / "observables.nc")
    (tmp_path / "pop" / "ages.csv").write_text("age\n-3\n")
    res = invoke("run", "seirm", "--population", str(tmp_path / "pop"), "--out", str(out))
    assert res.exit_code == 2 and "ages.csv:2" in res.output
    res = invoke("run", "schelling", "--population", str(tmp_path / "pop"))
    assert res.exit_code == 2 and "does not apply" in res.output


def test_gradcheck_sirs_grid_reports_the_relaxed_check(tmp_path):
    """gradcheck on sirs-grid uses the model's gs:0.05 and adds the relaxed-FD table."""
    out = tmp_path / "gc"
    result = runner.invoke(
        app,
        [
            "gradcheck",
            "sirs-grid",
            "--grid-size",
            "12",
            "--agents",
            "100",
            "--steps",
            "8",
            "--runs",
            "4",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "relaxed simulator" in result.output
    relaxed = pd.read_csv(out / "gradcheck_relaxed.csv")
    assert set(relaxed["estimator"]) == {"gs:0.05"}
    assert relaxed.groupby("parameter")["rel_error"].min().max() <= 1e-4
    assert (out / "gradcheck.csv").exists()


def test_command_line_uses_a_persistent_compilation_cache(monkeypatch, tmp_path):
    import jax

    from agentgrad.cli import enable_compilation_cache

    before = jax.config.jax_compilation_cache_dir
    monkeypatch.setenv("AGENTGRAD_CACHE_DIR", "off")
    assert enable_compilation_cache() is None
    monkeypatch.setenv("AGENTGRAD_CACHE_DIR", str(tmp_path / "cache"))
    try:
        assert enable_compilation_cache() == tmp_path / "cache"
        assert jax.config.jax_compilation_cache_dir == str(tmp_path / "cache")
    finally:
        jax.config.update("jax_compilation_cache_dir", before)
