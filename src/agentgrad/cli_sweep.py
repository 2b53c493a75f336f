"""``agentgrad sweep MODEL --param beta=0.1:0.5:9 --param gamma=0.05,0.1 --runs R``:
a parameter sweep from the command line (:func:`agentgrad.sweeps.sweep`).

``--param`` takes ``name=value`` (fixed), ``name=start:stop:n`` (``n`` evenly spaced
values, both ends included) or ``name=v1,v2,...`` (a list).  Writes ``sweep.nc`` (dims
``(swept parameters..., run, step)``), ``sweep.png`` and ``provenance.json``.  Finished
chunks are kept in ``OUT/.sweep-checkpoint.npz``: the same command run again after an
interruption resumes where it stopped; the file is removed once the outputs are written.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Annotated

import numpy as np
import typer

from agentgrad.cli import (  # noqa: I001
    ModelOptions,
    _interruptible,
    _json_writer,
    _provenance,
    _require,
    _setup,
    app,
    console,
    fail,
    label_units,
    model_command,
    progress_bar,
)
from agentgrad.outputs import prepare_output_dir, save_outputs

CHECKPOINT = ".sweep-checkpoint.npz"


def parse_sweep_values(item: str) -> tuple[str, list[float]]:
    """``name=v``, ``name=a:b:n`` or ``name=v1,v2`` -> (name, values)."""
    name, sep, text = item.partition("=")
    name = name.strip()
    if not sep or not name or not text.strip():
        fail(f"--param {item!r} must look like name=value, name=start:stop:n or name=v1,v2,...")
    try:
        if ":" in text:
            parts = text.split(":")
            if len(parts) != 3:
                raise ValueError
            start, stop, count = float(parts[0]), float(parts[1]), int(parts[2])
            if count < 1:
                fail(f"--param {item!r}: the number of values must be >= 1")
            values = np.linspace(start, stop, count).tolist()
        else:
            values = [float(v) for v in text.split(",")]
    except ValueError:
        fail(f"--param {item!r}: expected numbers as start:stop:n or v1,v2,...")
    if not all(math.isfinite(v) for v in values):
        fail(f"--param {item!r}: values must be finite")
    return name, values


@app.command("sweep")
@model_command()
def sweep_command(
    opts: ModelOptions,
    runs: Annotated[int, typer.Option(help="runs per grid point")] = 10,
    batch: Annotated[int, typer.Option(help="simulations run together (vmap)")] = 64,
    devices: Annotated[
        int | None, typer.Option(help="split each batch over this many local devices")
    ] = None,
    ray: Annotated[
        str | None,
        typer.Option(help="run batches on a Ray cluster at this address ('local' starts one)"),
    ] = None,
    out: Annotated[str, typer.Option(help="output directory")] = "out",
) -> None:
    """Simulate every combination of the swept --param values RUNS times; write sweep.nc."""
    import jax

    from agentgrad.io import netcdf_attrs, write_netcdf
    from agentgrad.sweeps import LocalExecutor, RayExecutor, sweep

    files = ["sweep.nc", "sweep.png", "provenance.json"]
    if runs < 1 or batch < 1:
        fail("--runs and --batch must be positive integers")
    fixed, grid = [], {}
    for item in opts.param or []:
        name, values = parse_sweep_values(item)
        if name in grid or any(f.partition("=")[0].strip() == name for f in fixed):
            fail(f"parameter {name!r} is given twice")
        if len(values) == 1:
            fixed.append(f"{name}={values[0]!r}")
        else:
            grid[name] = values
    if not grid:
        fail("give at least one swept parameter, e.g. --param beta=0.1:0.5:9")
    out = prepare_output_dir(out, files)
    setup = _setup(dataclasses.replace(opts, param=fixed))
    _require(setup, f"batches of {batch} simulations", "use a smaller --batch", batch=batch, runs=1)
    executor = LocalExecutor()
    if ray is not None:
        executor = RayExecutor(None if ray == "local" else ray, timeout_s=30)
    key = jax.random.key(opts.seed)
    n_points = math.prod(len(v) for v in grid.values())
    with _interruptible(
        f"interrupted (Ctrl-C); finished batches are kept in {out / CHECKPOINT}: "
        "run the same command again to resume"
    ):
        with progress_bar("simulations") as progress:
            task = progress.add_task(f"{opts.model} sweep", total=n_points * runs)
            ds = sweep(
                setup.model,
                grid,
                key,
                setup.n_steps,
                runs,
                params={k: v for k, v in setup.params.items() if k not in grid},
                batch=batch,
                devices=devices,
                checkpoint=out / CHECKPOINT,
                executor=executor,
                on_chunk=lambda done, total: progress.update(task, completed=done),
            )
    meta = _provenance(setup, "sweep", runs=runs, batch=batch, swept=",".join(grid))
    for name in grid:
        meta.pop(f"param_{name}", None)
    ds.attrs.update(netcdf_attrs(meta))
    label_units(ds, setup)
    from agentgrad.plotting import plot_sweep

    save_outputs(
        out,
        {
            "sweep.nc": lambda p: write_netcdf(ds, p),
            "sweep.png": lambda p: plot_sweep(ds, p, title=f"{opts.model}, {runs} runs per point"),
            "provenance.json": _json_writer(meta),
        },
        "sweep",
    )
    (out / CHECKPOINT).unlink(missing_ok=True)
    shape = " x ".join(f"{len(v)} {k}" for k, v in grid.items())
    console.print(f"swept {shape} x {runs} runs x {setup.n_steps} steps; wrote {out / 'sweep.nc'}")
