"""Issue 13: bad input per command (exit 2, one ``error:`` line, no traceback, nothing
computed or half-written), output safety, provenance, discoverability and plugins."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from typer.testing import CliRunner

from agentgrad import cli as cli_module
from agentgrad.cli import app

runner = CliRunner()
SMALL = ["--agents", "200", "--steps", "4"]


def invoke(*args, env=None):
    return runner.invoke(app, [str(a) for a in args], env=env)


def assert_one_line_error(result, message, code=2):
    assert result.exit_code == code, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert message in lines[0], lines[0]
    assert "Traceback" not in result.output


@pytest.fixture
def no_compute(monkeypatch):
    """Fail the test if any simulation starts (checks must come first)."""
    import importlib

    def boom(*a, **k):
        raise AssertionError("computation started before the input was checked")

    # import everything first: a module imported while simulate is patched would keep boom
    import agentgrad.calibration  # noqa: F401
    import agentgrad.plotting  # noqa: F401
    import agentgrad.sensitivity  # noqa: F401

    for module, name in [
        ("agentgrad.engine", "ensemble"),
        ("agentgrad.engine", "map_key_batches"),
        ("agentgrad.engine", "simulate"),
        ("agentgrad.gradients", "compare_estimators"),
        ("agentgrad.sensitivity", "sensitivity"),
        ("agentgrad.calibration", "calibrate"),
    ]:
        monkeypatch.setattr(importlib.import_module(module), name, boom)


def _ring(path, n=20):
    path.write_text("\n".join(f"{i} {(i + 1) % n}" for i in range(n)) + "\n")
    return path


BAD = [
    # usage errors from typer itself
    (["run", "sir-network", "--agents", "2.5"], "Invalid value for '--agents'"),
    (["run"], "Missing argument"),
    (["run", "sir-network", "--no-such-option"], "No such option"),
    (["gradcheck", "sir-network", "--runs", "x"], "Invalid value for '--runs'"),
    # sizes
    (["run", "sir-network", "--agents", "1000000000"], "needs about"),
    (["run", "sir-network", "--runs", "1000000000", "--agents", "200"], "needs about"),
    (["run", "seirm", "--agents", "1000000000"], "needs about"),
    (["run", "schelling", "--grid-size", "100000"], "is too large"),
    (["run", "sir-network", "--agents", "3000000000"], "is too large"),
    # silently accepted before
    (["run", "amof", "--estimator", "st"], "--estimator does not apply to amof"),
    (["run", "schelling", "--estimator", "gs:0.1"], "no random draws"),
    (["run", "sir-network", "--out", ""], "--out is empty"),
    (["run", "sir-network", "--seed", str(2**64)], "--seed must be an integer"),
    (["run", "sir-network", "--seed", "-1"], "--seed must be an integer"),
    (["run", "sir-network", "--param", "beta=0.3", "--param", "beta=0.4"], "given twice"),
    (["gradcheck", "sir-network", *SMALL, "--rel-step", "inf"], "--rel-step must be a finite"),
    (["gradcheck", "amof", "--estimators", "st"], "no random draws"),
    (["sensitivity", "sir-network", "--mode", "forward", "--checkpoint"], "reverse mode only"),
    (["sensitivity", "sir-network", *SMALL, "--observable", "deaths"], "unknown observable"),
    (["calibrate", "sir-network", "--synthetic", "beta=0.3", "--kl-weight", "inf"], "finite"),
    (["calibrate", "sir-network", "--synthetic", "beta=0.3", "--learning-rate", "inf"], "finite"),
    (["calibrate", "sir-network", "--synthetic", "beta=0.3", "--kl-weight", "nan"], "finite"),
    (["calibrate", "sir-network", "--synthetic", "betta=0.3"], "unknown parameter 'betta'"),
    (["calibrate", "sir-network", "--synthetic", "beta=0.3", "--resume"], "no checkpoint"),
    (["population", "synthesize", "--agents", "1"], "--agents must be an integer >= 2"),
    (["population", "synthesize", "--mean-degree", "inf"], "--mean-degree"),
    (["models", "no-such-model"], "unknown model 'no-such-model'"),
    (["run", "nope.py:Model"], "no such file"),
    (["run", "agentgrad.models:NoSuchThing"], "defines no 'NoSuchThing'"),
    (["run", "math:pi"], "neither a Model subclass nor a ModelEntry"),
]


@pytest.mark.parametrize("args, message", BAD)
def test_bad_input_is_one_line_exit_2_before_any_work(tmp_path, no_compute, args, message):
    if "--out" not in args and args[0] not in ("models",):
        args = [*args, "--out", tmp_path / "o"]
    assert_one_line_error(invoke(*args), message)


def test_data_options_that_do_not_apply(tmp_path, no_compute):
    data = tmp_path / "obs.csv"
    data.write_text("new_infected\n0.1\n0.2\n")
    base = ["calibrate", "sir-network", "--data", data, "--out", tmp_path / "c"]
    assert_one_line_error(invoke(*base, "--steps", "5"), "--steps does not apply with --data")
    assert_one_line_error(
        invoke(*base, "--observables", "infected"), "--observables does not apply with --data"
    )
    data.write_text("new_infected,new_infected\n0.1,0.1\n0.2,0.2\n")
    assert_one_line_error(invoke(*base), "appears more than once")


def test_edge_list_ids_checked_against_agents(tmp_path, no_compute):
    ring = _ring(tmp_path / "ring.txt")
    out = ["--out", tmp_path / "o"]
    assert_one_line_error(
        invoke("run", "sir-network", "--graph", f"file:{ring}", "--agents", "5000", *out),
        "omit --agents",
    )
    assert_one_line_error(
        invoke("run", "sir-network", "--graph", f"file:{ring}", "--agents", "10", *out),
        "node ids must be < --agents",
    )
    huge = tmp_path / "huge.txt"
    huge.write_text("0 1\n1 2000000000\n")
    assert_one_line_error(
        invoke("run", "sir-network", "--graph", f"file:{huge}", *out), "needs about"
    )
    neg = tmp_path / "neg.txt"
    neg.write_text("0 1\n-1 2\n")
    assert_one_line_error(
        invoke("run", "sir-network", "--graph", f"file:{neg}", *out), "non-negative"
    )


def test_memory_limit_override_names_estimate_limit_and_option(tmp_path, no_compute):
    result = invoke(
        "run",
        "sir-network",
        *SMALL,
        "--runs",
        "100000",
        "--out",
        tmp_path / "o",
        env={"AGENTGRAD_MEMORY_LIMIT": "1M"},
    )
    assert_one_line_error(result, "use fewer --runs or a smaller --batch")
    assert "1.0 MiB is available" in result.output


@pytest.mark.parametrize("command", ["run", "gradcheck", "sensitivity", "calibrate"])
def test_out_is_checked_before_computation(tmp_path, no_compute, command):
    extra = ["--synthetic", "beta=0.3"] if command == "calibrate" else []
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert_one_line_error(
        invoke(command, "sir-network", *SMALL, *extra, "--out", afile), "is an existing file"
    )
    under_file = afile / "sub"
    assert_one_line_error(
        invoke(command, "sir-network", *SMALL, *extra, "--out", under_file),
        "cannot create output directory",
    )
    target = {"run": "observables.nc", "gradcheck": "gradcheck.csv"}.get(
        command, "sensitivity.nc" if command == "sensitivity" else "posterior.nc"
    )
    (tmp_path / "d" / target).mkdir(parents=True)
    assert_one_line_error(
        invoke(command, "sir-network", *SMALL, *extra, "--out", tmp_path / "d"), "is a directory"
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_read_only_out_is_refused(tmp_path, no_compute):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        assert_one_line_error(invoke("run", "sir-network", "--out", ro), "not writable")
    finally:
        ro.chmod(0o700)


def test_failed_final_write_keeps_results_in_a_fallback(tmp_path, monkeypatch):
    """The directory vanishes (replaced by a file) during the run: the message names a
    fallback directory that holds every output, and nothing half-written is left."""
    import agentgrad.outputs as outputs

    out = tmp_path / "o"
    real = outputs._write_all
    calls = []

    def sabotage(directory, writers):
        calls.append(directory)
        if directory == out:
            for f in out.iterdir():
                f.unlink()
            out.rmdir()
            out.write_text("now a file")
        return real(directory, writers)

    monkeypatch.setattr(outputs, "_write_all", sabotage)
    result = invoke("run", "sir-network", *SMALL, "--runs", "2", "--out", out)
    assert result.exit_code == 2, result.output
    line = result.output.strip().splitlines()[-1]
    assert line.startswith("error: cannot write to") and "saved in" in line
    fallback = calls[-1]
    assert {p.name for p in fallback.iterdir()} == {
        "observables.nc",
        "observables.png",
        "provenance.json",
    }
    xr.open_dataset(fallback / "observables.nc", engine="h5netcdf").close()


def test_atomic_write_leaves_no_half_file(tmp_path):
    from agentgrad.outputs import write_atomic

    target = tmp_path / "x.csv"
    target.write_text("old")

    def half(path):
        path.write_text("partial")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        write_atomic(target, half)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.csv"]


def test_run_records_provenance_and_units(tmp_path):
    out = tmp_path / "o"
    ring = _ring(tmp_path / "ring.txt", 50)
    result = invoke(
        "run",
        "sir-network",
        "--graph",
        f"file:{ring}",
        "--steps",
        "3",
        "--runs",
        "2",
        "--seed",
        "7",
        "--estimator",
        "gs:0.5",
        "--out",
        out,
    )
    assert result.exit_code == 0, result.output
    ds = xr.open_dataset(out / "observables.nc", engine="h5netcdf")
    for key, value in {
        "model": "sir-network",
        "agents": 50,
        "graph": f"file:{ring}",
        "runs": 2,
        "steps": 3,
        "estimator": "gs:0.5",
        "seed": 7,
    }.items():
        assert ds.attrs[key] == value, key
    assert ds.attrs["agentgrad_version"] and ds.attrs["jax_version"]
    assert ds["infected"].attrs["units"] == "fraction of agents"
    meta = json.loads((out / "provenance.json").read_text())
    assert meta["seed"] == 7 and meta["command"] == "run"
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporaries left


def test_version_and_models_listing():
    import jax

    import agentgrad

    result = invoke("--version")
    assert result.exit_code == 0
    assert agentgrad.__version__ in result.output and jax.__version__ in result.output
    listing = invoke("models")
    assert listing.exit_code == 0
    assert "new_infected (fraction of agents per step)" in listing.output
    one = invoke("models", "predator-prey")
    assert one.exit_code == 0
    assert "predators (agents)" in one.output and "psi1" in one.output
    assert "sir-network" not in one.output


def test_calibrate_help_shows_bracketed_text():
    result = invoke("calibrate", "--help")
    assert "E[loss]" in result.output


WALKERS = Path(__file__).resolve().parents[1] / "examples" / "walkers.py"


def test_user_model_from_a_file_works_in_every_command(tmp_path):
    spec = f"{WALKERS}:Walkers"
    res = invoke("run", spec, "--agents", "30", "--runs", "3", "--out", tmp_path / "r")
    assert res.exit_code == 0, res.output
    ds = xr.open_dataset(tmp_path / "r" / "observables.nc", engine="h5netcdf")
    assert ds["position"].shape == (3, 5) and ds["position"].attrs["units"] == "cells"
    res = invoke(
        "gradcheck", spec, "--runs", "8", "--estimators", "st,sad", "--out", tmp_path / "g"
    )
    assert res.exit_code == 0, res.output
    res = invoke("sensitivity", spec, "--runs", "4", "--out", tmp_path / "s")
    assert res.exit_code == 0, res.output
    # d E[position_t] / dp = t exactly under straight-through
    jac = xr.open_dataset(tmp_path / "s" / "sensitivity.nc", engine="h5netcdf")["jacobian"]
    np.testing.assert_allclose(jac.sel(parameter="p").values, np.arange(1, 6), rtol=1e-5)
    res = invoke(
        "calibrate",
        spec,
        "--synthetic",
        "p=0.7",
        "--epochs",
        "3",
        "--family",
        "gaussian",
        "--out",
        tmp_path / "c",
    )
    assert res.exit_code == 0, res.output
    assert_one_line_error(invoke("run", spec, "--grid-size", "4"), "--grid-size does not apply")
    assert "Random walkers" in invoke("models", spec).output


def test_user_model_from_an_entry_point(tmp_path, monkeypatch):
    import sys
    from importlib.metadata import EntryPoint

    (tmp_path / "walkers_pkg.py").write_text(WALKERS.read_text())
    monkeypatch.syspath_prepend(str(tmp_path))
    ep = EntryPoint("walkers", "walkers_pkg:Walkers", "agentgrad.models")
    import agentgrad.plugins as plugins

    monkeypatch.setattr(plugins, "entry_points", lambda group: [ep])
    res = invoke("run", "walkers", "--runs", "2", "--out", tmp_path / "r")
    assert res.exit_code == 0, res.output
    assert "installed plugin models: walkers" in invoke("models").output
    sys.modules.pop("walkers_pkg", None)


def test_population_synthesize_then_run(tmp_path):
    pop = tmp_path / "pop"
    res = invoke("population", "synthesize", "--agents", "300", "--seed", "2", "--out", pop)
    assert res.exit_code == 0, res.output
    assert {p.name for p in pop.iterdir()} == {"ages.csv", "contacts.csv"}
    res = invoke(
        "run", "seirm", "--population", pop, "--steps", "3", "--runs", "2", "--out", tmp_path / "o"
    )
    assert res.exit_code == 0, res.output


def test_utf8_bom_files_are_accepted(tmp_path):
    from agentgrad.io import read_observed_csv
    from agentgrad.models.population import load_population
    from agentgrad.spaces.graphs import from_edge_list

    bom = "\ufeff"
    (tmp_path / "e.txt").write_text(bom + "0 1\n1 2\n", encoding="utf-8")
    assert from_edge_list(tmp_path / "e.txt").n_edges == 2
    (tmp_path / "d.csv").write_text(bom + "infected\n0.1\n", encoding="utf-8")
    assert list(read_observed_csv(tmp_path / "d.csv", ["infected"])) == ["infected"]
    (tmp_path / "ages.csv").write_text(bom + "age\n30\n40\n50\n", encoding="utf-8")
    (tmp_path / "contacts.csv").write_text(bom + "0,1\n1,2\n", encoding="utf-8")
    assert load_population(tmp_path).graph.n_nodes == 3


def test_ctrl_c_is_one_line(tmp_path, monkeypatch):
    import agentgrad.engine as engine

    def interrupt(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(engine, "_run_ensemble", interrupt)
    result = invoke("run", "sir-network", *SMALL, "--out", tmp_path / "o")
    assert_one_line_error(result, "interrupted (Ctrl-C)", code=130)
    assert not (tmp_path / "o" / "observables.nc").exists()


def test_internal_errors_are_one_line_with_a_debug_hint(tmp_path, monkeypatch):
    def broken(*a, **k):
        raise RuntimeError("boom")

    monkeypatch.setattr(cli_module, "_setup", broken)
    result = invoke("run", "sir-network", "--out", tmp_path / "o")
    assert_one_line_error(result, "internal error (RuntimeError: boom)", code=1)
    assert "AGENTGRAD_DEBUG=1" in result.output


def test_gradient_validity_warnings(tmp_path):
    """Straight-through on the sparse default network warns (CLI and Python), naming the
    measured bias and the alternative; the complete graph and the unbiased estimator
    do not."""
    import warnings

    import jax

    import agentgrad as ag
    from agentgrad.sensitivity import sensitivity

    res = invoke(
        "sensitivity",
        "sir-network",
        *SMALL,
        "--runs",
        "2",
        "--params",
        "beta",
        "--out",
        tmp_path / "s",
    )
    assert res.exit_code == 0, res.output
    assert "warning: sir-network: StraightThrough is biased" in res.output
    assert "--estimator sad" in res.output
    sparse = ag.models.SIRNetwork(graph=ag.graphs.erdos_renyi(200, 5, key=0))
    with pytest.warns(ag.GradientValidityWarning, match="relative error 0.35"):
        sensitivity(sparse, None, jax.random.key(0), 3, 2, "infected", parameters=["beta"])
    complete = ag.models.SIRNetwork(graph=ag.graphs.complete(200))
    unbiased = ag.models.SIRNetwork(graph=sparse.graph, estimator=ag.StochasticDerivative())
    for model in (complete, unbiased):
        assert model.gradient_warning(60) is None
    with warnings.catch_warnings():
        warnings.simplefilter("error", ag.GradientValidityWarning)
        sensitivity(complete, None, jax.random.key(0), 3, 2, "infected", parameters=["beta"])
    assert "over 10 steps, not 30" in ag.models.AMOF(n_agents=20).gradient_warning(30)
    assert ag.models.AMOF(n_agents=20).gradient_warning(10) is None
