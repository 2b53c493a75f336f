"""Learned agent policies in a duopoly (flame §4.3, mode 1: per-agent parameters
optimised by gradient through the agents' discrete purchases).

8100 consumers on a 90x90 grid graph buy product A or B for 100 steps; each has a
follower tendency (weight of the neighbours' purchases against its own experience).
Every episode runs a small ensemble, and ag.train ascends the mean cumulative
experienced quality by gradients through the purchases (Gumbel-softmax with
temperature 0.3 and a hard forward pass by default, as in flame; `--estimator st` for
straight-through).  The learned
tendencies are compared with every agent sharing one fixed tendency (a grid of values)
and with the best pair of fixed tendencies for the two kinds of consumers (good and poor
judges of quality), on held-out keys.

Run: python examples/opinion_dynamics.py [--quick] [--out docs/figures/opinion_dynamics]
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
from agentgrad.models.duopoly import Duopoly
from agentgrad.spaces.graphs import lattice
from agentgrad.training import drive

FULL = {"side": 90, "steps": 100, "episodes": 150, "runs": 2, "eval_runs": 16, "lr": 0.1}
QUICK = {"side": 20, "steps": 30, "episodes": 25, "runs": 2, "eval_runs": 4, "lr": 0.2}
GRID = (0.02, 0.1, 0.3, 0.5, 0.7, 0.9, 0.98)
SAMPLE = 8  # agents whose tendencies are recorded every episode


def mean_return(model: Duopoly, key: jax.Array, n_steps: int, n_runs: int) -> jax.Array:
    """Mean over runs and agents of the cumulative expected quality, per step."""
    runs = ag.ensemble(model, None, key, n_steps, n_runs)
    return jnp.mean(runs.final_state.total) / n_steps


def with_tendency(model: Duopoly, tendency: jax.Array) -> Duopoly:
    logit = jnp.log(tendency / (1.0 - tendency))
    return drive(model, lambda m: m.substep("purchase").tendency_logit, logit)


ESTIMATORS = {"gs": ag.GumbelSoftmax(0.3), "st": ag.StraightThrough()}


def train_policies(cfg: dict, seed: int = 0, progress: bool = True, estimator: str = "gs"):
    model = Duopoly(
        lattice(cfg["side"]),
        tendency=0.5,
        key=jax.random.key(seed),
        estimator=ESTIMATORS[estimator],
    )
    novice = np.asarray(model.novice)
    sample = np.concatenate(
        [np.flatnonzero(novice)[: SAMPLE // 2], np.flatnonzero(~novice)[: SAMPLE // 2]]
    )

    def loss(m: Duopoly, key: jax.Array):
        ret = mean_return(m, key, cfg["steps"], cfg["runs"])
        return -ret, {"return": ret, "tendency": m.tendency[sample]}

    result = ag.train(
        model,
        loss,
        jax.random.key(seed + 1),
        cfg["episodes"],
        trainable=lambda m: m.substep("purchase").tendency_logit,
        optimizer=optax.adam(cfg["lr"]),
        has_aux=True,
        progress=progress,
    )
    return model, result, novice, sample


def baselines(model: Duopoly, novice: np.ndarray, cfg: dict, key: jax.Array) -> dict:
    """Held-out mean return of fixed tendencies: one for everybody, and the best pair
    (poor judges, good judges) on GRID x GRID."""
    evaluate = jax.jit(
        lambda f: mean_return(with_tendency(model, f), key, cfg["steps"], cfg["eval_runs"])
    )
    same = {f: float(evaluate(jnp.full(novice.shape, f))) for f in GRID}
    pairs = {
        (a, b): float(evaluate(jnp.asarray(np.where(novice, a, b), model.tendency.dtype)))
        for a in GRID
        for b in GRID
    }
    return {"same": same, "pair": max(pairs.items(), key=lambda kv: kv[1])}


def figure(result, base: dict, learned: float, novice_sample: np.ndarray, path: Path) -> None:
    from agentgrad.plotting import plt, save_figure  # the non-interactive backend

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    left.plot(result.history["return"], lw=1, label="learned tendencies (training episodes)")
    best_same = max(base["same"].items(), key=lambda kv: kv[1])
    left.axhline(best_same[1], color="gray", ls="--", label=f"best shared tendency {best_same[0]}")
    (a, b), value = base["pair"]
    left.axhline(value, color="k", ls=":", label=f"best fixed pair (poor {a}, good {b})")
    left.axhline(learned, color="C3", lw=0.8, label="learned, held-out")
    left.set_xlabel("episode")
    left.set_ylabel("mean experienced quality per step")
    left.legend(fontsize=7)
    tendencies = np.asarray(result.history["tendency"])
    for j in range(tendencies.shape[1]):
        style = "C1" if novice_sample[j] else "C0"
        right.plot(tendencies[:, j], color=style, lw=1)
    right.plot([], [], color="C1", label="poor judges of quality")
    right.plot([], [], color="C0", label="good judges of quality")
    right.set_xlabel("episode")
    right.set_ylabel("follower tendency")
    right.set_ylim(0, 1)
    right.legend(fontsize=7)
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny settings (tests)")
    parser.add_argument("--episodes", type=int, help="training episodes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--estimator", choices=sorted(ESTIMATORS), default="gs")
    parser.add_argument("--out", type=Path, help="write OUT.png (figure)")
    args = parser.parse_args(argv)
    cfg = dict(QUICK if args.quick else FULL)
    if args.episodes:
        cfg["episodes"] = args.episodes
    start = time.perf_counter()
    model, result, novice, sample = train_policies(
        cfg, args.seed, progress=not args.quick, estimator=args.estimator
    )
    seconds = time.perf_counter() - start
    held_out = jax.random.key(10_000 + args.seed)
    learned = float(mean_return(result.model, held_out, cfg["steps"], cfg["eval_runs"]))
    base = baselines(model, novice, cfg, held_out)
    ret = np.asarray(result.history["return"])
    f = np.asarray(result.model.tendency)
    agent_steps = cfg["episodes"] * cfg["runs"] * cfg["steps"] * novice.size
    print(f"{novice.size} consumers, {cfg['steps']} steps, {cfg['episodes']} episodes")
    print(
        f"training return: first 10 episodes {ret[:10].mean():.4f}, last 10 {ret[-10:].mean():.4f}"
    )
    print(
        f"held-out return: learned {learned:.4f}; shared fixed tendency "
        + ", ".join(f"{k}: {v:.4f}" for k, v in base["same"].items())
        + f"; best fixed pair (poor, good) {base['pair'][0]}: {base['pair'][1]:.4f}"
    )
    print(
        f"learned tendency: poor judges {f[novice].mean():.3f} ± {f[novice].std():.3f}, "
        f"good judges {f[~novice].mean():.3f} ± {f[~novice].std():.3f}"
    )
    print(f"training: {seconds:.0f} s ({agent_steps / seconds:.3g} agent-steps/s forward+backward)")
    if args.out is not None:
        figure(result, base, learned, novice[sample], args.out.with_suffix(".png"))
    return {"returns": ret, "learned": learned, "baselines": base, "tendency": f, "novice": novice}


if __name__ == "__main__":
    main()
