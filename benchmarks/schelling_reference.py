"""agentgrad's SchellingAgents against the GDN paper's reference Schelling ABM.

With ``--reference`` (a checkout of ``fracozzi/ABM-Graph-Diffusion-Network``) it runs that
repository's ``models/abm/schelling.py`` (NumPy, ~1 s per step: an O(N^2) Python loop)
at the paper's settings (density 0.75 -> 1950 agents) for xi = 0.625, 0.75, 0.875, and
stores the mean and sd over ``--runs`` runs of the happy count and the segregation
(both computed from its states by agentgrad's ``SchellingAgents.observe``; the
reference defines no such observable) in ``tests/data/schelling_reference.csv``.
Without ``--reference`` it compares agentgrad's model (same number of runs) with that
file: sMAPE (GDN Eq. 6) per xi, and a figure with ``--figure``.

    python benchmarks/schelling_reference.py --reference /tmp/gdn --runs 10
    python benchmarks/schelling_reference.py --figure docs/figures/schelling_agents.png
"""

from __future__ import annotations

import csv
import time
from pathlib import Path

import _reference
import jax
import jax.numpy as jnp
import numpy as np

import agentgrad as ag
from agentgrad.metrics import smape
from agentgrad.models import SchellingAgents
from agentgrad.models.schelling_agents import XI, SchellingAgentsState

OBSERVABLES = ("happy", "segregation")


def run_reference(root: Path, runs: int, steps: int, out: Path) -> None:
    SchellingABM = _reference.import_reference(root, "models.abm.schelling", "SchellingABM")
    model = SchellingAgents()
    observe = jax.jit(lambda s, xi: model.observe(s, {"threshold": xi}, 0.0))
    rows = []
    for name, xi in XI.items():
        abm = SchellingABM(density=0.75, threshold=xi)
        values = np.zeros((runs, steps + 1, len(OBSERVABLES)))
        start = time.perf_counter()
        for run in range(runs):
            np.random.seed(run)
            state = abm.initial_state()
            for t in range(steps + 1):
                if t:
                    state = abm.next_step(state)
                s = SchellingAgentsState(*(jnp.asarray(state[:, i], jnp.int32) for i in (2, 0, 1)))
                obs = observe(s, xi)
                values[run, t] = [float(obs[k]) for k in OBSERVABLES]
        print(f"{name}: {runs} runs in {time.perf_counter() - start:.0f} s", flush=True)
        for t in range(steps + 1):
            m, sd = values[:, t].mean(0), values[:, t].std(0, ddof=1)
            rows.append([name, t, *np.round(m, 4), *np.round(sd, 4)])
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["xi", "t", *(f"{k}_mean" for k in OBSERVABLES),
                    *(f"{k}_sd" for k in OBSERVABLES)])  # fmt: skip
        w.writerows(rows)
    print(f"wrote {out}")


def ours(name: str, runs: int, steps: int) -> dict[str, np.ndarray]:
    """Runs x (steps + 1) series of agentgrad's model (t = 0 included)."""
    model, params = SchellingAgents(), {"threshold": XI[name]}
    traj = ag.ensemble(model, params, jax.random.key(11), steps, runs)
    first = jax.vmap(lambda k: model.observe(model.init(params, k), params, 0.0))(
        jax.random.split(jax.random.key(12), runs)
    )
    return {
        k: np.concatenate([np.asarray(first[k])[:, None], np.asarray(traj.observables[k])], 1)
        for k in OBSERVABLES
    }


def compare(reference: Path, runs: int, figure: str | None) -> None:
    with reference.open() as f:
        table = list(csv.DictReader(f))
    results = {}
    for name, xi in XI.items():
        rows = [r for r in table if r["xi"] == name]
        mine = ours(name, runs, len(rows) - 1)
        ref = {k: np.array([float(r[f"{k}_mean"]) for r in rows]) for k in OBSERVABLES}
        errors = {k: smape(ref[k][1:], mine[k].mean(0)[1:]) for k in OBSERVABLES}
        results[name] = (mine, ref)
        print(f"{name} (xi {xi}): sMAPE happy {errors['happy']:.3f}, segregation "
              f"{errors['segregation']:.3f}; happy at the end: reference {ref['happy'][-1]:.0f}, "
              f"agentgrad {mine['happy'].mean(0)[-1]:.0f}")  # fmt: skip
    if figure:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
        for ax, k in zip(axes, OBSERVABLES, strict=True):
            for (name, (mine, ref)), colour in zip(
                results.items(), ("C0", "C1", "C2"), strict=True
            ):
                _reference.draw(ax, mine[k], ref[k], colour, f"xi {XI[name]}")
            ax.set(title=k, xlabel="step")
        axes[0].legend(fontsize=7)
        _reference.save(fig, figure)


if __name__ == "__main__":
    _reference.main(__doc__, run_reference, compare, 10, 30, "tests/data/schelling_reference.csv")
