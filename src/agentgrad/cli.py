"""The ``agentgrad`` command line.

``agentgrad models [NAME]`` describes the model library; ``run`` simulates an ensemble;
``gradcheck`` compares gradient estimators with finite differences; ``sensitivity``
writes the Jacobian of an observable over time; ``calibrate`` fits a posterior;
``sweep`` runs a parameter grid; ``population synthesize`` writes a synthetic
population.  MODEL is a library name,
``path/to/file.py:Class``, ``package.module:Class`` or an ``agentgrad.models`` entry
point (:mod:`agentgrad.plugins`).

Rules every command follows: bad input (including usage errors) prints one
``error: ...`` line and exits with code 2 before any work is spent; ``--out`` is
checked before computing; outputs are written atomically, with a fallback directory
if writing fails at the end (:mod:`agentgrad.outputs`); work that cannot fit in memory
is refused up front (:mod:`agentgrad.resources`); Ctrl-C prints one line and exits 130.
"""

import functools
import inspect
import json
import math
import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from typer.core import TyperGroup

from agentgrad.errors import AgentgradError
from agentgrad.outputs import prepare_output_dir, save_outputs

try:  # typer >= 0.20 vendors click
    from typer import _click as click
except ImportError:  # pragma: no cover - older typer
    import click

console = Console()
SEED_MAX = 2**32 - 1


class Interrupted(AgentgradError):
    """Ctrl-C during a command; the message says what was kept."""


def _stderr_line(label: str, message: Any) -> None:
    """``label: message`` on one line of stderr (whitespace and newlines collapsed)."""
    from rich.markup import escape

    text = escape(" ".join(str(message).split()))  # brackets in messages are text
    Console(stderr=True).print(f"{label} {text}", highlight=False, soft_wrap=True)


def _error_line(message: str) -> None:
    _stderr_line("[red]error:[/red]", message)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    _stderr_line("[yellow]warning:[/yellow]", message)


