"""Networks that drive ABMs (flame §4.2, Fig. 5 left, mode 3) on synthetic counties.

The paper's CDC data and 6.5M-agent population are not public, so this builds the
same structure on synthetic data:

* counties: SEIRM populations of different sizes and contact densities;
* weekly covariates per county (a mobility-like seasonal series, a slow trend and a
  county density index), mapped to the weekly transmission scale by a hidden function
  ``r = 0.04 + 0.08 sigmoid(1.2 x1 + 0.8 x2 x3 - 0.3)`` (reproduction numbers about
  0.8-2, so epidemics grow, peak or fade within the 12 weeks);
* observed weekly cases: one SEIRM run per county with those rates (exposures summed
  per week) times log-normal noise (sd 0.1).

The first ``train_weeks`` weeks are for fitting, the rest are forecast.  Three ways to
set the weekly transmission of each county's SEIRM (its transmission substep swapped
for ``WeeklyTransmission``), all trained by gradient through the ABMs (ag.train,
straight-through draws, mean of ``runs`` simulations per county):

(a) direct calibration: one free rate per county and training week; forecast weeks keep
    the last fitted rate;
(b) one small network per county mapping covariates to rates (trained through that
    county's ABM);
(c) one network shared by all counties, trained jointly through all their ABMs.

Forecast errors on the held-out weeks (all counties): ND = sum|yhat - y| / sum|y|,
RMSE, MAE; mean +- sd over seeds (data, initialisation and training keys change).

Run: python examples/county_forecast.py [--quick] [--seeds 3] [--out docs/figures/county]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

import agentgrad as ag
from agentgrad.models import SEIRM
from agentgrad.models.population import synthetic_population
from agentgrad.models.seirm import WeeklyTransmission
from agentgrad.training import drive

FULL = {
    "sizes": (1500, 2500, 3500, 4500),
    "degrees": (8.0, 10.0, 12.0, 9.0),
    "weeks": 12,
    "train_weeks": 9,
    "runs": 4,
    "iterations": 150,
    "lr": 0.05,
    "network_lr": 0.01,
}
QUICK = {
    "sizes": (200, 300),
    "degrees": (8.0, 10.0),
    "weeks": 6,
    "train_weeks": 4,
    "runs": 2,
    "iterations": 15,
    "lr": 0.05,
    "network_lr": 0.01,
}
PARAMS = {"initial_infected": 0.005, "vaccination_rate": 0.0}
MAX_RATE = 0.2


def hidden_rate(x: np.ndarray) -> np.ndarray:
    """The hidden map from covariates ``(..., 3)`` to the weekly transmission scale."""
    z = 1.2 * x[..., 0] + 0.8 * x[..., 1] * x[..., 2] - 0.3
    return 0.04 + 0.08 / (1.0 + np.exp(-z))


def covariates(n_counties: int, n_weeks: int, rng: np.random.Generator) -> np.ndarray:
    """``(K, W, 3)``: a seasonal mobility-like series, a slow trend, a density index."""
    w = np.arange(n_weeks)
    phase = rng.uniform(0, 2 * np.pi, n_counties)[:, None]
    season = np.sin(2 * np.pi * w / 10.0 + phase) + 0.2 * rng.standard_normal((n_counties, n_weeks))
    trend = rng.uniform(-1, 1, n_counties)[:, None] + np.linspace(-0.5, 0.5, n_weeks)
    density = np.broadcast_to(rng.uniform(-1, 1, n_counties)[:, None], (n_counties, n_weeks))
    return np.stack([season, trend, density], axis=-1).astype(np.float32)


def county_model(n: int, degree: float, n_weeks: int, seed: int) -> SEIRM:
    model = SEIRM(synthetic_population(n, degree, key=seed))
    weekly = WeeklyTransmission.replacing(model.substep("transmission"), jnp.full(n_weeks, 0.1))
    return model.with_substep("transmission", weekly)


def weekly_rates(model: SEIRM) -> jax.Array:
    return model.substep("transmission").weekly


def weekly_cases(
    model: SEIRM, rates: jax.Array, key: jax.Array, runs: int, n_weeks: int | None = None
) -> jax.Array:
    """Mean over ``runs`` simulations of the exposures per week for the first
    ``n_weeks`` weeks (default: all), with weekly rates ``rates``."""
    model = drive(model, weekly_rates, rates)
    n_days = 7 * (n_weeks or rates.shape[0])
    daily = ag.ensemble(model, PARAMS, key, n_days, runs).observables["new_infected"]
    return jnp.mean(daily.reshape(runs, -1, 7).sum(-1), axis=0)


def make_data(cfg: dict, seed: int):
    rng = np.random.default_rng(seed)
    k = len(cfg["sizes"])
    x = covariates(k, cfg["weeks"], rng)
    rates = hidden_rate(x)
    models = [
        county_model(n, d, cfg["weeks"], 1000 * seed + i)
        for i, (n, d) in enumerate(zip(cfg["sizes"], cfg["degrees"], strict=True))
    ]
    key = jax.random.key(seed)
    cases = np.stack(
        [
            np.asarray(weekly_cases(m, jnp.asarray(r), jax.random.fold_in(key, i), 1))
            for i, (m, r) in enumerate(zip(models, rates, strict=True))
        ]
    )
    noisy = cases * np.exp(0.1 * rng.standard_normal(cases.shape))
    return models, x, rates, noisy.astype(np.float32)


def rates_of(method: str, learned, x: jax.Array, train_weeks: int) -> jax.Array:
    """Weekly rates ``(K, W)`` of every county under each method."""
    if method == "a":  # free rates for training weeks, the last one carried forward
        fitted = MAX_RATE * jax.nn.sigmoid(learned)
        n_weeks = x.shape[1]
        return jnp.concatenate(
            [fitted, jnp.repeat(fitted[:, -1:], n_weeks - train_weeks, axis=1)], axis=1
        )
    if method == "b":  # one network per county
        return jnp.stack(
            [
                MAX_RATE * jax.nn.sigmoid(jax.vmap(net)(xk)[:, 0])
                for net, xk in zip(learned, x, strict=True)
            ]
        )
    return MAX_RATE * jax.nn.sigmoid(jax.vmap(jax.vmap(learned))(x)[..., 0])  # shared


def initial(method: str, k: int, train_weeks: int, key: jax.Array):
    def net(kk):
        return eqx.nn.MLP(3, 1, 16, 2, activation=jax.nn.tanh, key=kk)

    if method == "a":
        return jnp.zeros((k, train_weeks))
    if method == "b":
        return tuple(net(kk) for kk in jax.random.split(key, k))
    return net(key)


def fit(method: str, models, x, observed, cfg: dict, seed: int, progress: bool):
    """Train one method through all counties' ABMs; returns the learned object, the loss
    history, and the training loss before and after, each averaged over the same 4 keys
    (common random numbers, so the two are comparable despite the simulation noise)."""
    tw = cfg["train_weeks"]
    k = len(models)
    x = jnp.asarray(x)
    target = jnp.asarray(observed[:, :tw])
    scale = jnp.mean(target, axis=1, keepdims=True) + 1.0

    def loss(state, key):
        rates = rates_of(method, state["learned"], x, tw)
        errors = []
        for i, model in enumerate(state["models"]):
            pred = weekly_cases(model, rates[i], jax.random.fold_in(key, i), cfg["runs"], tw)
            errors.append(jnp.mean(((pred - target[i]) / scale[i]) ** 2))
        return jnp.mean(jnp.stack(errors))

    state = {"learned": initial(method, k, tw, jax.random.key(seed)), "models": tuple(models)}
    result = ag.train(
        state,
        loss,
        jax.random.key(seed + 7),
        cfg["iterations"],
        trainable=lambda s: s["learned"],
        optimizer=optax.adam(cfg["lr"] if method == "a" else cfg["network_lr"]),
        progress=progress,
    )
    keys = jax.random.split(jax.random.key(10_000 + seed), 4)

    def fixed_key_loss(s):
        return float(np.mean([loss(s, k) for k in keys]))

    trained = {**state, "learned": result.model["learned"]}
    return result.model["learned"], result.loss, (fixed_key_loss(state), fixed_key_loss(trained))


def forecast_errors(method, learned, models, x, observed, cfg, key) -> tuple[dict, np.ndarray]:
    tw = cfg["train_weeks"]
    rates = rates_of(method, learned, jnp.asarray(x), tw)
    pred = np.stack(
        [
            np.asarray(weekly_cases(m, rates[i], jax.random.fold_in(key, i), 8))
            for i, m in enumerate(models)
        ]
    )
    yhat, y = pred[:, tw:], observed[:, tw:]
    errors = {
        "ND": float(np.sum(np.abs(yhat - y)) / np.sum(np.abs(y))),
        "RMSE": float(np.sqrt(np.mean((yhat - y) ** 2))),
        "MAE": float(np.mean(np.abs(yhat - y))),
    }
    return errors, pred


LABELS = {
    "a": "(a) direct calibration of weekly rates",
    "b": "(b) network per county (one ABM each)",
    "c": "(c) one network over all counties' ABMs",
}


def figure(observed, preds: dict, cfg: dict, path: Path) -> None:
    from agentgrad.plotting import plt, save_figure  # the non-interactive backend

    k = observed.shape[0]
    fig, axes = plt.subplots(1, k, figsize=(3.2 * k, 3), squeeze=False)
    weeks = np.arange(1, cfg["weeks"] + 1)
    for i, ax in enumerate(axes[0]):
        ax.plot(weeks, observed[i], "ko", ms=3, label="observed")
        for method, pred in preds.items():
            ax.plot(weeks, pred[i], lw=1, label=LABELS[method][:3])
        ax.axvspan(cfg["train_weeks"] + 0.5, cfg["weeks"] + 0.5, color="0.9")
        ax.set_title(f"county {i + 1} ({cfg['sizes'][i]} agents)", fontsize=9)
        ax.set_xlabel("week")
    axes[0, 0].set_ylabel("weekly cases")
    axes[0, 0].legend(fontsize=7)
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny settings (tests)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--iterations", type=int)
    parser.add_argument("--out", type=Path, help="write OUT.png (forecasts of seed 0)")
    args = parser.parse_args(argv)
    cfg = dict(QUICK if args.quick else FULL)
    if args.iterations:
        cfg["iterations"] = args.iterations
    table: dict[str, list[dict]] = {m: [] for m in LABELS}
    losses: dict[str, list[np.ndarray]] = {m: [] for m in LABELS}
    before_after: dict[str, list[tuple[float, float]]] = {m: [] for m in LABELS}
    start = time.perf_counter()
    for seed in range(args.seeds):
        models, x, _, observed = make_data(cfg, seed)
        preds = {}
        for method in LABELS:
            learned, loss, fits = fit(method, models, x, observed, cfg, seed, not args.quick)
            errors, preds[method] = forecast_errors(
                method, learned, models, x, observed, cfg, jax.random.key(500 + seed)
            )
            table[method].append(errors)
            losses[method].append(loss)
            before_after[method].append(fits)
        if seed == 0 and args.out is not None:
            figure(observed, preds, cfg, args.out.with_suffix(".png"))
    print(
        f"{len(cfg['sizes'])} counties, {cfg['train_weeks']} training + "
        f"{cfg['weeks'] - cfg['train_weeks']} forecast weeks, {args.seeds} seeds, "
        f"{time.perf_counter() - start:.0f} s"
    )
    print(f"{'method':<42} {'ND':>13} {'RMSE':>15} {'MAE':>15}")
    for method, rows in table.items():
        cells = []
        for metric in ("ND", "RMSE", "MAE"):
            v = np.array([r[metric] for r in rows])
            cells.append(f"{v.mean():.3f} ± {v.std():.3f}")
        print(f"{LABELS[method]:<42} {cells[0]:>13} {cells[1]:>15} {cells[2]:>15}")
    print(
        "training loss before -> after (same 4 keys): "
        + ", ".join(
            f"{m} {np.mean([b for b, _ in v]):.3f} -> {np.mean([a for _, a in v]):.3f}"
            for m, v in before_after.items()
        )
    )
    return {"table": table, "losses": losses, "before_after": before_after}


if __name__ == "__main__":
    main()
