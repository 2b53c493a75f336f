"""``agentgrad surrogate data | train | evaluate``: Graph Diffusion Network surrogates
from the command line (`graph-diffusion-networks-for-abms` §3-4; see
:mod:`agentgrad.surrogate`).

``data`` writes a training ramification (``--steps`` main-branch states x ``--branches``
children), a test ramification of ``--test-steps`` from the last training state, that
state, and the model's options (so later commands rebuild the same model).  With
``--condition-on NAME=LOW:HIGH`` (beyond the paper) the training data are drawn at
``--theta-values`` values of those parameters (evenly spaced for one parameter, a Latin
hypercube for several; the others as given), each from the same initial state, and
``train`` then fits a parameter-conditioned GDN; the test ramification and the main
branch stay at the given parameters.  ``train``
fits a GDN (or an ablation) and writes its checkpoint; ``evaluate`` compares one or
more checkpoints with the ABM (micro EMD, macro sMAPE, AR(1)) and draws the forecasts.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from agentgrad.cli import (  # noqa: I001
    ModelOptions,
    _check_seed,
    _Group,
    _interruptible,
    _json_writer,
    _provenance,
    _setup,
    console,
    fail,
    model_command,
)
from agentgrad.errors import AgentgradError
from agentgrad.outputs import prepare_output_dir, save_outputs

surrogate_app = typer.Typer(
    cls=_Group, help="Learned surrogates (Graph Diffusion Networks).", no_args_is_help=True
)

VARIANTS = ("gdn", "diffusion-only", "gnn-only")


def _ints(text: str, option: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if not values or min(values) < 1:
        fail(f"{option} must be comma-separated positive integers, e.g. 64,128,64; got {text!r}")
    return values


def _theta_grid(spec: str, k: int, names: list[str], seed: int):
    """``NAME=LOW:HIGH[,NAME=LOW:HIGH]`` and ``k`` -> ``(names, ranges, values (k, p))``."""
    import numpy as np

    chosen, ranges = [], []
    for part in spec.split(","):
        name, _, bounds = part.partition("=")
        name = name.strip()
        try:
            low, high = (float(v) for v in bounds.split(":"))
        except ValueError:
            low = high = float("nan")
        if name not in names:
            fail(f"--condition-on: unknown parameter {name!r}; choose among {', '.join(names)}")
        if not (np.isfinite(low) and np.isfinite(high) and low < high):
            fail(f"--condition-on needs NAME=LOW:HIGH with LOW < HIGH, got {part!r}")
        chosen.append(name)
        ranges.append((low, high))
    if len(set(chosen)) != len(chosen):
        fail("--condition-on names a parameter twice")
    if k < 2:
        fail(f"--theta-values must be >= 2, got {k}")
    lo, hi = np.array(ranges).T
    if len(chosen) == 1:
        unit = np.linspace(0.0, 1.0, k)[:, None]
    else:
        from scipy.stats import qmc

        unit = qmc.LatinHypercube(len(chosen), scramble=False, seed=seed).random(k)
    return chosen, ranges, lo + unit * (hi - lo)


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AgentgradError(f"no {what} at {path}") from None
    except (OSError, ValueError) as err:
        raise AgentgradError(f"{path} is not a readable {what} ({err})") from None


def _rebuild(data_dir: Path):
    """The model, its parameters and the last training state of a ``data`` directory."""
    import equinox as eqx
    import jax

    meta = _read_json(data_dir / "provenance.json", "ramification provenance")
    try:
        opts = ModelOptions(**meta["model_options"])
    except (KeyError, TypeError):
        raise AgentgradError(f"{data_dir}/provenance.json lacks the model options") from None
    setup = _setup(opts)
    template = setup.model.init(setup.params, jax.random.key(0))
    try:
        start = eqx.tree_deserialise_leaves(data_dir / "start.eqx", template)
    except (OSError, ValueError, RuntimeError) as err:
        raise AgentgradError(f"cannot read {data_dir}/start.eqx: {err}") from None
    return setup, start, meta


@surrogate_app.command("data")
@model_command()
def data_command(
    opts: ModelOptions,
    branches: Annotated[int, typer.Option(help="children per step (R; paper 500)")] = 500,
    test_steps: Annotated[int, typer.Option(help="test ramification steps (paper 25)")] = 25,
    condition_on: Annotated[
        str | None,
        typer.Option(help="NAME=LOW:HIGH[,...]: draw the training data across parameters"),
    ] = None,
    theta_values: Annotated[
        int, typer.Option(help="parameter values with --condition-on (>= 2)")
    ] = 5,
    out: Annotated[str, typer.Option(help="output directory")] = "ramifications",
) -> None:
    """Ramification datasets of MODEL for training (--steps, paper 10) and testing."""
    import equinox as eqx
    import jax

    from agentgrad.surrogate import concatenate_ramifications, ramifications, require_agent_view

    if branches < 1 or test_steps < 2 or (opts.steps is not None and opts.steps < 2):
        fail("--branches must be >= 1, --steps and --test-steps >= 2")
    setup = _setup(dataclasses.replace(opts, steps=opts.steps or 10))
    require_agent_view(setup.model)
    grid = None
    if condition_on is not None:
        grid = _theta_grid(condition_on, theta_values, list(setup.params), opts.seed)
    files = ["train.npz", "test.npz", "start.eqx", "provenance.json"]
    out = prepare_output_dir(out, files)
    key = jax.random.key(opts.seed)
    k_train, k_test, k_init = jax.random.split(key, 3)
    state = setup.model.init(setup.params, k_init)
    with console.status("simulating the training ramification"):
        train, start = ramifications(
            setup.model, setup.params, k_train, setup.n_steps, 1 if grid else branches, state
        )
        if grid is not None:  # the main branch at the given parameters: start, AR(1) series
            names, ranges, values = grid
            parts = [
                ramifications(
                    setup.model,
                    {**setup.params, **dict(zip(names, map(float, row), strict=True))},
                    jax.random.fold_in(k_train, i + 1),
                    setup.n_steps,
                    branches,
                    state,
                    condition_on=names,
                )[0]
                for i, row in enumerate(values)
            ]
            joined = concatenate_ramifications(parts)
            joined.meta["theta_ranges"] = ranges
            train = dataclasses.replace(joined, observables=train.observables)
    with console.status("simulating the test ramification"):
        test, _ = ramifications(
            setup.model,
            setup.params,
            k_test,
            test_steps,
            branches,
            start,
            condition_on=grid[0] if grid else (),
        )
    extra = {} if grid is None else {"condition_on": condition_on, "theta_values": theta_values}
    meta = _provenance(setup, "surrogate data", branches=branches, test_steps=test_steps, **extra)
    meta["model_options"] = {
        **dataclasses.asdict(opts),
        "steps": setup.n_steps,
        "population": None if opts.population is None else str(opts.population),
    }
    save_outputs(
        out,
        {
            "train.npz": lambda p: train.save(p),
            "test.npz": lambda p: test.save(p),
            "start.eqx": lambda p: eqx.tree_serialise_leaves(p, start),
            "provenance.json": _json_writer(meta),
        },
        "surrogate-data",
    )
    across = "" if grid is None else f" at {len(grid[2])} values of {', '.join(grid[0])}"
    console.print(
        f"wrote {out}: {train.n_transitions} training transitions x {branches} branches"
        f"{across}, {test.n_transitions} test conditions"
    )


@surrogate_app.command("train")
def train_command(
    data: Annotated[Path, typer.Argument(help="directory written by `agentgrad surrogate data`")],
    variant: Annotated[str, typer.Option(help="gdn | diffusion-only | gnn-only")] = "gdn",
    epochs: Annotated[int, typer.Option(help="passes over all (t, r) pairs")] = 100,
    learning_rate: Annotated[float, typer.Option(help="denoiser (paper 1e-5)")] = 1e-5,
    gnn_learning_rate: Annotated[
        float | None, typer.Option(help="GNN (default 2 x --learning-rate)")
    ] = None,
    hidden: Annotated[str, typer.Option(help="denoiser widths")] = "128,256,1024,1024,256,128",
    gnn_hidden: Annotated[str, typer.Option(help="GNN widths")] = "32,64,128",
    condition: Annotated[int, typer.Option(help="condition / graph-embedding width")] = 256,
    aggregation: Annotated[str, typer.Option(help="sum | mean over neighbours")] = "sum",
    time_embedding: Annotated[
        int | None,
        typer.Option(help="sinusoidal time-embedding width (default: the code's, = features)"),
    ] = None,
    schedule: Annotated[
        str, typer.Option(help="learning rates: constant (paper) | cosine decay to 0")
    ] = "constant",
    ema: Annotated[
        float | None, typer.Option(help="return the moving average of the weights (e.g. 0.999)")
    ] = None,
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    out: Annotated[str, typer.Option(help="output directory")] = "surrogate",
) -> None:
    """Train a GDN (or an ablation) on a ramification dataset."""
    import jax

    from agentgrad.surrogate import GDN, GNNOnly, Ramifications, save_gdn, train_gdn
    from agentgrad.surrogate.train import SCHEDULES

    _check_seed(seed)
    if schedule not in SCHEDULES:
        fail(f"--schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")
    if ema is not None and not 0 < ema < 1:
        fail(f"--ema must be a decay in (0, 1) (e.g. 0.999), got {ema}")
    if time_embedding is not None and time_embedding < 2:
        fail(f"--time-embedding must be an integer >= 2, got {time_embedding}")
    if variant not in VARIANTS:
        fail(f"unknown --variant {variant!r}; choose {', '.join(VARIANTS)}")
    if aggregation not in ("sum", "mean"):
        fail(f"--aggregation must be sum or mean, got {aggregation!r}")
    if epochs < 1 or condition < 1:
        fail(f"--epochs and --condition must be positive integers, got {epochs}, {condition}")
    widths, gnn_widths = _ints(hidden, "--hidden"), _ints(gnn_hidden, "--gnn-hidden")
    if len(widths) < 2:
        fail("--hidden needs at least two widths")
    meta = _read_json(data / "provenance.json", "ramification provenance")
    train = Ramifications.load(data / "train.npz")
    out = prepare_output_dir(out, ["surrogate.eqx", "loss.png"])
    s, d = train.static_dim, train.targets.shape[-1]
    key = jax.random.key(seed)
    conditioned = {}
    if train.theta_names:
        if variant != "gdn":
            fail(f"the {variant} ablation is not parameter-conditioned; use --variant gdn")
        low, high = train.theta.min(0), train.theta.max(0)
        ranges = train.meta.get("theta_ranges") or list(
            zip(low.tolist(), high.tolist(), strict=True)
        )
        conditioned = {"theta_names": train.theta_names, "theta_ranges": ranges}
    if variant == "gnn-only":
        net = GNNOnly(s, d, key, aggregation=aggregation)
    else:
        net = GDN(
            s,
            d,
            key,
            aggregation=aggregation,
            hidden=widths,
            gnn_hidden=gnn_widths,
            context="graph" if variant == "gdn" else "flat",
            n_agents=train.context.shape[1],
            condition=condition,
            time_embedding_dim=time_embedding,
            **conditioned,
        )
    with _interruptible("interrupted (Ctrl-C) during training; nothing was written"):
        net, history = train_gdn(
            net,
            train,
            jax.random.fold_in(key, 1),
            epochs,
            learning_rate,
            gnn_learning_rate,
            progress=True,
            schedule=schedule,
            ema=ema,
        )
    info = {
        "variant": variant,
        "model_options": meta["model_options"],
        "data": str(data),
        "history": history,
        "epochs": epochs,
        "learning_rate": learning_rate,
        "schedule": schedule,
        "ema": ema,
        "seed": seed,
    }

    def plot(path: Path) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5, 3.2))
        ax.plot(range(1, epochs + 1), history["loss"])
        ax.set(xlabel="epoch", ylabel="training loss", yscale="log", title=variant)
        fig.tight_layout()
        fig.savefig(path, format="png", dpi=110)
        plt.close(fig)

    save_outputs(
        out,
        {
            "surrogate.eqx": lambda p: save_gdn(p, net, info),
            "loss.png": plot,
        },
        "surrogate-train",
    )
    console.print(
        f"{variant}: loss {history['loss'][0]:.4g} -> {history['loss'][-1]:.4g} in {epochs} "
        f"epochs; wrote {out / 'surrogate.eqx'}"
    )


@surrogate_app.command("evaluate")
def evaluate_command(
    surrogates: Annotated[
        list[Path], typer.Argument(help="surrogate.eqx files (several seeds/variants allowed)")
    ],
    data: Annotated[Path, typer.Option(help="the `surrogate data` directory")] = Path(
        "ramifications"
    ),
    runs: Annotated[int, typer.Option(help="free rollouts per model (paper 100)")] = 100,
    steps: Annotated[int, typer.Option(help="rollout steps (paper 25)")] = 25,
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    out: Annotated[str, typer.Option(help="output directory")] = "surrogate-eval",
) -> None:
    """Micro EMD, macro sMAPE and the AR(1) baseline; metrics.csv, forecast.png and, with
    several surrogates of a variant, boxplots.png."""
    import jax
    import numpy as np

    from agentgrad.engine import ensemble
    from agentgrad.surrogate import GDNSurrogate, Ramifications, load_gdn
    from agentgrad.surrogate.evaluate import FromState, ar1_forecast, macro_smape, micro_emd

    _check_seed(seed)
    if runs < 2 or steps < 1:
        fail("--runs must be >= 2 and --steps >= 1")
    setup, start, meta = _rebuild(data)
    train, test = (Ramifications.load(data / f"{n}.npz") for n in ("train", "test"))
    loaded = []
    for path in surrogates:
        net, info = load_gdn(path)
        if info.get("model_options") != meta["model_options"]:
            fail(f"{path} was trained on another model or data than {data}")
        GDNSurrogate(setup.model, net).check_compatible(setup.params, jax.random.key(0))
        loaded.append((path, net, info.get("variant", "gdn")))
    files = ["metrics.csv", "forecast.png", "boxplots.png"]
    out = prepare_output_dir(out, files)
    key = jax.random.key(seed)
    abm = FromState(setup.model, start)
    truth = ensemble(abm, setup.params, key, steps, runs).observables
    names = [n for n, v in truth.items() if np.asarray(v).ndim == 2]
    rows, forecasts = [], {}
    for path, net, variant in loaded:
        with console.status(f"evaluating {path}"):
            micro = micro_emd(setup.model, net, test, jax.random.fold_in(key, 1))
            error, _, sur = macro_smape(
                abm, GDNSurrogate(setup.model, net, start), setup.params, key, steps, runs, names
            )
        rows.append({"surrogate": str(path), "variant": variant, "smape": error, **micro})
        forecasts[str(path)] = (variant, sur)
    # AR(1) on the training main branch's macro series, as in App. C.5
    ar = {
        n: ar1_forecast(train.observables[n], steps, runs, jax.random.fold_in(key, 2 + i))
        for i, n in enumerate(names)
        if n in train.observables
    }
    from agentgrad.metrics import smape

    if ar:
        err = float(np.mean([smape(np.asarray(truth[n]).mean(0), ar[n].mean(0)) for n in ar]))
        rows.append({"surrogate": "AR(1)", "variant": "ar1", "smape": err})
    _write_evaluation(out, rows, truth, forecasts, ar, names, train.observables)


def _write_evaluation(out, rows, truth, forecasts, ar, names, train_series) -> None:
    """metrics.csv, forecast.png (Fig. 3 style) and boxplots.png (Fig. 4 style)."""
    import matplotlib
    import numpy as np
    import pandas as pd

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = pd.DataFrame(rows)
    colours = {"gdn": "tab:blue", "diffusion-only": "tab:orange", "gnn-only": "tab:purple"}

    def forecast(path: Path) -> None:
        fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 3.6), squeeze=False)
        for ax, n in zip(axes[0], names, strict=True):
            past = np.asarray(train_series.get(n, []))
            t_past = np.arange(-len(past) + 1, 1)
            if past.size:
                ax.plot(t_past, past, color="k", lw=1, label="training (main branch)")
            v = np.asarray(truth[n])
            t = np.arange(1, v.shape[1] + 1)
            m, sd = v.mean(0), v.std(0)
            ax.plot(t, m, color="k", ls="--", label="ABM (mean ± sd)")
            ax.fill_between(t, m - sd, m + sd, color="0.6", alpha=0.3)
            seen = set()
            for variant, sur in forecasts.values():
                label = None if variant in seen else variant
                seen.add(variant)
                ax.plot(t, np.asarray(sur[n]).mean(0), color=colours[variant], label=label)
            if n in ar:
                ax.plot(t, ar[n].mean(0), color="tab:red", ls=":", label="AR(1)")
            ax.axvline(0, color="0.3", lw=0.8)
            ax.set(title=n, xlabel="step (0 = end of training data)")
        axes[0][0].legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(path, format="png", dpi=110)
        plt.close(fig)

    writers = {
        "metrics.csv": lambda p: table.to_csv(p, index=False),
        "forecast.png": forecast,
    }
    counts = table[table.variant != "ar1"].groupby("variant").size()
    if len(counts) and counts.max() >= 2:

        def boxplots(path: Path) -> None:
            metrics = [m for m in ("emd", "smape") if m in table]
            fig, axes = plt.subplots(1, len(metrics), figsize=(4.5 * len(metrics), 3.4))
            for ax, metric in zip(np.atleast_1d(axes), metrics, strict=True):
                groups = [(v, g[metric].to_numpy()) for v, g in table.groupby("variant")]
                groups = [(v, x[np.isfinite(x)]) for v, x in groups if np.isfinite(x).any()]
                ax.boxplot([x for _, x in groups], labels=[v for v, _ in groups])
                ax.set_title(metric)
            fig.tight_layout()
            fig.savefig(path, format="png", dpi=110)
            plt.close(fig)

        writers["boxplots.png"] = boxplots
    save_outputs(out, writers, "surrogate-evaluate")
    console.print(table.to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    console.print(f"wrote {out / 'metrics.csv'} and {out / 'forecast.png'}")


def surrogate_entry(path: str):
    """The model entry of ``surrogate:PATH``: the trained network around the model it was
    trained on (rebuilt from the options stored in the checkpoint), so that `agentgrad run
    surrogate:PATH` simulates the surrogate."""
    from agentgrad.models import ModelEntry
    from agentgrad.surrogate import GDNSurrogate, load_gdn

    net, info = load_gdn(Path(path))
    try:
        opts = ModelOptions(**info["model_options"])
    except (KeyError, TypeError):
        raise AgentgradError(f"{path} does not name the model it was trained on") from None
    setup = _setup(opts)
    surrogate = GDNSurrogate(setup.model, net)
    import jax

    surrogate.check_compatible(setup.params, jax.random.key(0))
    return ModelEntry(
        name=f"surrogate:{path}",
        summary=f"{info.get('variant', 'gdn')} surrogate of {opts.model}",
        param_space=setup.entry.param_space,
        default_steps=25,
        options=(),
        build=lambda _options: surrogate,
        model_class=setup.entry.model_class,
    )
