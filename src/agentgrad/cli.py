"""The ``agentgrad`` command line.

``agentgrad models`` lists the model library; ``agentgrad run MODEL ...`` simulates
an ensemble and writes ``observables.nc``, ``observables.png`` and a summary;
``agentgrad gradcheck`` compares gradient estimators with finite differences;
``agentgrad sensitivity`` writes the Jacobian of an observable over time.  Bad input
prints one ``error: ...`` line and exits with code 2.
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
        presets = f"; --preset {' | '.join(entry.presets)}" if entry.presets else ""
        console.print(
            f"  default --steps {entry.default_steps}; structural options: {opts}{presets}\n"
        )


ModelArg = Annotated[str, typer.Argument(help="model name, e.g. sir-network (see `models`)")]
StepsOpt = Annotated[int | None, typer.Option(help="number of steps (model default)")]
AgentsOpt = Annotated[int | None, typer.Option(help="number of agents")]
ParamOpt = Annotated[
    list[str] | None, typer.Option("--param", "-p", help="parameter value, name=value")
]
SeedOpt = Annotated[int, typer.Option(help="random seed")]
GraphOpt = Annotated[
    str | None,
    typer.Option(
        help="network models: complete | erdos-renyi:MEAN_DEGREE | watts-strogatz:K:P | "
        "barabasi-albert:M | file:PATH"
    ),
]
PopulationOpt = Annotated[
    Path | None,
    typer.Option(help="seirm: directory with ages.csv and contacts.csv (see the user guide)"),
]
PresetOpt = Annotated[
    str | None, typer.Option(help="named parameter set, e.g. predator-prey psi1..psi4")
]
GridOpt = Annotated[int | None, typer.Option(help="grid models: side length")]
RunsOpt = Annotated[int, typer.Option(help="number of independent runs")]
OutOpt = Annotated[Path, typer.Option(help="output directory")]


def _setup(
    model, steps, agents, param, seed, estimator, graph, grid_size, population=None, preset=None
):
    """Validate the shared model options; return (entry, n_steps, params, model)."""
    from agentgrad.estimators import parse_estimator
    from agentgrad.models import BuildOptions

    entry = _entry(model)
    structural = (
        ("agents", agents),
        ("graph", graph),
        ("grid_size", grid_size),
        ("population", population),
    )
    for option, value in structural:
        if value is not None and option not in entry.options:
            fail(f"--{option.replace('_', '-')} does not apply to {model}")
    for option, value in (("steps", steps), ("agents", agents), ("grid-size", grid_size)):
        if value is not None and value < 1:
            fail(f"--{option} must be a positive integer, got {value}")
    try:
        est = parse_estimator(estimator) if isinstance(estimator, str) else estimator
        base = {}
        if preset is not None:
            if not entry.presets:
                fail(f"--preset does not apply to {model}")
            if preset not in entry.presets:
                fail(f"unknown preset {preset!r} for {model}; choose {', '.join(entry.presets)}")
            base = dict(entry.presets[preset])
        assigned = {**base, **parse_param_assignments(param or [])}
        params = entry.param_space.complete(assigned)
        sim_model = entry.build(
            BuildOptions(est, seed, agents, graph, grid_size, population and str(population))
        )
    except ValueError as err:
        fail(str(err))
    return entry, steps or entry.default_steps, params, sim_model


def _make_out(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        fail(f"cannot create output directory {str(out)!r}: {err.strerror or err}")


def _split_list(text: str | None) -> list[str] | None:
    if text is None:
        return None
    items = [t.strip() for t in text.split(",") if t.strip()]
    return items


@app.command("run")
def run_command(
    model: ModelArg,
    steps: StepsOpt = None,
    agents: AgentsOpt = None,
    param: ParamOpt = None,
    seed: SeedOpt = 0,
    estimator: Annotated[str, typer.Option(help="st | gs:TAU | gs-soft:TAU | none")] = "st",
    runs: RunsOpt = 10,
    graph: GraphOpt = None,
    population: PopulationOpt = None,
    preset: PresetOpt = None,
    grid_size: GridOpt = None,
    batch: Annotated[int, typer.Option(help="runs simulated together (vmap)")] = 16,
    out: OutOpt = Path("out"),
) -> None:
    """Simulate MODEL RUNS times; write observables.nc, observables.png and a summary."""
    import jax

    from agentgrad.engine import ensemble, map_key_batches
    from agentgrad.io import observables_dataset, write_netcdf
    from agentgrad.plotting import plot_observables

    if runs < 1 or batch < 1:
        fail("--runs and --batch must be positive integers")
    _, n_steps, params, sim_model = _setup(
        model, steps, agents, param, seed, estimator, graph, grid_size, population, preset
    )
    keys = jax.random.split(jax.random.key(seed), runs)
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} runs"),
        TimeElapsedColumn(),
        console=console,
        transient=not sys.stdout.isatty(),
    ) as progress:
        task = progress.add_task(f"{model}", total=runs)
        observables = map_key_batches(
            lambda k: ensemble(sim_model, params, k, n_steps).observables,
            keys,
            batch,
            lambda done: progress.update(task, completed=done),
        )

    attrs = {"model": model, "estimator": estimator, "seed": seed, "steps": n_steps}
    attrs.update({f"param_{k}": float(v) for k, v in params.items()})
    ds = observables_dataset(observables, attrs)
    _make_out(out)
    try:
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


@app.command("gradcheck")
def gradcheck_command(
    model: ModelArg,
    estimators: Annotated[
        str | None,
        typer.Option(
            help="comma-separated estimators, e.g. st,gs:0.1; 'model' = the model as built "
            "(default: st, or model for models without random draws)"
        ),
    ] = None,
    runs: RunsOpt = 32,
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
    steps: StepsOpt = None,
    agents: AgentsOpt = None,
    param: ParamOpt = None,
    seed: SeedOpt = 0,
    graph: GraphOpt = None,
    population: PopulationOpt = None,
    preset: PresetOpt = None,
    grid_size: GridOpt = None,
    out: OutOpt = Path("out-gradcheck"),
) -> None:
    """Compare AD gradient estimators with finite differences (common random numbers)."""
    import jax

    from agentgrad.estimators import parse_estimator
    from agentgrad.gradients import compare_estimators
    from agentgrad.plotting import plot_gradcheck

    labels = None if estimators is None else _split_list(estimators)
    if labels == []:
        fail("--estimators needs at least one estimator, e.g. st,gs:0.1")
    try:
        parsed = {lab: None if lab == "model" else parse_estimator(lab) for lab in labels or []}
    except ValueError as err:
        fail(str(err))
    if runs < 1 or (fd_runs is not None and fd_runs < 1):
        fail("--runs and --fd-runs must be positive integers")
    if not rel_step > 0:
        fail(f"--rel-step must be > 0, got {rel_step}")
    first = (parsed[labels[0]] if labels else None) or "st"
    entry, n_steps, values, sim_model = _setup(
        model, steps, agents, param, seed, first, graph, grid_size, population, preset
    )
    if labels is None:  # default: straight-through, or the surrogate of draw-free models
        estimators = "st" if hasattr(sim_model, "estimator") else "model"
        parsed = {estimators: parse_estimator("st") if estimators == "st" else None}
    expected = _split_list(expect_unbiased) or []
    unknown = [e for e in expected if e not in parsed]
    if unknown:
        fail(f"--expect-unbiased {unknown[0]!r} is not among --estimators {estimators!r}")
    observable = observable or _observables_of(sim_model)[0]
    try:
        with console.status("differentiating and finite-differencing..."):
            result = compare_estimators(
                sim_model,
                parsed,
                values,
                jax.random.key(seed),
                n_steps,
                runs,
                observable,
                parameters=_split_list(params),
                fd_runs=fd_runs,
                rel_step=rel_step,
            )
    except ValueError as err:
        fail(str(err))
    _make_out(out)
    result.table.to_csv(out / "gradcheck.csv", index=False)
    plot_gradcheck(result.table, out / "gradcheck.png", title=f"{model}: d E({observable}_t) / dθ")
    table = Table(title=f"{model}: d E({observable}_t) / dθ, {runs} runs", title_justify="left")
    for col in ("estimator", "parameter", "relative error", "max |z|"):
        table.add_column(col)
    for row in result.summary.itertuples():
        table.add_row(row.estimator, row.parameter, f"{row.rel_error:.3g}", f"{row.max_abs_z:.2f}")
    console.print(table)
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


def _observables_of(sim_model) -> tuple[str, ...]:
    from agentgrad.gradients import observable_names

    return observable_names(sim_model)


@app.command("sensitivity")
def sensitivity_command(
    model: ModelArg,
    observable: Annotated[str, typer.Option(help="observable to differentiate")] = "",
    runs: RunsOpt = 16,
    mode: Annotated[str, typer.Option(help="auto | forward | reverse")] = "auto",
    params: Annotated[
        str | None, typer.Option("--params", help="comma-separated parameters (default all)")
    ] = None,
    compare_fd: Annotated[
        bool, typer.Option(help="also one-at-a-time finite differences (2 P runs each)")
    ] = False,
    checkpoint: Annotated[bool, typer.Option(help="reverse mode: sqrt checkpointing")] = False,
    estimator: Annotated[str, typer.Option(help="st | gs:TAU | none")] = "st",
    steps: StepsOpt = None,
    agents: AgentsOpt = None,
    param: ParamOpt = None,
    seed: SeedOpt = 0,
    graph: GraphOpt = None,
    population: PopulationOpt = None,
    preset: PresetOpt = None,
    grid_size: GridOpt = None,
    out: OutOpt = Path("out-sensitivity"),
) -> None:
    """Jacobian of an observable over time w.r.t. every parameter, with elasticities."""
    import jax

    from agentgrad.io import write_netcdf
    from agentgrad.plotting import plot_sensitivity
    from agentgrad.sensitivity import ranking, sensitivity

    if runs < 1:
        fail("--runs must be a positive integer")
    if mode not in ("auto", "forward", "reverse"):
        fail(f"--mode must be auto, forward or reverse, got {mode!r}")
    _, n_steps, values, sim_model = _setup(
        model, steps, agents, param, seed, estimator, graph, grid_size, population, preset
    )
    observable = observable or _observables_of(sim_model)[0]
    try:
        with console.status("computing the Jacobian..."):
            ds = sensitivity(
                sim_model,
                values,
                jax.random.key(seed),
                n_steps,
                runs,
                observable,
                parameters=_split_list(params),
                mode=mode,
                checkpoint=checkpoint,
                compare_fd=compare_fd,
            )
    except ValueError as err:
        fail(str(err))
    _make_out(out)
    write_netcdf(ds, out / "sensitivity.nc")
    plot_sensitivity(ds, out / "sensitivity.png")
    ranked = ranking(ds)
    with open(out / "ranking.csv", "w", encoding="utf-8") as fh:
        fh.write("rank,parameter,mean_abs_elasticity\n")
        for i, (name, score) in enumerate(ranked, 1):
            fh.write(f"{i},{name},{score:.6g}\n")
    table = Table(
        title=f"{model}: sensitivity of {observable} ({ds.attrs['mode']} mode, {runs} runs)",
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


@app.command("calibrate")
def calibrate_command(
    model: ModelArg,
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
    loss: Annotated[str, typer.Option(help="mse | mmd | gauss")] = "mse",
    gradient: Annotated[str, typer.Option(help="pathwise | score | vargrad")] = "pathwise",
    ad: Annotated[str, typer.Option(help="pathwise AD mode: reverse | forward | hybrid")] = (
        "reverse"
    ),
    family: Annotated[str, typer.Option(help="flow | gaussian")] = "flow",
    kl_weight: Annotated[float, typer.Option(help="w in E[loss] + w KL(q || prior)")] = 1.0,
    epochs: Annotated[int, typer.Option(help="optimisation steps")] = 300,
    samples: Annotated[int, typer.Option(help="Monte-Carlo samples per step")] = 5,
    sims: Annotated[int, typer.Option(help="simulator runs per sample")] = 2,
    learning_rate: Annotated[float, typer.Option(help="AdamW learning rate")] = 1e-2,
    estimator: Annotated[str, typer.Option(help="st | gs:TAU | smoothed")] = "st",
    steps: StepsOpt = None,
    agents: AgentsOpt = None,
    param: ParamOpt = None,
    seed: SeedOpt = 0,
    graph: GraphOpt = None,
    population: PopulationOpt = None,
    preset: PresetOpt = None,
    grid_size: GridOpt = None,
    out: OutOpt = Path("out-calibration"),
) -> None:
    """Bayesian calibration by generalised variational inference; writes posterior.nc and plots."""
    import jax
    import numpy as np

    from agentgrad.calibration import calibrate, coverage, posterior_predictive
    from agentgrad.engine import simulate
    from agentgrad.io import read_observed_csv
    from agentgrad.plotting import plot_calibration

    if (data is None) == (synthetic is None):
        fail("give exactly one of --data FILE or --synthetic name=value,...")
    for option, value in (("epochs", epochs), ("samples", samples), ("sims", sims)):
        if value < 1:
            fail(f"--{option} must be a positive integer, got {value}")
    if not kl_weight > 0 or not learning_rate > 0:
        fail("--kl-weight and --learning-rate must be > 0")
    entry, n_steps, values, sim_model = _setup(
        model, steps, agents, param, seed, estimator, graph, grid_size, population, preset
    )
    names = _split_list(params) or list(entry.param_space.names)
    valid = _observables_of(sim_model)
    truth = None
    try:
        if data is not None:
            observed = read_observed_csv(data, valid)
            n_steps = len(next(iter(observed.values())))
        else:
            truth = parse_param_assignments(_split_list(synthetic) or [])
            full = entry.param_space.complete({**values, **truth})
            traj = simulate(sim_model, full, jax.random.key(seed + 1), n_steps)
            wanted = _split_list(observables) or list(valid)
            unknown = [o for o in wanted if o not in valid]
            if unknown:
                fail(f"unknown observable {unknown[0]!r}; valid names are: {', '.join(valid)}")
            observed = {k: np.asarray(traj.observables[k]) for k in wanted}
        post = calibrate(
            sim_model,
            observed,
            jax.random.key(seed),
            parameters=names,
            fixed=values,
            loss=loss,
            family=family,
            kl_weight=kl_weight,
            n_samples=samples,
            n_sims=sims,
            epochs=epochs,
            learning_rate=learning_rate,
            gradient=gradient,
            ad=ad,
            progress=True,
        )
    except ValueError as err:
        fail(str(err))
    _make_out(out)
    post.to_inference_data(jax.random.key(seed + 2), 2000).to_netcdf(str(out / "posterior.nc"))
    post.save(out / "posterior.eqx")
    draws = post.sample(jax.random.key(seed + 3), 2000)
    pred = posterior_predictive(post, jax.random.key(seed + 4), 200, n_steps, values)
    plot_calibration(post.history, draws, truth, pred, observed, out)
    table = Table(title=f"{model}: posterior ({family}, {gradient}, {loss})", title_justify="left")
    for col in ("parameter", "mean", "5%", "95%", "true"):
        table.add_column(col)
    for name, v in draws.items():
        lo, hi = np.percentile(np.asarray(v), [5, 95])
        true = f"{truth[name]:.4g}" if truth and name in truth else ""
        table.add_row(name, f"{float(v.mean()):.4g}", f"{lo:.4g}", f"{hi:.4g}", true)
    console.print(table)
    bad = post.history.get("non_finite_epochs", [0])[0]
    if bad:
        console.print(f"[yellow]warning:[/yellow] {bad} epochs had a NaN or infinite objective")
    console.print(
        f"90% predictive coverage of the data: {coverage(pred, observed, 0.9):.2f}; wrote "
        f"{out / 'posterior.nc'}, training.png, posterior_pairs.png, predictive.png"
    )


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
