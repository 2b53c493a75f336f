"""ag.sweep: dataset shape and coordinates, equality with ensemble at each point (common
random numbers), data-parallel devices, resume from a checkpoint, the Ray executor against
the local one, and one-line errors for bad input."""

import jax
import numpy as np
import pytest

import agentgrad as ag
from agentgrad.sweeps import RayExecutor, sweep

MODEL = ag.models.SIRNetwork(graph=ag.graphs.erdos_renyi(200, 6.0, key=0))
GRID = {"beta": [0.1, 0.2, 0.3], "gamma": [0.05, 0.1]}
KEY = jax.random.key(0)


@pytest.fixture(scope="module")
def reference():
    return sweep(MODEL, GRID, KEY, 12, runs=3, batch=4)


def test_dataset_layout_and_values_equal_ensemble(reference):
    ds = reference
    assert dict(ds.sizes) == {"beta": 3, "gamma": 2, "run": 3, "step": 12}
    assert ds.infected.dims == ("beta", "gamma", "run", "step")
    np.testing.assert_allclose(ds.beta, GRID["beta"])
    np.testing.assert_array_equal(ds.step, np.arange(1, 13))
    assert ds.attrs["param_initial_infected"] == pytest.approx(0.005)
    for beta in GRID["beta"]:
        for gamma in GRID["gamma"]:
            runs = ag.ensemble(MODEL, {"beta": beta, "gamma": gamma}, KEY, 12, 3)
            for name in ds.data_vars:
                np.testing.assert_array_equal(
                    ds[name].sel(beta=beta, gamma=gamma).values, runs.observables[name]
                )


def test_devices_and_batching_do_not_change_the_result(reference):
    for kwargs in ({"batch": 5, "devices": 2}, {"batch": 64}):
        ds = sweep(MODEL, GRID, KEY, 12, runs=3, **kwargs)
        np.testing.assert_array_equal(ds.infected.values, reference.infected.values)


def test_resume_after_interruption(tmp_path, reference):
    path = tmp_path / "sweep.npz"
    progress = []

    def stop_after_two_chunks(done, total):
        progress.append(done)
        if done >= 8:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sweep(
            MODEL, GRID, KEY, 12, runs=3, batch=4, checkpoint=path, on_chunk=stop_after_two_chunks
        )
    assert path.exists() and progress[-1] == 8
    resumed = []
    ds = sweep(
        MODEL,
        GRID,
        KEY,
        12,
        runs=3,
        batch=4,
        checkpoint=path,
        on_chunk=lambda done, total: resumed.append((done, total)),
    )
    assert resumed[0] == (8, 18) and resumed[-1] == (18, 18) and len(resumed) == 4
    np.testing.assert_array_equal(ds.infected.values, reference.infected.values)
    with pytest.raises(ag.AgentgradError, match="other settings"):
        sweep(MODEL, GRID, KEY, 13, runs=3, batch=4, checkpoint=path)
    path.write_bytes(b"not an npz")
    with pytest.raises(ag.AgentgradError, match="cannot be read"):
        sweep(MODEL, GRID, KEY, 12, runs=3, batch=4, checkpoint=path)


@pytest.mark.slow  # starts a local Ray instance (~12 s)
def test_ray_executor_equals_local(reference):
    ray = pytest.importorskip("ray")
    try:
        ds = sweep(MODEL, GRID, KEY, 12, runs=3, batch=4, executor=RayExecutor(timeout_s=120))
    finally:
        ray.shutdown()
    np.testing.assert_array_equal(ds.infected.values, reference.infected.values)