class _Group(TyperGroup):
    """Typer group whose every failure is one ``error:`` line (usage errors included)."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        code = _guarded(
            lambda: super(_Group, self).main(
                args, prog_name, complete_var, standalone_mode=False, **extra
            )
        )
        if standalone_mode:
            sys.exit(code)
        return code


def _guarded(call) -> int:
    """Run the click command ``call``; translate every failure into an exit code."""
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        warnings.showwarning = _show_warning
        return _translate(call)


def _translate(call) -> int:
    try:
        rv = call()
        if rv == 130:
            _error_line("interrupted (Ctrl-C); nothing was written")
        return rv if isinstance(rv, int) else 0
    except click.exceptions.NoArgsIsHelpError as err:
        click.echo(err.ctx.get_help() if err.ctx else str(err))
        return 0
    except click.exceptions.UsageError as err:
        hint = f" (see `{err.ctx.command_path} --help`)" if err.ctx else ""
        _error_line(f"{err.format_message()}{hint}")
        return 2
    except (typer.Abort, KeyboardInterrupt):
        _error_line("interrupted (Ctrl-C); nothing was written")
        return 130
    except Interrupted as err:
        _error_line(str(err))
        return 130
    except AgentgradError as err:
        _error_line(str(err))
        return 2
    except MemoryError:
        _error_line("out of memory; use fewer --runs, a smaller --batch or fewer --agents")
        return 2
    except Exception as err:
        if os.environ.get("AGENTGRAD_DEBUG"):
            raise
        _error_line(
            f"internal error ({type(err).__name__}: {err}); please report it, and rerun "
            "with AGENTGRAD_DEBUG=1 for the traceback"
        )
        return 1


app = typer.Typer(
    cls=_Group,
    help="Differentiable agent-based models: simulate, differentiate, calibrate.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
population_app = typer.Typer(
    cls=_Group, help="Synthetic populations for network epidemic models.", no_args_is_help=True
)
app.add_typer(population_app, name="population")


def fail(message: str) -> None:
    """Abort the command with a one-line error (exit code 2)."""
    raise AgentgradError(message)


def _version(value: bool) -> None:
    if value:
        import jax

        from agentgrad import __version__

        typer.echo(
            f"agentgrad {__version__} (jax {jax.__version__}, python {sys.version.split()[0]})"
        )
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", is_eager=True, callback=_version, help="show the version and exit"
        ),
    ] = False,
) -> None:
    """Differentiable agent-based models: simulate, differentiate, calibrate."""


# --------------------------------------------------------------------------- model options


@dataclass(frozen=True)
class ModelOptions:
    """The options every command takes to build and parameterise a model."""

    model: str
    steps: int | None
    agents: int | None
    param: list[str] | None
    seed: int
    estimator: str | None
    graph: str | None
    population: Path | None
    preset: str | None
    grid_size: int | None


def _shared_parameters(estimator_help: str | None) -> list[inspect.Parameter]:
    kw = inspect.Parameter.KEYWORD_ONLY

    def p(name, annotation, default):
        return inspect.Parameter(name, kw, annotation=annotation, default=default)

    params = [
        p(
            "steps",
            Annotated[int | None, typer.Option(help="number of steps (model default)")],
            None,
        ),
        p("agents", Annotated[int | None, typer.Option(help="number of agents")], None),
        p(
            "param",
            Annotated[
                list[str] | None,
                typer.Option("--param", "-p", help="parameter value, name=value (repeatable)"),
            ],
            None,
        ),
        p("seed", Annotated[int, typer.Option(help=f"random seed in [0, {SEED_MAX}]")], 0),
        p(
            "graph",
            Annotated[
                str | None,
                typer.Option(
                    help="network models: complete | erdos-renyi:MEAN_DEGREE | "
                    "watts-strogatz:K:P | barabasi-albert:M | file:PATH"
                ),
            ],
            None,
        ),
        p(
            "population",
            Annotated[
                Path | None,
                typer.Option(help="seirm: directory with ages.csv and contacts.csv"),
            ],
            None,
        ),
        p(
            "preset",
            Annotated[
                str | None, typer.Option(help="named parameter set, e.g. predator-prey psi1")
            ],
            None,
        ),
        p("grid_size", Annotated[int | None, typer.Option(help="grid models: side length")], None),
    ]
    if estimator_help is not None:
        params.insert(
            4,
            p(
                "estimator",
                Annotated[
                    str | None,
                    typer.Option(help=f"{estimator_help} (default st; sirs-grid gs:0.05)"),
                ],
                None,
            ),
        )
    return params


def model_command(estimator_help: str | None = "st | gs:TAU | gs-soft:TAU | none | sad"):
    """Decorate a command ``fn(opts: ModelOptions, ...)``: adds the MODEL argument and the
    shared model options to its command-line signature (declared once, here)."""

    def decorate(fn):
        sig = inspect.signature(fn)
        own = [p for name, p in sig.parameters.items() if name != "opts"]
        model_arg = inspect.Parameter(
            "model",
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            annotation=Annotated[
                str,
                typer.Argument(
                    help="model: a library name (see `agentgrad models`), "
                    "path/to/file.py:Class or package.module:Class"
                ),
            ],
        )
        shared = _shared_parameters(estimator_help)
        names = [p.name for p in shared]
        own_kw = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own]

        @functools.wraps(fn)
        def wrapper(model: str, **kwargs):
            values = {n: kwargs.pop(n) for n in names}
            values.setdefault("estimator", None)
            return fn(ModelOptions(model=model, **values), **kwargs)

        params = [model_arg, *shared, *own_kw]
        wrapper.__signature__ = sig.replace(parameters=params)
        wrapper.__annotations__ = {p.name: p.annotation for p in params}
        return wrapper

    return decorate


@dataclass
class Setup:
    """A validated model: its registry entry, built model, parameters and steps."""

    entry: Any
    model: Any
    params: dict
    n_steps: int
    estimator: str
    opts: ModelOptions


def _check_seed(seed: int) -> None:
    if not 0 <= seed <= SEED_MAX:
        fail(f"--seed must be an integer in [0, {SEED_MAX}], got {seed}")


def _check_positive_finite(**values: float) -> None:
    for name, value in values.items():
        if not math.isfinite(value) or value <= 0:
            fail(f"--{name.replace('_', '-')} must be a finite number > 0, got {value}")


def parse_param_assignments(items: list[str]) -> dict[str, float]:
    """Parse ``name=value`` strings into a dict of floats."""
    out: dict[str, float] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            fail(f"--param {item!r} must look like name=value")
        if name in out:
            fail(f"parameter {name!r} is given twice")
        try:
            out[name] = float(value)
        except ValueError:
            fail(f"--param {item!r}: {value!r} is not a number")
        if not math.isfinite(out[name]):
            fail(f"--param {item!r}: value must be finite")
    return out


def _setup(opts: ModelOptions) -> Setup:
    """Validate the shared options, check the build fits in memory, build the model.

    Invalid values raise ``ValueError`` in the library (estimators, model checks); here
    they are user input, reported as one line."""
    try:
        return _setup_model(opts)
    except ValueError as err:
        raise AgentgradError(str(err)) from None


def _setup_model(opts: ModelOptions) -> Setup:
    from agentgrad.estimators import parse_estimator
    from agentgrad.models import BuildOptions
    from agentgrad.plugins import resolve_model
    from agentgrad.resources import check_size

    entry = resolve_model(opts.model)
    _check_seed(opts.seed)
    structural = (
        ("agents", opts.agents),
        ("graph", opts.graph),
        ("grid_size", opts.grid_size),
        ("population", opts.population),
        ("estimator", opts.estimator),
    )
    for option, value in structural:
        if value is not None and option not in entry.options:
            why = ": it has no random draws" if option == "estimator" else ""
            fail(f"--{option.replace('_', '-')} does not apply to {opts.model}{why}")
    for option, value in (
        ("steps", opts.steps),
        ("agents", opts.agents),
        ("grid-size", opts.grid_size),
    ):
        if value is not None and value < 1:
            fail(f"--{option} must be a positive integer, got {value}")
    if opts.agents is not None:
        check_size(opts.agents, "--agents")
    if opts.grid_size is not None:
        check_size(opts.grid_size * opts.grid_size, "--grid-size squared (grid cells)")
    if opts.steps is not None:
        check_size(opts.steps, "--steps")
    if opts.population is not None and not str(opts.population).strip():
        fail("--population is empty; give a directory with ages.csv and contacts.csv")
    label = opts.estimator or entry.default_estimator
    est = parse_estimator(label)
    base = {}
    if opts.preset is not None:
        if not entry.presets:
            fail(f"--preset does not apply to {opts.model}")
        if opts.preset not in entry.presets:
            choices = ", ".join(entry.presets)
            fail(f"unknown preset {opts.preset!r} for {opts.model}; choose {choices}")
        base = dict(entry.presets[opts.preset])
    params = entry.param_space.complete({**base, **parse_param_assignments(opts.param or [])})
    population = None if opts.population is None else str(opts.population)
    model = entry.build(
        BuildOptions(est, opts.seed, opts.agents, opts.graph, opts.grid_size, population)
    )
    n_steps = opts.steps or entry.default_steps
    return Setup(entry, model, params, n_steps, label if "estimator" in entry.options else "", opts)


def _require(setup: Setup, what: str, hint: str, **kwargs) -> None:
    """Refuse (one line) a simulation that would not fit in memory."""
    from agentgrad.resources import require_simulation_memory

    require_simulation_memory(setup.model, setup.params, what, hint, steps=setup.n_steps, **kwargs)


def _provenance(setup: Setup, command: str, **extra: Any) -> dict[str, Any]:
    """Everything needed to reproduce an output (stored in NetCDF attributes and JSON)."""
    import jax

    from agentgrad import __version__

    opts, model = setup.opts, setup.model
    agents = getattr(model, "n_agents", None) or getattr(
        getattr(model, "graph", None), "n_nodes", None
    )
    meta = {
        "command": command,
        "model": opts.model,
        "agents": int(agents) if agents is not None else "",
        "graph": opts.graph or "",
        "grid_size": opts.grid_size if opts.grid_size is not None else "",
        "population": str(opts.population or ""),
        "preset": opts.preset or "",
        "steps": setup.n_steps,
        "estimator": setup.estimator,
        "seed": opts.seed,
        "agentgrad_version": __version__,
        "jax_version": jax.__version__,
        "command_line": " ".join(["agentgrad", *sys.argv[1:]]),
        **extra,
    }
    meta.update({f"param_{k}": float(v) for k, v in setup.params.items()})
    return meta


def _json_writer(data: dict[str, Any]):
    def write(path: Path) -> None:
        path.write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")

    return write


def _split_list(text: str | None) -> list[str] | None:
    if text is None:
        return None
    return [t.strip() for t in text.split(",") if t.strip()]


def _observables_of(model) -> tuple[str, ...]:
    from agentgrad.gradients import observable_names

    return observable_names(model)


def progress_bar(unit: str) -> Progress:
    """The commands' progress bar: description, bar, ``done/total unit``, elapsed time
    (transient when the output is not a terminal)."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn(f"{{task.completed}}/{{task.total}} {unit}"),
        TimeElapsedColumn(),
        console=console,
        transient=not sys.stdout.isatty(),
    )


