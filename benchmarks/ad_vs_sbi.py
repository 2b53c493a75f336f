"""ad-vs-sbi Fig. 2: NLPD against the simulation budget on the SIRS grid.

This is the experiment of `ad-vs-sbi-for-abms` §4 (settings: digest §A and D.1). The
simulator is the 40x40 grid of Table 1: 1280 agents, 160 infected and 80 recovered at
the start, 20 steps, and straight-through Gumbel-softmax with τ = 0.05 for the gradients.
The observed data are one realisation at θ* = (0.6, 0.3, 0.1), the I and R series at
steps 1..20. The metric is the NLPD of App. B:

    NLPD = -(1/100) Σ_k log p̂(y_k),

where p̂ is a Gaussian KDE (Scott's bandwidth, full covariance; `calibration.nlpd`) fitted
to the I and R series of one run at each of 1000 posterior draws. The y_k are 100
ground-truth runs at θ*. All simulations are of the discrete ABM (the forward pass of
every estimator is the hard simulator).

Methods (budget = ABM runs):
* ``snvli``: `sbi`'s SNVI with an NLE, the Rényi α = 0.1 bound, sticking the landing
  and 2 rounds of budget/2 runs (the paper's SNVLI, `ag.SNVI()` defaults).
* ``gvi-w1e3`` and ``gvi-w1e5``: the paper's AD-GVI. It uses a MAF flow (flowjax),
  the data term d = mean squared error of the *fractions* (counts / 1280) between the
  observed series and each of 5 runs, 2 q-samples per step (10 runs), and
  w·E[d] + KL, i.e. `kl_weight = 1/w`. Training is AdamW at lr 1e-2 with budget/10 steps.
* ``agentgrad-gvi``: agentgrad's default calibration, `ag.GVI()`: a tempered
  synthetic likelihood (scale-free, `kl_weight = 1`), a MAF flow, a Polyak-averaged
  AdamW and adaptive stopping. The budget is a cap, not a target. Runs per step grow
  with the budget, r = max(4, budget // 1000), split as n_samples = min(5, r // 2) and
  n_sims = r // n_samples, so that at most about 1000 steps fit in the budget.
  Training stops early when the objective stops improving. The runs actually
  used are recorded.
* ``npe`` and ``nle``: amortised (one-round) NPE and NLE from `sbi`, with defaults.

Choices the paper leaves open:
* the prior is run both ways, Uniform(0,1)^3 and Beta(2,5)^3;
* the MSE is taken on fractions;
* the learning rates are the defaults above, not tuned per budget (the paper tuned
  them; the values are not given).

Results are appended to a CSV, one row per (prior, method, budget, seed). Rows already
there are skipped, so an interrupted run resumes. The figure and the markdown table
are built from every row in the CSV.

    python benchmarks/ad_vs_sbi.py                  # full grid (hours on 2 CPU cores)
    python benchmarks/ad_vs_sbi.py --quick          # minutes: 2 small budgets, 1 seed
    python benchmarks/ad_vs_sbi.py --budgets 1000,3000 --seeds 3 --priors uniform
    python benchmarks/ad_vs_sbi.py --report-only    # figure + table from the CSV so far
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
import time
from pathlib import Path

NAMES = ("p_infect", "p_recover", "p_wane")
TRUTH = {"p_infect": 0.6, "p_recover": 0.3, "p_wane": 0.1}
OBSERVABLES = ("infected", "recovered")
N_STEPS, POPULATION = 20, 1280
METHODS = ("snvli", "gvi-w1e3", "gvi-w1e5", "agentgrad-gvi", "npe", "nle")
PRIORS = ("uniform", "beta")
FULL_BUDGETS = (1000, 3000, 10_000, 30_000, 100_000)
FIELDS = ["prior", "method", "budget", "seed", "runs_used", "seconds", "nlpd"] + [
    f"{n}_{s}" for n in NAMES for s in ("mean", "q05", "q95")
]


def fraction_mse(simulated, observed):
    """The paper's data term: mean squared error of the fractions (counts / 1280)."""
    import jax.numpy as jnp

    x = jnp.concatenate([simulated[n] for n in observed], axis=-1) / POPULATION
    y = jnp.concatenate([jnp.asarray(observed[n]) for n in observed], axis=-1) / POPULATION
    return jnp.mean((x - y) ** 2)


