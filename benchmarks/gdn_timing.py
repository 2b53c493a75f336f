"""GDN cost (`graph-diffusion-networks-for-abms` Tables 2-3): training time per epoch
against agents and R, and the time to generate a 25-step rollout of the whole system,
beside the ABM's own 25 steps.

Predator-prey (Psi_1) at density 0.3 on a 16x16 torus with 512 slots and on the paper's
32x32 torus with 2048 slots; T = 10 (9 transitions); CPU widths (``benchmarks/gdn.py``
``--protocol cpu``) and, for rollouts, the paper's Table 1 widths.  An epoch is T x R
optimiser steps over all agents; each timing is compiled first, best of ``--repeats``
(per epoch: half the difference between 3-epoch and 1-epoch trainings, which removes
the compilation).

    python benchmarks/gdn_timing.py [--branches 8,32] [--repeats 3]

Paper (A100, Table 1 widths): 37.2 s per epoch at R = 500 (Table 2); 7.4 s to generate
25 steps of 2048 agents (Table 3).
"""

from __future__ import annotations

import argparse
import time

import equinox as eqx
import jax
from _timing import best_time

import agentgrad as ag
from agentgrad.models import PredatorPrey
from agentgrad.models.predator_prey import preset
from agentgrad.surrogate import GDN, GDNSurrogate, ramifications, train_gdn

SIZES = ((16, 512), (32, 2048))
WIDTHS = {
    "cpu": dict(hidden=(32, 64, 128, 128, 64, 32), gnn_hidden=(32, 64), condition=64),
    "paper": {},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--branches", default="8,32")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    params, key = preset("psi1"), jax.random.key(0)
    print(f"device: {jax.devices()[0].device_kind}, {jax.device_count()} device(s)")
    print("| agents | R | widths | s / epoch | s / (t, r) pair |\n|---|---|---|---|---|")
    for size, slots in SIZES:
        model = PredatorPrey(size=size, n_agents=slots)
        for r in (int(v) for v in args.branches.split(",")):
            data, _ = ramifications(model, params, key, 10, r)
            gdn = GDN(2, 6, key, **WIDTHS["cpu"])

            def run(epochs, gdn=gdn, data=data):
                start = time.perf_counter()
                train_gdn(gdn, data, key, epochs, 1e-3)  # returns after the last epoch
                return time.perf_counter() - start

            # train_gdn compiles its epoch on every call: time per epoch = difference
            seconds = min((run(3) - run(1)) / 2 for _ in range(args.repeats))
            pairs = data.n_transitions * r
            print(f"| {slots} | {r} | cpu | {seconds:.2f} | {seconds / pairs:.4f} |", flush=True)
    print("\n| agents | model | s for 25 steps |\n|---|---|---|")
    for size, slots in SIZES:
        model = PredatorPrey(size=size, n_agents=slots)
        abm = eqx.filter_jit(lambda k, m=model: ag.simulate(m, params, k, 25).observables)
        print(f"| {slots} | ABM | {best_time(abm, key, repeats=args.repeats):.3f} |", flush=True)
        for name, widths in WIDTHS.items():
            sur = GDNSurrogate(model, GDN(2, 6, key, **widths))
            run = eqx.filter_jit(lambda k, s=sur: ag.simulate(s, params, k, 25).observables)
            seconds = best_time(run, key, repeats=args.repeats)
            print(f"| {slots} | GDN, {name} widths | {seconds:.2f} |", flush=True)


if __name__ == "__main__":
    main()