def label_units(ds: Any, setup: Setup) -> None:
    """Set each observable's ``units`` attribute from the model's declaration."""
    for name, unit in setup.entry.observable_units.items():
        if name in ds:
            ds[name].attrs["units"] = unit


@contextmanager
def _interruptible(message: str) -> Iterator[None]:
    """Turn Ctrl-C inside the block into :class:`Interrupted` with ``message``."""
    try:
        yield
    except KeyboardInterrupt:
        raise Interrupted(message) from None


# --------------------------------------------------------------------------- models


def _describe(entry, full: bool) -> None:
    table = Table(title=f"{entry.name} — {entry.summary}", title_justify="left")
    for col in ("parameter", "default", "bounds", "description"):
        table.add_column(col)
    for name, p in entry.param_space.params.items():
        table.add_row(name, f"{p.default:g}", f"[{p.lower:g}, {p.upper:g}]", p.description)
    console.print(table)
    units = entry.observable_units
    if units:
        obs = ", ".join(f"{n} ({u})" for n, u in units.items())
        console.print(f"  observables: {obs}", highlight=False)
    opts = ", ".join("--" + o.replace("_", "-") for o in entry.options)
    presets = f"; --preset {' | '.join(entry.presets)}" if entry.presets else ""
    console.print(
        f"  default --steps {entry.default_steps}; options: {opts}{presets}", highlight=False
    )
    if full and entry.model_class is not None:
        doc = inspect.getdoc(entry.model_class)
        if doc:
            console.print(f"\n{doc}\n", highlight=False)
    console.print()


@app.command("models")
def models_command(
    name: Annotated[str | None, typer.Argument(help="one model to describe in full")] = None,
) -> None:
    """List the models with their parameters, observables (units) and options."""
    from agentgrad.models import REGISTRY
    from agentgrad.plugins import registered_names, resolve_model

    if name is not None:
        _describe(resolve_model(name), full=True)
        return
    for entry in REGISTRY.values():
        _describe(entry, full=False)
    plugins = registered_names()
    if plugins:
        console.print(f"installed plugin models: {', '.join(plugins)}", highlight=False)


# --------------------------------------------------------------------------- run


@app.command("run")
@model_command()
def run_command(
    opts: ModelOptions,
    runs: Annotated[int, typer.Option(help="number of independent runs")] = 10,
    batch: Annotated[int, typer.Option(help="runs simulated together (vmap)")] = 16,
    animate: Annotated[
        bool, typer.Option(help="also write animation.gif: the state of run 0 at every step")
    ] = False,
    out: Annotated[str, typer.Option(help="output directory")] = "out",
) -> None:
    """Simulate MODEL RUNS times; write observables.nc, observables.png and a summary."""
    import jax

    from agentgrad.engine import Model, ensemble, map_key_batches
    from agentgrad.io import observables_dataset, write_netcdf
    from agentgrad.plotting import plot_observables

    files = ["observables.nc", "observables.png", "provenance.json"]
    if runs < 1 or batch < 1:
        fail("--runs and --batch must be positive integers")
    if animate:
        files.append("animation.gif")
    out = prepare_output_dir(out, files)
    setup = _setup(opts)
    if animate and type(setup.model).frame is Model.frame:
        fail(
            f"{opts.model} has no picture of its state to animate; --animate works for "
            "spatial models (sirs-grid, schelling, schelling-agents, predator-prey, "
            "sugarscape, or a Model that defines frame(state))"
        )
    batch = min(batch, runs)
    _require(
        setup,
        f"{runs} runs of {opts.model}",
        "use fewer --runs or a smaller --batch",
        batch=batch,
        runs=runs,
    )
    keys = jax.random.split(jax.random.key(opts.seed), runs)
    with _interruptible("interrupted (Ctrl-C) during the simulation; nothing was written"):
        with progress_bar("runs") as progress:
            task = progress.add_task(f"{opts.model}", total=runs)
            observables = map_key_batches(
                lambda k: ensemble(setup.model, setup.params, k, setup.n_steps).observables,
                keys,
                batch,
                lambda done: progress.update(task, completed=done),
            )

    meta = _provenance(setup, "run", runs=runs, batch=batch)
    ds = observables_dataset(observables, meta)
    label_units(ds, setup)
    writers = {
        "observables.nc": lambda p: write_netcdf(ds, p),
        "observables.png": lambda p: plot_observables(ds, p, title=f"{opts.model}, {runs} runs"),
        "provenance.json": _json_writer(meta),
    }
    if animate:
        writers["animation.gif"] = _animation_writer(setup, keys[0], opts.model)
    save_outputs(out, writers, "run")
    table = Table(title=f"{opts.model}: {runs} runs x {setup.n_steps} steps", title_justify="left")
    for col in ("observable", "mean at end", "peak of mean", "peak step"):
        table.add_column(col, justify="right" if col != "observable" else "left")
    for name, v in observables.items():
        if v.ndim != 2:
            continue
        mean = v.mean(axis=0)
        table.add_row(name, f"{mean[-1]:.4g}", f"{mean.max():.4g}", str(int(mean.argmax()) + 1))
    console.print(table)
    also = f" and {out / 'animation.gif'}" if animate else ""
    console.print(f"wrote {out / 'observables.nc'}, {out / 'observables.png'}{also}")


