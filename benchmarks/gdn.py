"""GDN reproduction (`graph-diffusion-networks-for-abms` §4, Fig. 4, App. C.4-C.5):
predator-prey Psi_1 ... Psi_4 and Schelling xi_1 ... xi_3 (the reference code's rules,
:class:`~agentgrad.models.SchellingAgents`), the surrogate against its two ablations and
AR(1).

Protocols (state the protocol next to every number):

* ``paper``: 32x32 torus, 2048 slots; T_train = 10 (9 transitions) x R = 500; Table 1
  widths (condition 256); Adam 1e-5 / 2e-5; 100 epochs; test ramification 25 steps x 500;
  100 rollouts of 25 steps; 8 seeds.  About an hour per model on an A100.
* ``cpu``: predator-prey on a 16x16 torus, 512 slots (density 0.3 -> 77 alive);
  Schelling at its paper size (51x51, 1950 agents); R = 32; denoiser widths
  (32, 64, 128, 128, 64, 32), GNN (32, 64), condition 64; Adam 1e-3 / 2e-3; 20 epochs;
  test ramification 10 steps x 64 draws; 32 rollouts of 25 steps; 1 seed.  Minutes per
  model on 2 CPU cores.

Predator-prey: sum aggregation, 2 static + 6 dynamic features, macro = predators and prey
(active agents).  Schelling: mean aggregation, 2 static + 2 dynamic features (x, y / 25),
macro = happy agents (§4.1); its micro EMD is on the x and y marginals in cells.

Time embedding: the reference code's sinusoidal embedding is as wide as the dynamic
features, so Schelling's (2 features) has a single frequency, period 2 pi ~ 6.3
denoising steps: tau in 0..99 is aliased and the denoiser cannot tell the noise level.
At CPU budgets this matters (density 0.2, 10 epochs: deterministic-rule EMD 9.0 cells
with the code's embedding, 5.6 with 64 wide; 40 epochs: 8.1 and 5.0).
``--time-embedding 64`` gives the paper's reading; rows without it use the code's.

Micro EMD uses as many surrogate draws as the test ramification has branches; with few
draws the empirical EMD is biased upward by sampling noise (two samples of 64 from the
same 4-category law are ~0.1 apart), so compare variants at the same protocol only.

    python benchmarks/gdn.py --protocol cpu --settings psi1
    python benchmarks/gdn.py --protocol cpu --settings xi1,xi2,xi3
    python benchmarks/gdn.py --protocol cpu --settings psi1 --epochs 100 --branches 64
    python benchmarks/gdn.py --protocol cpu --report-only

``--epochs`` and ``--branches`` override the protocol's and label its rows (``cpu+e100+R64``);
``--schedule cosine`` and ``--ema D`` (training options of ``train_gdn``, not in the paper)
label them ``+cos`` and ``+emaD``.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import time
import zlib
from pathlib import Path

import jax
import numpy as np

from agentgrad.metrics import smape
from agentgrad.models import PredatorPrey, SchellingAgents
from agentgrad.models.predator_prey import preset
from agentgrad.models.schelling_agents import XI
from agentgrad.surrogate import GDN, GDNSurrogate, GNNOnly, ramifications, train_gdn
from agentgrad.surrogate.evaluate import FromState, ar1_forecast, macro_smape, micro_emd


@dataclasses.dataclass(frozen=True)
class Protocol:
    size: int
    slots: int
    branches: int
    hidden: tuple[int, ...]
    gnn_hidden: tuple[int, ...]
    condition: int
    learning_rate: float
    epochs: int
    test_steps: int
    test_branches: int
    runs: int
    seeds: int


PROTOCOLS = {
    "paper": Protocol(32, 2048, 500, (128, 256, 1024, 1024, 256, 128), (32, 64, 128), 256,
                      1e-5, 100, 25, 500, 100, 8),
    "cpu": Protocol(16, 512, 32, (32, 64, 128, 128, 64, 32), (32, 64), 64,
                    1e-3, 20, 10, 64, 32, 1),
}  # fmt: skip
VARIANTS = ("gdn", "diffusion-only", "gnn-only")
FIELDS = ["protocol", "setting", "variant", "seed", "seconds_per_epoch", "final_loss",
          "emd", "emd_stochastic", "emd_deterministic", "smape"]  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Setting:
    """One ABM setting: the model, its parameters and how its surrogate is built."""

    model: object
    params: dict
    dynamic_dim: int
    aggregation: str
    macro: tuple[str, ...]


def setting_for(setting: str, proto: Protocol) -> Setting:
    if setting in XI:
        return Setting(SchellingAgents(), {"threshold": XI[setting]}, 2, "mean", ("happy",))
    model = PredatorPrey(size=proto.size, n_agents=proto.slots)
    return Setting(model, preset(setting), 6, "sum", ("predators", "prey"))


def network(variant: str, proto: Protocol, case: Setting, key: jax.Array, time_dim=None):
    d, agg = case.dynamic_dim, case.aggregation
    if variant == "gnn-only":
        return GNNOnly(2, d, key, aggregation=agg)
    return GDN(
        2, d, key, aggregation=agg, hidden=proto.hidden, gnn_hidden=proto.gnn_hidden,
        condition=proto.condition, context="graph" if variant == "gdn" else "flat",
        n_agents=case.model.n_agents, time_embedding_dim=time_dim,
    )  # fmt: skip


def run_setting(
    name: str,
    setting: str,
    proto: Protocol,
    seed: int,
    time_dim: int | None = None,
    training: dict | None = None,
) -> list[dict]:
    case = setting_for(setting, proto)
    model, params = case.model, case.params
    # crc32, not hash(): Python's str hash changes from process to process
    key = jax.random.fold_in(jax.random.key(seed), zlib.crc32(setting.encode()))
    k_data, k_test, k_train, k_eval = jax.random.split(key, 4)
    data, last = ramifications(model, params, k_data, 10, proto.branches)
    test, _ = ramifications(model, params, k_test, proto.test_steps, proto.test_branches, last)
    abm = FromState(model, last)
    rows = []
    for variant in VARIANTS:
        start = time.perf_counter()
        net = network(variant, proto, case, k_train, time_dim)
        net, history = train_gdn(
            net, data, k_train, proto.epochs, proto.learning_rate, **(training or {})
        )
        seconds = (time.perf_counter() - start) / proto.epochs
        micro = micro_emd(model, net, test, k_eval)
        error, truth, _ = macro_smape(
            abm, GDNSurrogate(model, net, last), params, k_eval, 25, proto.runs, case.macro
        )
        rows.append({"protocol": name, "setting": setting, "variant": variant, "seed": seed,
                     "seconds_per_epoch": round(seconds, 2), "final_loss": history["loss"][-1],
                     "smape": error, **{k: micro[k] for k in FIELDS if k in micro}})  # fmt: skip
        print(f"{name} {setting} {variant} seed {seed}: EMD {micro['emd']:.4f} "
              f"(stochastic {micro['emd_stochastic']:.4f}, deterministic "
              f"{micro['emd_deterministic']:.2e}), sMAPE {error:.3f}, {seconds:.1f} s/epoch",
              flush=True)  # fmt: skip
    ar = [
        smape(np.asarray(truth[n]).mean(0), ar1_forecast(data.observables[n], 25, proto.runs,
              jax.random.fold_in(k_eval, i)).mean(0))
        for i, n in enumerate(case.macro)
    ]  # fmt: skip
    rows.append({"protocol": name, "setting": setting, "variant": "ar1", "seed": seed,
                 "smape": float(np.mean(ar))})  # fmt: skip
    print(f"{name} {setting} AR(1) seed {seed}: sMAPE {np.mean(ar):.3f}", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocol", choices=list(PROTOCOLS), default="cpu")
    parser.add_argument("--settings", default="psi1,psi2,psi3,psi4,xi1,xi2,xi3")
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--results", default="benchmarks/results/gdn.csv")
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument(
        "--time-embedding", type=int, default=None,
        help="sinusoidal time-embedding width (default: the code's, = dynamic features)",
    )  # fmt: skip
    parser.add_argument("--epochs", type=int, default=None, help="override the protocol's")
    parser.add_argument("--branches", type=int, default=None, help="override R")
    parser.add_argument("--schedule", choices=["constant", "cosine"], default="constant",
                        help="learning rates (train_gdn); cosine labels rows +cos")  # fmt: skip
    parser.add_argument("--ema", type=float, default=None, help="weight EMA; rows +ema")
    args = parser.parse_args()
    proto = PROTOCOLS[args.protocol]
    label = args.protocol + (f"+temb{args.time_embedding}" if args.time_embedding else "")
    if args.epochs:
        proto, label = dataclasses.replace(proto, epochs=args.epochs), f"{label}+e{args.epochs}"
    if args.branches:
        proto = dataclasses.replace(proto, branches=args.branches)
        label = f"{label}+R{args.branches}"
    training = {"schedule": args.schedule, "ema": args.ema}
    label += "+cos" if args.schedule == "cosine" else ""
    label += f"+ema{args.ema:g}" if args.ema else ""
    path = Path(args.results)
    done = set()
    if path.exists():
        with path.open() as f:
            done = {(r["protocol"], r["setting"], int(r["seed"])) for r in csv.DictReader(f)}
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as f:
            csv.DictWriter(f, FIELDS).writeheader()
    if not args.report_only:
        for setting in args.settings.split(","):
            for seed in range(args.seeds or proto.seeds):
                if (label, setting, seed) in done:
                    continue
                rows = run_setting(label, setting, proto, seed, args.time_embedding, training)
                with path.open("a", newline="") as f:
                    csv.DictWriter(f, FIELDS).writerows(rows)
    with path.open() as f:
        rows = list(csv.DictReader(f))
    print("| protocol | setting | variant | seeds | EMD | EMD stochastic | EMD deterministic "
          "| sMAPE | s/epoch |\n|---|---|---|---|---|---|---|---|---|")  # fmt: skip
    keys = sorted({(r["protocol"], r["setting"], r["variant"]) for r in rows})
    for key in keys:
        group = [r for r in rows if (r["protocol"], r["setting"], r["variant"]) == key]

        def mean(field, group=group):
            vals = [float(r[field]) for r in group if r.get(field) not in (None, "")]
            return f"{np.mean(vals):.4g}" if vals else "–"

        cells = [mean(f) for f in ("emd", "emd_stochastic", "emd_deterministic", "smape")]
        cells.append(mean("seconds_per_epoch"))
        print(f"| {' | '.join(key)} | {len(group)} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
