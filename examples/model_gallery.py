"""Pictures of every model's state for the documentation site (``docs/models/``).

Grid models: three snapshots (start, middle, end of one run) from ``Model.frame`` and an
animation of the whole run (the writer behind ``agentgrad run MODEL --animate``).
Duopoly: purchases on the 90x90 lattice.  Network models: the contact network of a small
population drawn on a circle, agents coloured by their state on three days.  AMOF: the
firm-size distribution over time.

Run: python examples/model_gallery.py --out docs/figures/models [--quick]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jax
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402

import agentgrad as ag  # noqa: E402
from agentgrad import frames  # noqa: E402
from agentgrad.frames import run_frames  # noqa: E402
from agentgrad.models import REGISTRY, BuildOptions  # noqa: E402
from agentgrad.models.duopoly import Duopoly  # noqa: E402
from agentgrad.models.population import Population, synthetic_population  # noqa: E402
from agentgrad.plotting import animate, save_figure  # noqa: E402

GRID_MODELS = {  # name -> (preset parameters, steps)
    "sirs-grid": ({}, 40),
    "schelling": ({"threshold": 0.6}, 20),
    "schelling-agents": ({"threshold": 0.75}, 25),
    "predator-prey": (ag.models.predator_prey.preset("psi1"), 30),
    "sugarscape": ({}, 50),
}


def grid_run(name: str, params: dict, n_steps: int, key: jax.Array) -> np.ndarray:
    """Frames ``(n_steps + 1, H, W, 3)`` of one run of a registry model."""
    model = REGISTRY[name].build(BuildOptions(estimator=ag.StraightThrough()))
    return run_frames(model, params, key, n_steps)


def snapshots(images: np.ndarray, path: Path, title: str) -> None:
    steps = [0, len(images) // 2, len(images) - 1]
    fig, axes = plt.subplots(1, 3, figsize=(9, 3.3))
    for ax, t in zip(axes, steps, strict=True):
        ax.imshow(images[t], interpolation="nearest")
        ax.set_title(f"step {t}")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title)
    save_figure(fig, path)


def network_picture(path: Path, title: str, key: jax.Array, seirm: bool) -> None:
    """A Watts-Strogatz population of 120 agents on a circle, coloured by state."""
    n = 120
    graph = ag.graphs.watts_strogatz(n, 4, 0.1, key=key)
    if seirm:
        ages = synthetic_population(n, 4, key=0).ages
        model = ag.models.SEIRM(Population(ages, graph))
        params = model.param_space.complete({"transmission": 0.6, "initial_infected": 0.03})
    else:
        model = ag.models.SIRNetwork(graph=graph)
        params = model.param_space.complete({"beta": 0.8, "initial_infected": 0.03})
    traj = ag.simulate(model, params, key, 30, save_every=1)
    angle = 2 * np.pi * np.arange(n) / n
    xy = np.stack([np.cos(angle), np.sin(angle)], 1)
    senders, receivers = (np.asarray(a) for a in graph.csr()[:2])
    fig, axes = plt.subplots(1, 3, figsize=(9, 3.4))
    for ax, day in zip(axes, [0, 10, 29], strict=True):
        state = jax.tree.map(lambda x, d=day: x[d], traj.states)
        if seirm:
            stage = np.asarray(state.stage).argmax(0)
            colours = np.array(
                [frames.BLUE, frames.YELLOW, frames.ORANGE, frames.GREEN, frames.GREY]
            )
        else:
            stage = np.stack(
                [
                    np.asarray(state.susceptible),
                    np.asarray(state.infected),
                    np.asarray(state.recovered),
                ]
            ).argmax(0)
            colours = np.array([frames.BLUE, frames.ORANGE, frames.GREEN])
        once = senders < receivers  # each undirected edge once
        lines = np.stack([xy[senders[once]], xy[receivers[once]]], axis=1)
        ax.add_collection(LineCollection(lines, colors="0.8", linewidths=0.5, zorder=0))
        ax.scatter(*xy.T, c=colours[stage], s=18, zorder=1)
        ax.set_title(f"day {day + 1}")
        ax.set_aspect("equal")
        ax.axis("off")
    labels = ["S", "E", "I", "R", "M"] if seirm else ["S", "I", "R"]
    for label, c in zip(labels, colours, strict=True):
        axes[-1].scatter([], [], color=c, label=label)
    axes[-1].legend(loc="center left", bbox_to_anchor=(1, 0.5), fontsize=8)
    fig.suptitle(title)
    save_figure(fig, path)


def amof_picture(path: Path, key: jax.Array) -> None:
    model = ag.models.AMOF(n_agents=1000)
    params = model.param_space.defaults()
    traj = ag.simulate(model, params, key, 30, save_every=1)
    fig, ax = plt.subplots(figsize=(6, 3.4))
    for day in [0, 4, 29]:
        sizes = np.asarray(traj.states.size[day])
        sizes = sizes[sizes > 0.5]
        ax.hist(
            sizes,
            bins=np.arange(1, sizes.max() + 2) - 0.5,
            histtype="step",
            lw=1.5,
            label=f"step {day + 1}: {len(sizes)} firms",
        )
    ax.set_xlabel("firm size (agents)")
    ax.set_ylabel("number of firms")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    ax.set_title("AMOF: firm sizes, 1000 agents")
    save_figure(fig, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/figures/models")
    parser.add_argument("--quick", action="store_true", help="two models, few steps")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    key = jax.random.key(0)
    chosen = dict(list(GRID_MODELS.items())[:2]) if args.quick else GRID_MODELS
    for name, (params, steps) in chosen.items():
        images = grid_run(name, params, 4 if args.quick else steps, key)
        snapshots(images, out / f"{name}.png", name)
        animate(images, out / f"{name}.gif", title=name)
        print(f"wrote {out / name}.png and .gif")
    duopoly = Duopoly(estimator=ag.GumbelSoftmax(0.3))
    images = run_frames(duopoly, None, key, 4 if args.quick else 40)
    snapshots(images, out / "duopoly.png", "duopoly: bought A blue, B orange")
    animate(images, out / "duopoly.gif", title="duopoly")
    network_picture(out / "sir-network.png", "sir-network: S blue, I orange, R green", key, False)
    if not args.quick:
        network_picture(out / "seirm.png", "seirm", key, True)
        amof_picture(out / "amof.png", key)
    print(f"wrote the network pictures to {out}")


if __name__ == "__main__":
    main()