def _animation_writer(setup: Setup, key, title: str):
    """Simulate run 0 again keeping every state; return a writer of its frames as a GIF."""
    from agentgrad.frames import run_frames
    from agentgrad.plotting import animate

    frames = run_frames(setup.model, setup.params, key, setup.n_steps)
    return lambda p: animate(frames, p, title=title)


# --------------------------------------------------------------------------- gradcheck

RELAXED_TOLERANCE = 1e-4  # AD vs FD of the relaxed simulator (ad-vs-sbi digest D.1 item 2)


@app.command("gradcheck")
@model_command(estimator_help=None)
def gradcheck_command(
    opts: ModelOptions,
    estimators: Annotated[
        str | None,
        typer.Option(
            help="comma-separated estimators, e.g. st,gs:0.1,sad; 'model' = the model as "
            "built (default: the model's estimator, or model for models without random draws)"
        ),
    ] = None,
    runs: Annotated[int, typer.Option(help="number of independent runs")] = 32,
    fd_runs: Annotated[int | None, typer.Option(help="runs for finite differences")] = None,
    params: Annotated[
        str | None, typer.Option("--params", help="comma-separated parameters (default all)")
    ] = None,
    observable: Annotated[str, typer.Option(help="observable to differentiate")] = "",
    rel_step: Annotated[float, typer.Option(help="FD step relative to |θ|")] = 0.05,
    expect_unbiased: Annotated[
        str | None,
        typer.Option(help="estimators that must agree with FD (|z| <= 4); else exit 1"),
    ] = None,
    relaxed: Annotated[
        bool | None,
        typer.Option(
            "--relaxed/--no-relaxed",
            help="also check AD of the relaxed (soft Gumbel-softmax) simulator against its "
            "finite differences at fixed noise in float64 (default: on for gs estimators)",
        ),
    ] = None,
    out: Annotated[str, typer.Option(help="output directory")] = "out-gradcheck",
) -> None:
    """Compare AD gradient estimators with finite differences (common random numbers).

    Two questions, two tables: is an estimator's mean gradient the derivative of the
    discrete ABM's mean (FD of the ABM), and, for Gumbel-softmax estimators, is AD of the
    relaxed simulator exact (FD of that simulator at fixed noise, float64).
    """
    import jax
    from pandas import concat as _concat

    from agentgrad.estimators import GumbelSoftmax, parse_estimator
    from agentgrad.gradients import (
        check_float64,
        check_observable,
        compare_estimators,
        relaxed_gradcheck,
        select_parameters,
        with_estimator,
    )
    from agentgrad.plotting import plot_gradcheck
    from agentgrad.plugins import resolve_model

    files = ["gradcheck.csv", "gradcheck.png", "provenance.json"]
    labels = None if estimators is None else _split_list(estimators)
    if labels == []:
        fail("--estimators needs at least one estimator, e.g. st,gs:0.1")
    try:
        parsed = {lab: None if lab == "model" else parse_estimator(lab) for lab in labels or []}
    except ValueError as err:
        fail(str(err))
    if runs < 1 or (fd_runs is not None and fd_runs < 1):
        fail("--runs and --fd-runs must be positive integers")
    _check_positive_finite(rel_step=rel_step)
    entry = resolve_model(opts.model)
    has_draws = "estimator" in entry.options
    if labels is None:
        label = entry.default_estimator if has_draws else "model"
        labels = [label]
        parsed = {label: parse_estimator(label) if has_draws else None}
    elif not has_draws and any(lab != "model" for lab in labels):
        fail(f"--estimators does not apply to {opts.model}: it has no random draws (use model)")
    expected = _split_list(expect_unbiased) or []
    unknown = [e for e in expected if e not in parsed]
    if unknown:
        fail(f"--expect-unbiased {unknown[0]!r} is not among --estimators {','.join(labels)}")
    first = next((lab for lab in labels if lab != "model"), None)
    relaxed_labels = [lab for lab, est in parsed.items() if isinstance(est, GumbelSoftmax)]
    if relaxed and not relaxed_labels:
        fail("--relaxed needs a Gumbel-softmax estimator among --estimators, e.g. gs:0.05")
    if relaxed is None:  # by default only where the model's own estimator is Gumbel-softmax
        relaxed = isinstance(parse_estimator(entry.default_estimator), GumbelSoftmax)
    if not relaxed:
        relaxed_labels = []
    if relaxed_labels:
        files.append("gradcheck_relaxed.csv")
    out = prepare_output_dir(out, files)
    setup = _setup(replace(opts, estimator=first if has_draws else None))
    observable = observable or _observables_of(setup.model)[0]
    check_observable(setup.model, observable)
    if relaxed_labels:
        check_float64(setup.model)
    names = select_parameters(setup.model.param_space, _split_list(params))
    _require(
        setup,
        f"gradcheck of {len(names)} parameters over {runs} runs",
        "use fewer --runs or --params",
        batch=8,
        runs=runs + (fd_runs or runs),
        directions=len(names),
    )
    with _interruptible("interrupted (Ctrl-C) during gradcheck; nothing was written"):
        with console.status("differentiating and finite-differencing..."):
            result = compare_estimators(
                setup.model,
                parsed,
                setup.params,
                jax.random.key(opts.seed),
                setup.n_steps,
                runs,
                observable,
                parameters=names,
                fd_runs=fd_runs,
                rel_step=rel_step,
            )
        relaxed_tables = []
        for lab in relaxed_labels:
            with console.status(f"checking AD of the relaxed simulator ({lab}) in float64..."):
                table = relaxed_gradcheck(
                    with_estimator(setup.model, parsed[lab]),
                    setup.params,
                    jax.random.key(opts.seed),
                    setup.n_steps,
                    min(runs, 4),
                    observable,
                    parameters=names,
                )
            relaxed_tables.append(table.assign(estimator=lab))
    meta = _provenance(
        setup,
        "gradcheck",
        runs=runs,
        fd_runs=fd_runs or runs,
        estimators=",".join(labels),
        observable=observable,
        rel_step=rel_step,
    )
    save_outputs(
        out,
        {
            "gradcheck.csv": lambda p: result.table.to_csv(p, index=False),
            "gradcheck.png": lambda p: plot_gradcheck(
                result.table, p, title=f"{opts.model}: d E({observable}_t) / dθ"
            ),
            "provenance.json": _json_writer(meta),
            **(
                {"gradcheck_relaxed.csv": lambda p: _concat(relaxed_tables).to_csv(p, index=False)}
                if relaxed_tables
                else {}
            ),
        },
        "gradcheck",
    )
    table = Table(
        title=f"{opts.model}: d E({observable}_t) / dθ, {runs} runs", title_justify="left"
    )
    for col in ("estimator", "parameter", "relative error", "max |z|", "steps z-tested"):
        table.add_column(col)
    for row in result.summary.itertuples():
        table.add_row(
            row.estimator,
            row.parameter,
            f"{row.rel_error:.3g}",
            f"{row.max_abs_z:.2f}",
            f"{row.steps_tested}/{setup.n_steps}",
        )
    console.print(table)
    relaxed_failed = []
    if relaxed_tables:
        table = Table(
            title="AD of the relaxed simulator vs its central differences "
            f"(fixed noise, float64, {min(runs, 4)} runs)",
            title_justify="left",
        )
        for col in ("estimator", "parameter", "best step h", "relative error", "exact"):
            table.add_column(col)
        for rows in relaxed_tables:
            for (lab, name), group in rows.groupby(["estimator", "parameter"], sort=False):
                best = group.loc[group.rel_error.idxmin()]
                ok = best.rel_error <= RELAXED_TOLERANCE
                if not ok:
                    relaxed_failed.append(f"{lab} ({name})")
                table.add_row(
                    lab, name, f"{best.fd_step:.0e}", f"{best.rel_error:.2g}", "yes" if ok else "NO"
                )
        console.print(table)
        console.print(
            "The first table compares with the discrete ABM (an estimator's bias); the "
            "second checks that AD differentiates the relaxed simulator exactly."
        )
    if relaxed_failed:
        console.print(
            f"not exact for {', '.join(relaxed_failed)}: the relaxed simulator is not smooth "
            "in these parameters (hard gates, argmax or integer draws left in the model) or "
            "its derivative is wrong",
            highlight=False,
        )
    console.print(f"wrote {out / 'gradcheck.csv'} and {out / 'gradcheck.png'}")
    biased = result.biased(expected)
    if biased:
        Console(stderr=True).print(
            f"[red]failed:[/red] {', '.join(biased)} differ from finite differences by more "
            "than 4 combined standard errors",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(1)


# --------------------------------------------------------------------------- sensitivity


@app.command("sensitivity")
@model_command(estimator_help="st | gs:TAU | none | smoothed | sad")
def sensitivity_command(
    opts: ModelOptions,
    observable: Annotated[str, typer.Option(help="observable to differentiate")] = "",
    runs: Annotated[int, typer.Option(help="number of independent runs")] = 16,
    mode: Annotated[str, typer.Option(help="auto | forward | reverse")] = "auto",
    params: Annotated[
        str | None, typer.Option("--params", help="comma-separated parameters (default all)")
    ] = None,
    compare_fd: Annotated[
        bool, typer.Option(help="also one-at-a-time finite differences (2 P runs each)")
    ] = False,
    checkpoint: Annotated[bool, typer.Option(help="reverse mode: sqrt checkpointing")] = False,
    out: Annotated[str, typer.Option(help="output directory")] = "out-sensitivity",
) -> None:
    """Jacobian of an observable over time w.r.t. every parameter, with elasticities."""
    import jax

    from agentgrad.gradients import check_observable, select_parameters
    from agentgrad.io import netcdf_attrs, write_netcdf
    from agentgrad.plotting import plot_sensitivity
    from agentgrad.sensitivity import choose_mode, ranking, sensitivity

    files = ["sensitivity.nc", "sensitivity.png", "ranking.csv", "provenance.json"]
    if runs < 1:
        fail("--runs must be a positive integer")
    if mode not in ("auto", "forward", "reverse"):
        fail(f"--mode must be auto, forward or reverse, got {mode!r}")
    if checkpoint and mode == "forward":
        fail("--checkpoint applies to reverse mode only; drop it or use --mode reverse")
    out = prepare_output_dir(out, files)
    setup = _setup(opts)
    observable = observable or _observables_of(setup.model)[0]
    check_observable(setup.model, observable)
    names = select_parameters(setup.model.param_space, _split_list(params))
    resolved = choose_mode(len(names), setup.n_steps, mode)
    _require(
        setup,
        f"{resolved}-mode sensitivity of {len(names)} parameters",
        "use fewer --runs, --params or --steps"
        + (", or --checkpoint" if resolved == "reverse" else ""),
        batch=8,
        runs=runs,
        directions=len(names),
        reverse=resolved == "reverse",
        checkpoint=checkpoint,
    )
    with _interruptible(
        "interrupted (Ctrl-C) during the sensitivity analysis; nothing was written"
    ):
        with console.status("computing the Jacobian..."):
            ds = sensitivity(
                setup.model,
                setup.params,
                jax.random.key(opts.seed),
                setup.n_steps,
                runs,
                observable,
                parameters=names,
                mode=mode,
                checkpoint=checkpoint,
                compare_fd=compare_fd,
            )
    meta = _provenance(
        setup, "sensitivity", runs=runs, observable=observable, mode=ds.attrs["mode"]
    )
    ds.attrs.update(netcdf_attrs({k: v for k, v in meta.items() if k not in ds.attrs}))
    ranked = ranking(ds)

    def write_ranking(path: Path) -> None:
        lines = ["rank,parameter,mean_abs_elasticity"]
        lines += [f"{i},{name},{score:.6g}" for i, (name, score) in enumerate(ranked, 1)]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    save_outputs(
        out,
        {
            "sensitivity.nc": lambda p: write_netcdf(ds, p),
            "sensitivity.png": lambda p: plot_sensitivity(ds, p),
            "ranking.csv": write_ranking,
            "provenance.json": _json_writer(meta),
        },
        "sensitivity",
    )
    table = Table(
        title=f"{opts.model}: sensitivity of {observable} ({ds.attrs['mode']} mode, {runs} runs)",
        title_justify="left",
    )
    for col in ("rank", "parameter", "mean |elasticity|", "peak |dy/dθ|", "at step"):
        table.add_column(col)
    for i, (name, score) in enumerate(ranked, 1):
        j = abs(ds["jacobian"].sel(parameter=name).values)
        table.add_row(str(i), name, f"{score:.3g}", f"{j.max():.3g}", str(int(j.argmax()) + 1))
    console.print(table)
    console.print(
        f"simulations: AD {ds.attrs['ad_simulations']} vs one-at-a-time FD "
        f"{ds.attrs['fd_simulations']}; wrote {out / 'sensitivity.nc'}, "
        f"{out / 'sensitivity.png'}, {out / 'ranking.csv'}"
    )


# --------------------------------------------------------------------------- calibrate


GVI_OPTIONS = ("loss", "gradient", "ad", "family", "kl_weight", "epochs", "samples", "sims")
GVI_OPTIONS += ("learning_rate",)
SBI_OPTIONS = {"rounds": ("npe", "nle", "nre", "snpe", "snle", "snvi"), "alpha": ("snvi",)}
SBI_OPTIONS["particles"] = ("abc",)


def _method_from_options(method: str, given: dict[str, Any]):
    """The method object for ``--method`` and its options (errors for foreign options)."""
    from agentgrad.calibration import GVI

    method = method.lower()
    if method == "gvi":
        foreign = [k for k in SBI_OPTIONS if given.get(k) is not None]
        if foreign:
            fail(f"--{foreign[0]} does not apply to --method gvi")
        names = {"samples": "n_samples", "sims": "n_sims"}
        settings = {names.get(k, k): given[k] for k in GVI_OPTIONS if given.get(k) is not None}
        return GVI(**settings)
    from agentgrad.calibration.sbi import METHODS, require_sbi

    if method not in METHODS:
        fail(f"unknown method {method!r}; use gvi, {', '.join(METHODS)}")
    foreign = [k for k in GVI_OPTIONS if given.get(k) is not None]
    foreign += [
        k for k, owners in SBI_OPTIONS.items() if given.get(k) is not None and method not in owners
    ]
    if given.get("resume"):
        foreign.append("resume")
    if foreign:
        fail(f"--{foreign[0].replace('_', '-')} does not apply to --method {method}")
    require_sbi()
    settings = {k: given[k] for k in SBI_OPTIONS if given.get(k) is not None}
    return METHODS[method](**settings)


@app.command("calibrate")
@model_command(estimator_help="st | gs:TAU | smoothed | sad")
def calibrate_command(
    opts: ModelOptions,
    data: Annotated[
        Path | None, typer.Option(help="observed CSV: header of observable names, a row per step")
    ] = None,
    synthetic: Annotated[
        str | None,
        typer.Option(help="instead of --data: simulate data at name=value,... (true values)"),
    ] = None,
    observables: Annotated[
        str | None, typer.Option(help="with --synthetic: observables to fit (default all)")
    ] = None,
    params: Annotated[
        str | None, typer.Option("--params", help="comma-separated parameters to calibrate")
    ] = None,
    method: Annotated[
        str, typer.Option(help="gvi | npe | nle | nre | snpe | snle | snvi | abc (sbi extra)")
    ] = "gvi",
    budget: Annotated[
        int | None,
        typer.Option(help="simulator runs to spend (default: gvi until converged, sbi 1000)"),
    ] = None,
    loss: Annotated[
        str | None, typer.Option(help="gvi: synthetic (default, scale-free) | mse | mmd | gauss")
    ] = None,
    gradient: Annotated[str | None, typer.Option(help="gvi: pathwise | score | vargrad")] = None,
    ad: Annotated[str | None, typer.Option(help="gvi pathwise AD: reverse | forward | hybrid")] = (
        None
    ),
    family: Annotated[str | None, typer.Option(help="gvi: flow | spline | gaussian")] = None,
    kl_weight: Annotated[
        float | None, typer.Option(help="gvi: w in E[loss] + w KL(q || prior); default 1")
    ] = None,
    epochs: Annotated[
        int | None, typer.Option(help="gvi: fixed optimisation steps (default: until converged)")
    ] = None,
    samples: Annotated[int | None, typer.Option(help="gvi: q samples per step (5)")] = None,
    sims: Annotated[int | None, typer.Option(help="gvi: simulator runs per sample (4)")] = None,
    learning_rate: Annotated[float | None, typer.Option(help="gvi: AdamW learning rate")] = None,
    rounds: Annotated[int | None, typer.Option(help="sbi: rounds of simulation")] = None,
    alpha: Annotated[float | None, typer.Option(help="snvi: Renyi alpha (0.1)")] = None,
    particles: Annotated[int | None, typer.Option(help="abc: particles per population")] = None,
    checkpoint_every: Annotated[
        int, typer.Option(help="gvi: epochs between resumable checkpoints in --out")
    ] = 25,
    resume: Annotated[
        bool, typer.Option(help="gvi: continue from the checkpoint in --out (same settings)")
    ] = False,
    out: Annotated[str, typer.Option(help="output directory")] = "out-calibration",
) -> None:
    """Bayesian calibration (GVI by default, or SBI); writes posterior.nc, plots, diagnostics."""
    import jax
    import numpy as np

    from agentgrad.calibration import GVI, calibrate, coverage, posterior_predictive
    from agentgrad.engine import simulate
    from agentgrad.gradients import select_parameters
    from agentgrad.io import netcdf_attrs, read_observed_csv
    from agentgrad.plotting import plot_posterior_pairs, plot_predictive, plot_training

    files = [
        "posterior.nc",
        "posterior.eqx",
        "posterior.eqx.json",
        "posterior.pt",
        "training.png",
        "posterior_pairs.png",
        "predictive.png",
        "diagnostics.json",
        "provenance.json",
        "checkpoint.eqx",
        "checkpoint.json",
    ]
    if (data is None) == (synthetic is None):
        fail("give exactly one of --data FILE or --synthetic name=value,...")
    if data is not None:
        for option, value in (("steps", opts.steps), ("observables", observables)):
            if value is not None:
                fail(f"--{option} does not apply with --data: the data file fixes the {option}")
    for option, value in (
        ("epochs", epochs),
        ("samples", samples),
        ("sims", sims),
        ("checkpoint-every", checkpoint_every),
        ("budget", budget),
        ("rounds", rounds),
        ("particles", particles),
    ):
        if value is not None and value < 1:
            fail(f"--{option} must be a positive integer, got {value}")
    hyper = {"kl_weight": kl_weight, "learning_rate": learning_rate}
    _check_positive_finite(**{k: v for k, v in hyper.items() if v is not None})
    if alpha is not None and not (math.isfinite(alpha) and 0 < alpha < 1):
        fail(f"--alpha must be in (0, 1), got {alpha}")
    given = dict(locals())
    calibration = _method_from_options(method, given)
    is_gvi = isinstance(calibration, GVI)
    if budget is not None and budget < calibration.minimum_budget():
        fail(
            f"--budget {budget} is too small for --method {method}: it needs at least "
            f"{calibration.minimum_budget()} simulator runs"
        )
    out = prepare_output_dir(out, files)
    if resume and not (out / "checkpoint.eqx").is_file():
        fail(f"--resume: no checkpoint in {str(out)!r} (checkpoint.eqx); run without --resume")
    setup = _setup(opts)
    space = setup.model.param_space
    names = select_parameters(space, _split_list(params) or list(space.names))
    valid = _observables_of(setup.model)
    truth = None
    if data is not None:
        observed = read_observed_csv(data, valid)
        setup.n_steps = len(next(iter(observed.values())))
    else:
        truth = parse_param_assignments(_split_list(synthetic) or [])
        unknown = [n for n in truth if n not in space.names]
        if unknown:
            fail(f"--synthetic: unknown parameter {unknown[0]!r}; valid: {', '.join(space.names)}")
        wanted = _split_list(observables) or list(valid)
        unknown = [o for o in wanted if o not in valid]
        if unknown:
            fail(f"unknown observable {unknown[0]!r}; valid names are: {', '.join(valid)}")
    batch = calibration.n_samples * calibration.n_sims if is_gvi else 256
    _require(
        setup,
        f"calibration with {batch} simulations at once",
        "use fewer --samples or --sims" if is_gvi else "use fewer --agents",
        batch=batch,
        runs=batch,
        directions=len(names),
        reverse=is_gvi and calibration.gradient == "pathwise" and calibration.ad == "reverse",
    )
    if truth is not None:
        full = space.complete({**setup.params, **truth})
        traj = simulate(setup.model, full, jax.random.key(opts.seed + 1), setup.n_steps)
        observed = {k: np.asarray(traj.observables[k]) for k in wanted}
    checkpoint = out / "checkpoint.eqx"
    with _interruptible(
        f"interrupted (Ctrl-C); the last checkpoint is in {checkpoint}: rerun the same command "
        "with --resume to continue"
        if is_gvi
        else "interrupted (Ctrl-C); nothing was written"
    ):
        extra = (
            {"checkpoint": checkpoint, "checkpoint_every": checkpoint_every, "resume": resume}
            if is_gvi
            else {}
        )
        post = calibrate(
            setup.model,
            observed,
            jax.random.key(opts.seed),
            calibration,
            parameters=names,
            fixed=setup.params,
            budget=budget,
            progress=True,
            **extra,
        )
        draws = post.sample(jax.random.key(opts.seed + 3), 2000)
        pred = posterior_predictive(
            post, jax.random.key(opts.seed + 4), 200, setup.n_steps, setup.params
        )
        idata = post.to_inference_data(jax.random.key(opts.seed + 2), 2000, observed, pred)
    diagnostics = {**post.diagnostics, "coverage_90": coverage(pred, observed, 0.9)}
    meta = _provenance(
        setup,
        "calibrate",
        data=str(data or ""),
        synthetic=synthetic or "",
        calibrated=",".join(names),
        method=method,
        budget=budget if budget is not None else "",
        settings=repr(calibration),
        simulations=post.history.get("simulations", ""),
        observables=",".join(observed),
    )
    idata.posterior.attrs.update(netcdf_attrs(meta))
    idata.posterior.attrs.update(
        {f"contraction_{k}": v for k, v in diagnostics["contraction"].items()}
    )
    units = setup.entry.observable_units
    writers = {
        "posterior.nc": lambda p: idata.to_netcdf(str(p)),
        "posterior_pairs.png": lambda p: plot_posterior_pairs(draws, truth, p),
        "predictive.png": lambda p: plot_predictive(pred, observed, p, units),
        "diagnostics.json": _json_writer(diagnostics),
        "provenance.json": _json_writer(meta),
    }
    if is_gvi:
        writers["posterior.eqx"] = lambda p: post.save_weights(p)
        writers["posterior.eqx.json"] = lambda p: post.save_description(p)
        writers["training.png"] = lambda p: plot_training(post.history, p)
    else:
        writers["posterior.pt"] = lambda p: post.save(p)
    save_outputs(out, writers, "calibrate")
    table = Table(title=f"{opts.model}: posterior ({method})", title_justify="left")
    for col in ("parameter", "mean", "5%", "95%", "true", "contraction"):
        table.add_column(col)
    for name, v in draws.items():
        lo, hi = np.percentile(np.asarray(v), [5, 95])
        true = f"{truth[name]:.4g}" if truth and name in truth else ""
        shrink = f"{diagnostics['contraction'][name]:.0%}"
        table.add_row(name, f"{float(v.mean()):.4g}", f"{lo:.4g}", f"{hi:.4g}", true, shrink)
    console.print(table)
    console.print(
        "contraction = 1 - posterior sd / prior sd (0%: the data said nothing; 100%: exact)"
    )
    for line in diagnostics["warnings"]:
        _stderr_line("[yellow]warning:[/yellow]", line)
    console.print(
        f"simulator runs: {post.history.get('simulations')}; 90% predictive coverage of the "
        f"data: {diagnostics['coverage_90']:.2f}; wrote {out / 'posterior.nc'}, "
        "diagnostics.json, plots"
    )


# --------------------------------------------------------------------------- population


@population_app.command("synthesize")
def population_synthesize_command(
    agents: Annotated[int, typer.Option(help="number of agents")] = 10_000,
    structure: Annotated[
        str,
        typer.Option(
            help="er: ages and one Erdős–Rényi network; hybrid: household, school, "
            "workplace and community layers"
        ),
    ] = "er",
    mean_degree: Annotated[
        float | None, typer.Option(help="mean number of contacts (er only; default 10)")
    ] = None,
    binary: Annotated[
        bool, typer.Option(help="write population.npz (loads in seconds at 10^7 agents)")
    ] = False,
    seed: Annotated[int, typer.Option(help=f"random seed in [0, {SEED_MAX}]")] = 0,
    out: Annotated[str, typer.Option(help="output directory")] = "pop",
) -> None:
    """Write a synthetic population for `run seirm --population` (CSV, or --binary npz)."""
    from agentgrad.models import population as pops

    _check_seed(seed)
    if agents < 2:
        fail(f"--agents must be an integer >= 2, got {agents}")
    if structure not in ("er", "hybrid"):
        fail(f"--structure must be er or hybrid, got {structure!r}")
    if mean_degree is not None and structure != "er":
        fail("--mean-degree applies to --structure er only")
    mean_degree = 10.0 if mean_degree is None else mean_degree
    if not math.isfinite(mean_degree) or not 0 <= mean_degree <= agents - 1:
        fail(f"--mean-degree must be in [0, {agents - 1}], got {mean_degree}")
    names = [pops.BINARY] if binary else ["ages.csv", "contacts.csv"]
    out = prepare_output_dir(out, names)
    import jax

    key = jax.random.key(seed)
    if structure == "hybrid":
        from agentgrad.models.hybrid_population import hybrid_population

        population = hybrid_population(agents, key=key)
    else:
        population = pops.synthetic_population(agents, mean_degree, key=key)
    writers = (
        {pops.BINARY: lambda p: pops.write_binary(population, p)}
        if binary
        else {
            "ages.csv": lambda p: pops.write_ages(population, p),
            "contacts.csv": lambda p: pops.write_contacts(population, p),
        }
    )
    save_outputs(out, writers, "population")
    console.print(
        f"wrote {' and '.join(str(out / n) for n in names)} ({agents} agents, "
        f"{population.graph.n_edges} contacts)"
    )


def enable_compilation_cache() -> Path | None:
    """Use JAX's persistent compilation cache for command-line runs, so a repeated command
    skips most compilation: ``$AGENTGRAD_CACHE_DIR`` or ``~/.cache/agentgrad/jax``
    (``AGENTGRAD_CACHE_DIR=off`` disables it).  Returns the directory, or None."""
    setting = os.environ.get("AGENTGRAD_CACHE_DIR", "")
    if setting.lower() in ("off", "0", "no", "false"):
        return None
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    path = Path(setting) if setting else base / "agentgrad" / "jax"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None  # an unwritable cache only costs time; never fail a run for it
    import jax

    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
    return path


def main() -> None:
    """Console-script entry point."""
    enable_compilation_cache()
    app()


from agentgrad import cli_sweep  # noqa: E402, F401  (registers `sweep`; imports this module)
from agentgrad.cli_surrogate import surrogate_app  # noqa: E402  (it imports this module)

app.add_typer(surrogate_app, name="surrogate")


if __name__ == "__main__":
    main()