def make_method(name: str, budget: int):
    """``(method object, budget passed to calibrate)`` for one curve at one budget."""
    import agentgrad as ag

    if name == "snvli":
        return ag.SNVI(), budget
    if name in ("gvi-w1e3", "gvi-w1e5"):
        w = 1e3 if name == "gvi-w1e3" else 1e5
        return ag.GVI(
            loss=fraction_mse, family="flow", n_samples=2, n_sims=5, kl_weight=1 / w
        ), budget
    if name == "agentgrad-gvi":
        per_step = max(4, budget // 1000)
        n_samples = min(5, per_step // 2)
        n_sims = per_step // n_samples
        probe = ag.GVI(n_samples=n_samples, n_sims=n_sims)
        max_epochs = max(1, (budget - probe.pilot_runs()) // probe.runs_per_epoch())
        return (
            ag.GVI(
                n_samples=n_samples,
                n_sims=n_sims,
                max_epochs=max_epochs,
                min_epochs=min(200, max_epochs),
            ),
            None,
        )
    if name == "npe":
        return ag.NPE(), budget
    if name == "nle":
        return ag.NLE(), budget
    raise SystemExit(f"unknown method {name!r}; choose from {', '.join(METHODS)}")


def priors_for(name: str) -> dict:
    import agentgrad as ag

    prior = ag.Uniform(0.0, 1.0) if name == "uniform" else ag.Beta(2.0, 5.0)
    return {n: prior for n in NAMES}


def ground_truth(model, key, n: int) -> dict:
    """``n`` runs at θ* (name -> (n, T)), steps 1..T."""
    import numpy as np

    import agentgrad as ag

    out = ag.ensemble(model, TRUTH, key, N_STEPS, n).observables
    return {name: np.asarray(out[name]) for name in OBSERVABLES}


class PointMass:
    """The posterior that puts all its mass on θ* (the reference NLPD line)."""

    def __init__(self, model):
        self.model = model

    def sample(self, key, n):
        import jax.numpy as jnp

        return {name: jnp.full((n,), value) for name, value in TRUTH.items()}

    def predictive(self, key, n, n_steps, fixed=None):
        from agentgrad.calibration.predictive import posterior_predictive

        return posterior_predictive(self, key, n, n_steps, fixed)


def evaluate(posterior, model, truth, key, n_draws: int) -> dict:
    """NLPD of the ground-truth runs and posterior summaries (mean, 5% and 95%)."""
    import jax
    import numpy as np

    from agentgrad.calibration.predictive import nlpd

    k_pred, k_summary = jax.random.split(key)
    predictive = posterior.predictive(k_pred, n_draws, N_STEPS, fixed=None)
    row = {"nlpd": nlpd(predictive, truth, OBSERVABLES)}
    draws = posterior.sample(k_summary, 4000)
    for n in NAMES:
        v = np.asarray(draws[n])
        row |= {
            f"{n}_mean": v.mean(),
            f"{n}_q05": np.quantile(v, 0.05),
            f"{n}_q95": np.quantile(v, 0.95),
        }
    return row


def run_grid(args) -> Path:
    import jax
    import numpy as np

    import agentgrad as ag

    model = ag.models.SIRSGrid()
    observed_runs = ag.simulate(model, TRUTH, jax.random.key(20_251_123), N_STEPS).observables
    observed = {n: np.asarray(observed_runs[n]) for n in OBSERVABLES}
    truth = ground_truth(model, jax.random.key(7), args.truth_runs)
    path = Path(args.results)
    done = set()
    if path.exists():
        with path.open() as f:
            done = {
                (r["prior"], r["method"], int(r["budget"]), int(r["seed"]))
                for r in csv.DictReader(f)
            }
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as f:
            csv.DictWriter(f, FIELDS).writeheader()
    for prior in args.priors:  # reference: the predictive of the true parameters alone
        if (prior, "truth", 0, 0) not in done:
            row = {"prior": prior, "method": "truth", "budget": 0, "seed": 0, "runs_used": 0}
            start = time.perf_counter()
            row |= evaluate(PointMass(model), model, truth, jax.random.key(5), args.draws)
            row["seconds"] = round(time.perf_counter() - start, 2)
            with path.open("a", newline="") as f:
                csv.DictWriter(f, FIELDS).writerow(row)
    for budget in args.budgets:  # budget-major: partial runs cover both priors
        for prior in args.priors:
            for seed in range(args.seeds):
                for name in args.methods:
                    if (prior, name, budget, seed) in done:
                        continue
                    method, cap = make_method(name, budget)
                    key = jax.random.fold_in(jax.random.key(seed), budget)
                    start = time.perf_counter()
                    posterior = ag.calibrate(
                        model,
                        observed,
                        key,
                        method,
                        parameters=list(NAMES),
                        priors=priors_for(prior),
                        budget=cap,
                    )
                    seconds = time.perf_counter() - start
                    row = {
                        "prior": prior,
                        "method": name,
                        "budget": budget,
                        "seed": seed,
                        "runs_used": posterior.history.get("simulations", budget),
                        "seconds": round(seconds, 2),
                    }
                    row |= evaluate(
                        posterior, model, truth, jax.random.fold_in(key, 99), args.draws
                    )
                    with path.open("a", newline="") as f:
                        csv.DictWriter(f, FIELDS).writerow(row)
                    print(
                        f"{prior:7s} {name:14s} budget {budget:>6d} seed {seed}: NLPD "
                        f"{row['nlpd']:.1f}, {row['runs_used']} runs, {seconds:.0f} s",
                        flush=True,
                    )
    return path


def summarise(path: Path) -> list[dict]:
    """Mean ± standard error over seeds per (prior, method, budget)."""
    import numpy as np

    with path.open() as f:
        rows = list(csv.DictReader(f))
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["prior"], r["method"], int(r["budget"])), []).append(r)
    out = []
    for (prior, method, budget), rs in sorted(groups.items()):
        nlpd = np.array([float(r["nlpd"]) for r in rs])
        entry = {
            "prior": prior,
            "method": method,
            "budget": budget,
            "seeds": len(rs),
            "nlpd": nlpd.mean(),
            "nlpd_se": nlpd.std(ddof=1) / math.sqrt(len(rs)) if len(rs) > 1 else float("nan"),
            "runs_used": np.mean([float(r["runs_used"]) for r in rs]),
            "seconds": np.mean([float(r["seconds"]) for r in rs]),
        }
        for n in NAMES:
            for s in ("mean", "q05", "q95"):
                entry[f"{n}_{s}"] = np.mean([float(r[f"{n}_{s}"]) for r in rs])
        out.append(entry)
    return out


def write_figure(summary: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    priors = sorted({s["prior"] for s in summary})
    fig, axes = plt.subplots(1, len(priors), figsize=(6 * len(priors), 4.2), squeeze=False)
    for ax, prior in zip(axes[0], priors, strict=True):
        ref = [s for s in summary if s["prior"] == prior and s["method"] == "truth"]
        if ref:
            ax.axhline(ref[0]["nlpd"], color="k", ls=":", label="θ* alone (reference)")
        for method in METHODS:
            pts = [s for s in summary if s["prior"] == prior and s["method"] == method]
            if not pts:
                continue
            x = [s["budget"] for s in pts]
            y = [s["nlpd"] for s in pts]
            e = [0 if math.isnan(s["nlpd_se"]) else s["nlpd_se"] for s in pts]
            ax.errorbar(x, y, yerr=e, marker="o", capsize=3, label=method)
        ax.set_xscale("log")
        ax.set_xlabel("ABM simulation budget")
        ax.set_ylabel("NLPD (I and R series, lower is better)")
        ax.set_title(f"SIRS grid, prior {'Uniform(0,1)' if prior == 'uniform' else 'Beta(2,5)'}³")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def markdown_table(summary: list[dict]) -> str:
    lines = [
        "| prior | method | budget | seeds | NLPD (mean ± s.e.) | runs used | seconds | "
        "p_infect mean [5%, 95%] | p_recover | p_wane |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summary:
        cells = [f"{s[f'{n}_mean']:.3f} [{s[f'{n}_q05']:.3f}, {s[f'{n}_q95']:.3f}]" for n in NAMES]
        se = "" if math.isnan(s["nlpd_se"]) else f" ± {s['nlpd_se']:.1f}"
        lines.append(
            f"| {s['prior']} | {s['method']} | {s['budget']} | {s['seeds']} | "
            f"{s['nlpd']:.1f}{se} | {s['runs_used']:.0f} | {s['seconds']:.0f} | "
            + " | ".join(cells)
            + " |"
        )
    return "\n".join(lines)


def _list(text: str, kind=str) -> list:
    return [kind(t) for t in text.split(",") if t.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="2 small budgets, 1 seed, uniform prior"
    )
    parser.add_argument("--budgets", type=lambda t: _list(t, int), default=None)
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--priors", type=_list, default=None)
    parser.add_argument("--methods", type=_list, default=list(METHODS))
    parser.add_argument("--draws", type=int, default=None, help="posterior draws for the KDE")
    parser.add_argument("--truth-runs", type=int, default=None, help="ground-truth runs")
    parser.add_argument("--results", default="benchmarks/results/ad_vs_sbi.csv")
    parser.add_argument("--figure", default=None, help="PNG (default: next to --results)")
    parser.add_argument(
        "--report-only", action="store_true", help="no new runs: figure and table from the CSV"
    )
    args = parser.parse_args(argv)
    quick = args.quick
    args.budgets = args.budgets or ([300, 600] if quick else list(FULL_BUDGETS))
    args.seeds = args.seeds or (1 if quick else 3)
    args.priors = args.priors or (["uniform"] if quick else list(PRIORS))
    args.draws = args.draws or (200 if quick else 1000)
    args.truth_runs = args.truth_runs or (50 if quick else 100)
    bad = [m for m in args.methods if m not in METHODS] + [
        p for p in args.priors if p not in PRIORS
    ]
    if bad or min(args.budgets) < 100 or args.seeds < 1:
        print(
            f"error: methods from {', '.join(METHODS)}, priors from {', '.join(PRIORS)}, "
            "budgets >= 100 and seeds >= 1",
            file=sys.stderr,
        )
        return 2
    path = Path(args.results) if args.report_only else run_grid(args)
    summary = summarise(path)
    figure = Path(args.figure) if args.figure else path.with_suffix(".png")
    write_figure(summary, figure)
    print(markdown_table(summary))
    print(f"wrote {path} and {figure}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
