"""Morphogenesis with a neural cellular automaton (flame §4.1, mode 2: a neural network
inside a substep), trained with ag.train.

Cells on a grid carry 16 channels; the rule (`agentgrad.models.nca.Grow`) is a CNN.
Each training step runs a batch of automata from the single seed for `--steps` steps
(loss 1: MSE of their RGBA to the target), then erases a random disk from each grown
pattern and lets every damaged pattern grow `--steps` more steps (loss 2: MSE again).
The damaged runs start from different initial states and share the optimiser with the
seeded ones (flame's C2); they are what teaches the rule to regenerate.

Run: python examples/nca_morphogenesis.py [--quick] [--out docs/figures/nca]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

import agentgrad as ag
from agentgrad.models.nca import NeuralCA, rgba, target_pattern

FULL = {"size": 24, "batch": 8, "steps": 48, "iterations": 1000, "lr": 2e-3}
QUICK = {"size": 16, "batch": 4, "steps": 24, "iterations": 60, "lr": 4e-3}


def damage(cells: jax.Array, key: jax.Array, radius: float) -> jax.Array:
    """Erase all channels inside a disk of ``radius`` cells at a random place."""
    size = cells.shape[-1]
    centre = jax.random.uniform(key, (2,), cells.dtype, 0.3 * size, 0.7 * size)
    y, x = jnp.mgrid[0:size, 0:size].astype(cells.dtype) + 0.5
    outside = (y - centre[0]) ** 2 + (x - centre[1]) ** 2 > radius**2
    return cells * outside.astype(cells.dtype)


def grow(model: NeuralCA, keys: jax.Array, n_steps: int, start: jax.Array | None = None):
    """Final cells of one run per key (from ``start[b]`` when given, else the seed)."""
    if start is None:
        return jax.vmap(lambda k: ag.simulate(model, None, k, n_steps).final_state["cells"])(keys)
    return jax.vmap(
        lambda x0, k: ag.simulate(model.with_initial(x0), None, k, n_steps).final_state["cells"]
    )(start, keys)


def make_loss(target: jax.Array, batch: int, n_steps: int):
    def loss(model: NeuralCA, key: jax.Array):
        k_grow, k_damage, k_regrow = jax.random.split(key, 3)
        grown = grow(model, jax.random.split(k_grow, batch), n_steps)
        radius = 0.2 * model.size
        damaged = jax.vmap(lambda x, k: damage(x, k, radius))(
            grown, jax.random.split(k_damage, batch)
        )
        regrown = grow(model, jax.random.split(k_regrow, batch), n_steps, damaged)
        l_grow = jnp.mean((grown[:, :4] - target) ** 2)
        l_regrow = jnp.mean((regrown[:, :4] - target) ** 2)
        return l_grow + l_regrow, {"grow": l_grow, "regrow": l_regrow}

    return loss


def train_nca(cfg: dict, seed: int = 0, progress: bool = True):
    """Train the rule; returns (model, target, history)."""
    model = NeuralCA(cfg["size"], key=jax.random.key(seed))
    target = target_pattern(cfg["size"], "butterfly")
    optimizer = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(cfg["lr"]))
    result = ag.train(
        model,
        make_loss(target, cfg["batch"], cfg["steps"]),
        jax.random.key(seed + 1),
        cfg["iterations"],
        trainable=lambda m: m.substep("grow"),
        optimizer=optimizer,
        has_aux=True,
        progress=progress,
    )
    return result.model, target, result.history


def figure(model: NeuralCA, target, history, cfg: dict, path: Path) -> None:
    from agentgrad.plotting import plt, save_figure  # the non-interactive backend

    n = cfg["steps"]
    shown = [0, n // 8, n // 4, n // 2, n]
    traj = ag.simulate(model, None, jax.random.key(7), n, save_every=1)
    frames = [model.initial] + [traj.states["cells"][t - 1] for t in shown[1:]]
    damaged = damage(frames[-1], jax.random.key(8), 0.2 * model.size)
    regrowth = ag.simulate(model.with_initial(damaged), None, jax.random.key(9), n, save_every=1)
    after = [damaged] + [regrowth.states["cells"][t - 1] for t in shown[1:]]
    fig, axes = plt.subplots(2, len(shown) + 1, figsize=(2 * (len(shown) + 1), 4.4))
    for col, t in enumerate(shown):
        axes[0, col].imshow(rgba(frames[col]), interpolation="nearest")
        axes[0, col].set_title(f"step {t}")
        axes[1, col].imshow(rgba(after[col]), interpolation="nearest")
        axes[1, col].set_title("damaged" if t == 0 else f"+{t} steps")
    axes[0, -1].imshow(rgba(target), interpolation="nearest")
    axes[0, -1].set_title("target")
    axes[1, -1].semilogy(history["grow"], lw=0.8, label="grow")
    axes[1, -1].semilogy(history["regrow"], lw=0.8, label="regrow")
    axes[1, -1].set_title("loss")
    axes[1, -1].legend(fontsize=7)
    for ax in axes.flat[:-1]:
        ax.set_xticks([])
        ax.set_yticks([])
    save_figure(fig, path)
    # the same run as an animation: growth from the seed, the damage, then regrowth
    from agentgrad.plotting import animate

    states = jnp.concatenate(
        [model.initial[None], traj.states["cells"], damaged[None], regrowth.states["cells"]]
    )
    animate(
        np.asarray(jax.vmap(lambda c: model.frame({"cells": c}))(states)),
        path.with_suffix(".gif"),
        title="NCA",
    )


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny settings (tests)")
    parser.add_argument("--iterations", type=int, help="optimiser steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="write OUT.png (figure) and OUT.gif")
    args = parser.parse_args(argv)
    cfg = dict(QUICK if args.quick else FULL)
    if args.iterations:
        cfg["iterations"] = args.iterations
    start = time.perf_counter()
    model, target, history = train_nca(cfg, args.seed, progress=not args.quick)
    seconds = time.perf_counter() - start
    first, last = np.mean(history["loss"][:10]), np.mean(history["loss"][-10:])
    agent_steps = cfg["iterations"] * 2 * cfg["batch"] * cfg["steps"] * cfg["size"] ** 2
    print(
        f"NCA {cfg['size']}x{cfg['size']}, {cfg['iterations']} steps: loss {first:.4g} -> "
        f"{last:.4g} ({first / last:.1f}x lower) in {seconds:.0f} s "
        f"({agent_steps / seconds:.3g} agent-steps/s forward+backward)"
    )
    if args.out is not None:
        figure(model, target, history, cfg, args.out.with_suffix(".png"))
    return {"first": first, "last": last, "history": history}


if __name__ == "__main__":
    main()
