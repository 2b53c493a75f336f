"""agentgrad's PredatorPrey against the GDN paper's reference predator-prey ABM.

With ``--reference`` (a checkout of ``fracozzi/ABM-Graph-Diffusion-Network``) it runs that
repository's ``models/abm/predatorprey.py`` (PyTorch; needs ``torch``, ``einops`` and
``pyrootutils``) at the repository's own settings (32 x 32 torus, 2048 slots, density
0.3, predator share 0.5), and writes the mean and standard deviation over ``--runs`` runs
of the numbers of active (Alive or Pregnant) predators and prey per step, for Psi_1 ...
Psi_4, to a CSV.
The result ships as ``tests/data/predator_prey_reference.csv``; ``tests/test_predator_prey``
compares agentgrad's :class:`~agentgrad.models.PredatorPrey` with it.  Without
``--reference`` it reads that CSV, runs agentgrad's model (same settings, ``--runs``
runs), prints the sMAPE (GDN Eq. 7) per Psi and, with ``--figure``, draws both.

    git clone https://github.com/fracozzi/ABM-Graph-Diffusion-Network /tmp/gdn
    python benchmarks/predator_prey_reference.py --reference /tmp/gdn --runs 100
    python benchmarks/predator_prey_reference.py --figure docs/figures/predator_prey.png
"""

from __future__ import annotations

import csv
import time
from pathlib import Path

import _reference
import numpy as np

STEPS = 35
ROWS = {  # the reference's Psi tables: rows pred+prey, pred alone, prey+pred, prey alone
    "psi1": [[0.15, 0.45, 0.4], [0.25, 0.55, 0.2], [0.3, 0.45, 0.25], [0.15, 0.4, 0.45]],
    "psi2": [[0.35, 0.45, 0.2], [0.25, 0.6, 0.15], [0.45, 0.5, 0.05], [0.35, 0.35, 0.3]],
    "psi3": [[0.15, 0.3, 0.55], [0.3, 0.55, 0.15], [0.7, 0.2, 0.1], [0.1, 0.4, 0.5]],
    "psi4": [[0.15, 0.35, 0.5], [0.25, 0.45, 0.3], [0.45, 0.4, 0.15], [0.3, 0.4, 0.3]],
}


def run_reference(root: Path, runs: int, steps: int, out: Path) -> None:
    """Mean and sd of active predators / prey per step of the reference code."""
    import torch

    PredatorPreyABM = _reference.import_reference(
        root, "models.abm.predatorprey", "PredatorPreyABM"
    )
    torch.set_num_threads(1)
    rows = []
    for name, alive_rows in ROWS.items():
        psi = torch.zeros(7, 6)
        psi[:4, :3] = torch.tensor(alive_rows)
        psi[4, 3] = psi[5, 4] = psi[6, 5] = 1.0  # pregnant -> alive, dead, unborn stay
        abm = PredatorPreyABM(
            psi, n_agents=2048, max_agent=1024, grid_fill_p=0.3, predators_p=0.5, grid_size=32
        )
        counts = np.zeros((runs, steps + 1, 2))
        start = time.perf_counter()
        for run in range(runs):
            torch.manual_seed(run)
            state = abm.initial_state()
            for t in range(steps + 1):
                if t:
                    state = abm.next_step(state)
                kind, active = state[:, 0], state[:, 1] + state[:, 3]  # alive + pregnant
                counts[run, t] = [active[kind == 1].sum(), active[kind == 0].sum()]
        print(f"{name}: {runs} runs in {time.perf_counter() - start:.0f} s", flush=True)
        mean, sd = counts.mean(0), counts.std(0, ddof=1)
        for t in range(steps + 1):
            rows.append([name, t, *np.round(mean[t], 2), *np.round(sd[t], 2)])
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["psi", "t", "predators_mean", "prey_mean", "predators_sd", "prey_sd"])
        w.writerows(rows)
    print(f"wrote {out}")


def compare(reference: Path, runs: int, figure: str | None) -> None:
    """Ours (mean and sd of ``runs`` runs) against the reference CSV, per Psi."""
    import jax

    import agentgrad as ag
    from agentgrad.metrics import smape
    from agentgrad.models import PredatorPrey
    from agentgrad.models.predator_prey import preset

    with reference.open() as f:
        table = list(csv.DictReader(f))
    model = PredatorPrey()
    n0, n_pred = model.initial_counts()
    results = {}
    for name in ROWS:
        rows = [r for r in table if r["psi"] == name]
        steps = len(rows) - 1
        obs = ag.ensemble(model, preset(name), jax.random.key(11), steps, runs).observables
        ours = {
            "predators": np.concatenate([np.full((runs, 1), n_pred), obs["predators"]], 1),
            "prey": np.concatenate([np.full((runs, 1), n0 - n_pred), obs["prey"]], 1),
        }
        ref = {k: np.array([float(r[f"{k}_mean"]) for r in rows]) for k in ours}
        ref_sd = {k: np.array([float(r[f"{k}_sd"]) for r in rows]) for k in ours}
        error = np.mean([smape(ref[k][1:], ours[k].mean(0)[1:]) for k in ours])
        peaks = {
            k: (
                int(ref[k].argmax()),
                round(ref[k].max()),
                int(ours[k].mean(0).argmax()),
                round(ours[k].mean(0).max()),
            )
            for k in ours
        }
        results[name] = (ours, ref, ref_sd)
        print(
            f"{name}: sMAPE {error:.3f}; peak (t, mean) reference vs agentgrad: "
            + ", ".join(f"{k} ({a}, {b}) vs ({c}, {d})" for k, (a, b, c, d) in peaks.items())
        )
    if figure:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 4, figsize=(16, 3.6), sharey=True)
        for ax, (name, (ours, ref, ref_sd)) in zip(axes, results.items(), strict=True):
            for k, colour in (("prey", "tab:green"), ("predators", "tab:red")):
                _reference.draw(ax, ours[k], ref[k], colour, k)
                t = np.arange(len(ref[k]))
                ax.fill_between(t, ref[k] - ref_sd[k], ref[k] + ref_sd[k], color="0.5", alpha=0.1)
            ax.set_title(f"{name}")
            ax.set_xlabel("step")
        axes[0].set_ylabel("active agents (mean ± sd)")
        axes[0].legend(fontsize=7)
        _reference.save(fig, figure)


if __name__ == "__main__":
    _reference.main(
        __doc__, run_reference, compare, 100, STEPS, "tests/data/predator_prey_reference.csv"
    )
