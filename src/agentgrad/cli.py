"""The ``agentgrad`` command line.

``agentgrad models`` lists the model library; ``agentgrad run MODEL ...`` simulates
an ensemble and writes ``observables.nc``, ``observables.png`` and a summary.  Bad
input prints one ``error: ...`` line and exits with code 2.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from agentgrad.errors import AgentgradError

app = typer.Typer(
    help="Differentiable agent-based models: simulate, differentiate, calibrate.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()


def fail(message: str) -> None:
    """Print a one-line error and exit with code 2."""
    Console(stderr=True).print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def _entry(name: str):
    from agentgrad.models import REGISTRY

    if name not in REGISTRY:
        fail(f"unknown model {name!r}; available: {', '.join(REGISTRY)} (see `agentgrad models`)")
    return REGISTRY[name]


def parse_param_assignments(items: list[str]) -> dict[str, float]:
    """Parse ``name=value`` strings into a dict of floats."""
    out: dict[str, float] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            fail(f"--param {item!r} must look like name=value")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            fail(f"--param {item!r}: {value!r} is not a number")
        if not math.isfinite(out[name.strip()]):
            fail(f"--param {item!r}: value must be finite")
    return out


@app.command("models")
def models_command() -> None:
    """List the models and their parameters."""
    from agentgrad.models import REGISTRY

    for entry in REGISTRY.values():
        table = Table(title=f"{entry.name} — {entry.summary}", title_justify="left")
        for col in ("parameter", "default", "bounds", "description"):
            table.add_column(col)
        for name, p in entry.param_space.params.items():
            table.add_row(name, f"{p.default:g}", f"[{p.lower:g}, {p.upper:g}]", p.description)
        console.print(table)
        opts = ", ".join("--" + o.replace("_", "-") for o in entry.options)
        console.print(f"  default --steps {entry.default_steps}; structural options: {opts}\n")


@app.command("run")
def run_command(
    model: Annotated[str, typer.Argument(help="model name, e.g. sir-network (see `models`)")],
    steps: Annotated[int | None, typer.Option(help="number of steps (model default)")] = None,
    agents: Annotated[int | None, typer.Option(help="number of agents")] = None,
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="parameter value, name=value")
    ] = None,
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    estimator: Annotated[str, typer.Option(help="st | gs:TAU | gs-soft:TAU | none")] = "st",
    runs: Annotated[int, typer.Option(help="number of independent runs")] = 10,
    graph: Annotated[
        str | None,
        typer.Option(
            help="network models: complete | erdos-renyi:MEAN_DEGREE | watts-strogatz:K:P | "
            "barabasi-albert:M | file:PATH"
        ),
    ] = None,
    grid_size: Annotated[int | None, typer.Option(help="grid models: side length")] = None,
    batch: Annotated[int, typer.Option(help="runs simulated together (vmap)")] = 16,
    out: Annotated[Path, typer.Option(help="output directory")] = Path("out"),
) -> None:
    """Simulate MODEL RUNS times; write observables.nc, observables.png and a summary."""
    import jax
    import numpy as np

    from agentgrad.engine import ensemble
    from agentgrad.estimators import parse_estimator
    from agentgrad.io import observables_dataset, write_netcdf
    from agentgrad.models import BuildOptions
    from agentgrad.plotting import plot_observables

    entry = _entry(model)
    for option, value in (("agents", agents), ("graph", graph), ("grid_size", grid_size)):
        if value is not None and option not in entry.options:
            fail(f"--{option.replace('_', '-')} does not apply to {model}")
    for option, value in (("steps", steps), ("agents", agents), ("grid-size", grid_size)):
        if value is not None and value < 1:
            fail(f"--{option} must be a positive integer, got {value}")
    if runs < 1 or batch < 1:
        fail("--runs and --batch must be positive integers")
    n_steps = steps or entry.default_steps
    try:
        est = parse_estimator(estimator)
        params = entry.param_space.complete(parse_param_assignments(param or []))
        sim_model = entry.build(BuildOptions(est, seed, agents, graph, grid_size))
    except AgentgradError as err:
        fail(str(err))
    except ValueError as err:
        fail(str(err))

    batch = min(batch, runs)
    keys = jax.random.split(jax.random.key(seed), runs)
    n_batches = -(-runs // batch)
    pad = n_batches * batch - runs
    keys = jax.numpy.concatenate([keys, keys[:pad]]) if pad else keys
    chunks = []
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} runs"),
        TimeElapsedColumn(),
        console=console,
        transient=not sys.stdout.isatty(),
    ) as progress:
        task = progress.add_task(f"{model}", total=runs)
        for b in range(n_batches):
            traj = ensemble(sim_model, params, keys[b * batch : (b + 1) * batch], n_steps)
            chunks.append(jax.tree.map(np.asarray, traj.observables))
            progress.update(task, completed=min((b + 1) * batch, runs))
    observables = {k: np.concatenate([c[k] for c in chunks])[:runs] for k in chunks[0]}

    attrs = {"model": model, "estimator": estimator, "seed": seed, "steps": n_steps}
    attrs.update({f"param_{k}": float(v) for k, v in params.items()})
    ds = observables_dataset(observables, attrs)
    try:
        out.mkdir(parents=True, exist_ok=True)
        write_netcdf(ds, out / "observables.nc")
        plot_observables(ds, out / "observables.png", title=f"{model}, {runs} runs")
    except OSError as err:
        fail(f"cannot write to {str(out)!r}: {err.strerror or err}")

    table = Table(title=f"{model}: {runs} runs x {n_steps} steps", title_justify="left")
    for col in ("observable", "mean at end", "peak of mean", "peak step"):
        table.add_column(col, justify="right" if col != "observable" else "left")
    for name, v in observables.items():
        if v.ndim != 2:
            continue
        mean = v.mean(axis=0)
        table.add_row(name, f"{mean[-1]:.4g}", f"{mean.max():.4g}", str(int(mean.argmax()) + 1))
    console.print(table)
    console.print(f"wrote {out / 'observables.nc'} and {out / 'observables.png'}")


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
