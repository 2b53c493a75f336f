"""GDN training options at the CPU protocol: learning-rate schedule and weight averaging
against the macro error of free rollouts (issue 10).

Predator-prey at ``benchmarks/gdn.py --protocol cpu`` (16x16 torus, 512 slots, R = 32,
9 transitions, CPU widths, Adam 1e-3 / 2e-3), the GDN surrogate only; per seed, the
ramification data, network initialisation and evaluation keys are the same for every
training option, so the options are compared on the same data.  Metric: sMAPE (Eq. 7)
between the mean predator and prey series of ``--runs`` ABM rollouts and ``--runs``
surrogate rollouts of 25 steps from the last training state.  The sMAPE of two
independent sets of 32 ABM rollouts from that state (the metric's noise floor) is printed
too.

Options (``train_gdn``): ``constant`` (the paper's), ``cosine`` decay of both learning
rates to 0, ``ema`` (the average of the iterates, decay 0.999), and ``cosine+ema``.
``--epochs`` and ``--branches`` scale the training; ``--size`` and ``--slots`` the ABM
(``--size 32 --slots 2048`` is the paper's predator-prey).

    python benchmarks/gdn_training.py --seeds 0,1,2
    python benchmarks/gdn_training.py --seeds 0,1 --options cosine --epochs 40
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import jax
import numpy as np
from gdn import PROTOCOLS, network, setting_for

from agentgrad.engine import ensemble
from agentgrad.metrics import smape
from agentgrad.surrogate import GDNSurrogate, ramifications, train_gdn
from agentgrad.surrogate.evaluate import FromState, macro_smape

OPTIONS = {
    "constant": {"schedule": "constant"},
    "cosine": {"schedule": "cosine"},
    "ema": {"schedule": "constant", "ema": 0.999},
    "cosine+ema": {"schedule": "cosine", "ema": 0.999},
}


def noise_floor(model, last, params, key, runs, names) -> float:
    """sMAPE between the means of two independent sets of ABM rollouts."""
    abm = FromState(model, last)
    a, b = (ensemble(abm, params, k, 25, runs).observables for k in jax.random.split(key))
    errors = [smape(np.asarray(a[n]).mean(0), np.asarray(b[n]).mean(0)) for n in names]
    return float(np.mean(errors))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setting", default="psi1")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--options", default=",".join(OPTIONS))
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--branches", type=int, default=32)
    parser.add_argument("--runs", type=int, default=32)
    parser.add_argument("--size", type=int, default=None, help="torus side (CPU: 16)")
    parser.add_argument("--slots", type=int, default=None, help="agent slots (CPU: 512)")
    args = parser.parse_args()
    options = args.options.split(",")
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        parser.error(f"unknown options {unknown}; choose from {', '.join(OPTIONS)}")
    small = [f"--{n}" for n in ("epochs", "branches", "runs", "size", "slots")
             if getattr(args, n) is not None and getattr(args, n) < 1]  # fmt: skip
    if small:
        parser.error(f"{', '.join(small)}: must be at least 1")
    cpu = PROTOCOLS["cpu"]
    proto = dataclasses.replace(
        cpu, epochs=args.epochs, branches=args.branches,
        size=args.size or cpu.size, slots=args.slots or cpu.slots,
    )  # fmt: skip
    case = setting_for(args.setting, proto)
    model, params = case.model, case.params
    results: dict[str, list[float]] = {o: [] for o in options}
    for seed in (int(s) for s in args.seeds.split(",")):
        key = jax.random.fold_in(jax.random.key(seed), 7)
        k_data, _, k_train, k_eval = jax.random.split(key, 4)
        data, last = ramifications(model, params, k_data, 10, proto.branches)
        floor = noise_floor(model, last, params, jax.random.fold_in(k_eval, 1), args.runs,
                            case.macro)  # fmt: skip
        print(f"seed {seed}: noise floor (ABM against ABM) sMAPE {floor:.3f}", flush=True)
        for option in options:
            start = time.perf_counter()
            net = network("gdn", proto, case, k_train)
            net, history = train_gdn(
                net, data, k_train, proto.epochs, proto.learning_rate, **OPTIONS[option]
            )
            seconds = time.perf_counter() - start
            error, _, _ = macro_smape(
                FromState(model, last), GDNSurrogate(model, net, last), params, k_eval, 25,
                args.runs, case.macro,
            )  # fmt: skip
            results[option].append(error)
            print(f"seed {seed} {option}: sMAPE {error:.3f}, final loss "
                  f"{history['loss'][-1]:.4f}, {seconds:.0f} s", flush=True)  # fmt: skip
    print(f"\n{args.setting}, {proto.size}x{proto.size} torus, {proto.slots} slots, "
          f"{args.epochs} epochs, R = {args.branches}, {args.runs} rollouts")  # fmt: skip
    print("| training | sMAPE per seed | mean |\n|---|---|---|")
    for option, values in results.items():
        per_seed = ", ".join(f"{v:.3f}" for v in values)
        print(f"| {option} | {per_seed} | {np.mean(values):.3f} |")


if __name__ == "__main__":
    main()