def test_bad_sweeps_fail_with_one_line():
    from agentgrad.sweeps import _init_ray

    with pytest.raises(ag.ParameterError, match="betta"):
        sweep(MODEL, {"betta": [0.1]}, KEY, 5)
    with pytest.raises(ag.ParameterError, match="beta"):
        sweep(MODEL, {"beta": [0.1, 11.0]}, KEY, 5)
    with pytest.raises(ag.ParameterError, match="twice"):
        sweep(MODEL, {"beta": [0.1, 0.1]}, KEY, 5)
    with pytest.raises(ag.ParameterError, match="both swept and fixed"):
        sweep(MODEL, {"beta": [0.1]}, KEY, 5, params={"beta": 0.2})
    with pytest.raises(ag.ParameterError, match="at least one"):
        sweep(MODEL, {}, KEY, 5)
    with pytest.raises(ValueError, match="runs must be a positive integer"):
        sweep(MODEL, {"beta": [0.1]}, KEY, 5, runs=0)
    with pytest.raises(ag.AgentgradError, match="3 devices requested"):
        sweep(MODEL, {"beta": [0.1]}, KEY, 5, devices=3)
    with pytest.raises(ag.AgentgradError, match="cannot reach Ray at 127.0.0.1:1 within 2 s"):
        _init_ray(None, "127.0.0.1:1", 2)


def test_sweep_command_writes_the_grid_and_resumes(tmp_path, monkeypatch):
    import xarray as xr
    from typer.testing import CliRunner

    import agentgrad.sweeps as sweep_module
    from agentgrad.cli import app
    from agentgrad.cli_sweep import CHECKPOINT

    args = ["sweep", "sir-network", "--agents", "100", "--steps", "8", "--runs", "2"]
    args += ["--param", "beta=0.1:0.3:3", "--param", "gamma=0.05,0.1"]
    args += ["--param", "initial_infected=0.02", "--batch", "4"]
    first, second = tmp_path / "first", tmp_path / "second"
    result = CliRunner().invoke(app, [*args, "--out", str(first)])
    assert result.exit_code == 0, result.output
    ds = xr.load_dataset(first / "sweep.nc", engine="h5netcdf")
    assert dict(ds.sizes) == {"beta": 3, "gamma": 2, "run": 2, "step": 8}
    np.testing.assert_allclose(ds.beta, [0.1, 0.2, 0.3])
    assert ds.attrs["param_initial_infected"] == pytest.approx(0.02)
    assert ds.attrs["swept"] == "beta,gamma" and not (first / CHECKPOINT).exists()
    assert (first / "sweep.png").stat().st_size > 0

    # Ctrl-C in the second of 3 chunks keeps the first; the same command resumes
    real, calls = sweep_module.simulate_chunk, []

    def interrupted(*task):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*task)

    monkeypatch.setattr(sweep_module, "simulate_chunk", interrupted)
    result = CliRunner().invoke(app, [*args, "--out", str(second)])
    assert result.exit_code == 130 and "resume" in result.output, result.output
    assert (second / CHECKPOINT).exists() and not (second / "sweep.nc").exists()
    calls.clear()
    monkeypatch.setattr(sweep_module, "simulate_chunk", lambda *t: calls.append(1) or real(*t))
    result = CliRunner().invoke(app, [*args, "--out", str(second)])
    assert result.exit_code == 0, result.output
    assert len(calls) == 2  # chunks 2 and 3 only
    resumed = xr.load_dataset(second / "sweep.nc", engine="h5netcdf")
    np.testing.assert_array_equal(resumed.infected.values, ds.infected.values)

    for bad, message in [
        (["--param", "beta=0.1:0.3"], "start:stop:n"),
        (["--param", "beta=0.2"], "at least one swept"),
        (["--param", "beta=0.1,0.2", "--param", "beta=0.3"], "given twice"),
        (["--param", "beta=0.1,nan"], "finite"),
        (["--param", "beta=0.1,0.2", "--runs", "0"], "positive"),
        (["--param", "beta=0.1,0.2", "--devices", "3"], "3 devices requested"),
    ]:
        result = CliRunner().invoke(app, ["sweep", "sir-network", *bad, "--out", str(tmp_path)])
        assert result.exit_code == 2 and message in result.output, result.output
