"""Beyond the GDN paper: a parameter-conditioned surrogate, calibrated by its gradients.

`graph-diffusion-networks-for-abms` §5 leaves "feeding the ABM's parameters Theta to the
surrogate" as future work.  This example does it on predator-prey (the CPU protocol of
``benchmarks/gdn.py``: 16x16 torus, 512 slots, reduced widths):

1. **Data across Theta.**  Ramifications (R branches, T steps from the initial state) at
   K values of ``prey_without_pregnant`` in 0.05 ... 0.95 (Psi_1 otherwise; over a
   narrower range each transition changes too little for the network to pick the
   parameter up), stored with their Theta (``condition_on``) and joined
   (``concatenate_ramifications``).
2. **One conditioned GDN** (``GDN(..., theta_names=[...])``): the condition gets
   ``MLP(Theta~)``.
3. **Calibration through the surrogate.**  "Observed" data: the mean prey and predator
   counts of ``abm_runs`` runs of the real ABM at a held-out Theta* (not among the K
   training values).  Loss: the squared error of the mean of M surrogate rollouts, in
   units of the data's scale, ``L(Theta) = mean_{t, k} ((mean_m x^sur_{m,t,k}(Theta) -
   x^obs_{t,k}) / s_k)^2``.  Adam on Theta from a start far from Theta*, fresh rollout
   keys every step, with two gradients: the pathwise one (``jax.grad`` through the
   reparameterised sampler and the straight-through phase decoding) and a central
   difference with common random numbers.
4. **Checks.**  The same loss on a grid of Theta, for the surrogate and for the ABM
   itself (where the ABM's minimum lies is what the surrogate should reproduce); the
   pathwise gradient against the central difference.
5. **Gradient with respect to initial agent states** (the paper claims this
   differentiability but does not show it): ``d E[prey_T] / d (Alive channel of agent
   i at t = 0)`` for initially Alive prey, against the effect of removing that agent
   (Dead at t = 0) in the real ABM and in the surrogate, over common random numbers.

What it shows (numbers in ``docs/benchmarks.md``): the surrogate's loss curve has its
minimum near, but not at, the ABM's; the pathwise gradient through the sampler is
close to zero where the central difference is not.  A trained denoiser maps its noise
to the categorical modes almost piecewise-constantly, so moving Theta moves a sample
within its mode hardly at all, and the probability mass that changes mode (what the
expected count responds to) is invisible to a reparameterised gradient of a finite
sample; this is the discontinuity that agentgrad's stochastic derivatives address for
the ABM itself.

Run: python examples/surrogate_calibration.py [--quick] [--out out]
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
from agentgrad.models import PredatorPrey
from agentgrad.models.predator_prey import ALIVE, DEAD, preset
from agentgrad.surrogate import (
    GDN,
    GDNSurrogate,
    concatenate_ramifications,
    load_gdn,
    ramifications,
    save_gdn,
    train_gdn,
    with_score,
)
from agentgrad.surrogate.evaluate import FromState

NAME = "prey_without_pregnant"
LOW, HIGH = 0.05, 0.95
SERIES = ("predators", "prey")


def settings(quick: bool) -> dict:
    if quick:  # a smoke run: tiny sizes, the numbers mean nothing
        return dict(size=8, slots=64, grid=(0.3, 0.6), steps=4, branches=4, epochs=2,
                    hidden=(16, 32, 16), gnn=(16,), condition=16, rollouts=2, iters=3,
                    abm_runs=8, scan=(0.3, 0.6), agents=3, removal_runs=8,
                    score_rollouts=4)  # fmt: skip
    return dict(size=16, slots=512, grid=(0.05, 0.275, 0.5, 0.725, 0.95), steps=13,
                branches=16, epochs=40, hidden=(32, 64, 128, 128, 64, 32), gnn=(32, 64),
                condition=64, rollouts=8, iters=12, abm_runs=64,
                scan=(0.2, 0.4, 0.6, 0.8), agents=12, removal_runs=256,
                score_rollouts=64)  # fmt: skip


def train(model, cfg: dict, key: jax.Array, cache: str | None):
    if cache and Path(cache).exists():
        gdn, _ = load_gdn(cache)
        print(f"loaded the trained surrogate from {cache}")
        return gdn
    parts = []
    for i, value in enumerate(cfg["grid"]):
        params = {**preset("psi1"), NAME: value}
        data, _ = ramifications(
            model, params, jax.random.fold_in(key, i), cfg["steps"], cfg["branches"],
            condition_on=[NAME],
        )  # fmt: skip
        parts.append(data)
    data = concatenate_ramifications(parts)
    gdn = GDN(
        2, 6, jax.random.fold_in(key, 99), hidden=cfg["hidden"], gnn_hidden=cfg["gnn"],
        condition=cfg["condition"], theta_names=[NAME], theta_ranges=[(LOW, HIGH)],
        theta_input="condition+gnn",
    )  # fmt: skip
    start = time.perf_counter()
    gdn, history = train_gdn(gdn, data, jax.random.fold_in(key, 7), cfg["epochs"], 1e-3)
    print(f"trained on {data.n_transitions} transitions x {data.n_branches} branches "
          f"({len(cfg['grid'])} values of {NAME}) in {time.perf_counter() - start:.0f} s; "
          f"loss {history['loss'][0]:.3f} -> {history['loss'][-1]:.3f}")  # fmt: skip
    if cache:
        save_gdn(cache, gdn)
    return gdn


def mean_series(model, params, key, steps: int, runs: int) -> jax.Array:
    """``(steps, 2)``: mean predators and prey over ``runs`` runs."""
    obs = ag.ensemble(model, params, key, steps, runs).observables
    return jnp.stack([jnp.mean(obs[n], 0) for n in SERIES], 1)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny smoke run")
    parser.add_argument("--truth", type=float, default=0.6, help="held-out Theta*")
    parser.add_argument("--start", type=float, default=0.2, help="initial guess")
    parser.add_argument("--gdn", default=None, help="cache: load the network, or train and save")
    parser.add_argument("--parts", default="scan,checks,score,descent,initial",
                        help="parts to run (comma-separated; also score-descent)")  # fmt: skip
    parser.add_argument("--score-rollouts", type=int, default=None,
                        help="rollouts per score-function gradient (default 64)")  # fmt: skip
    parser.add_argument("--out", default="out")
    args = parser.parse_args(argv)
    parts = set(args.parts.split(","))
    cfg = settings(args.quick)
    cfg["score_rollouts"] = args.score_rollouts or cfg["score_rollouts"]
    key = jax.random.key(0)
    model = PredatorPrey(size=cfg["size"], n_agents=cfg["slots"])
    gdn = train(model, cfg, jax.random.fold_in(key, 1), args.gdn)
    surrogate = GDNSurrogate(model, gdn)
    T = cfg["steps"] - 1  # calibrate on the steps the data covered
    base = preset("psi1")

    truth = {**base, NAME: args.truth}
    observed = mean_series(model, truth, jax.random.fold_in(key, 2), T, cfg["abm_runs"])
    scale = jnp.maximum(jnp.mean(observed, 0), 1.0)

    def loss_of(sim_model, value, k, runs):
        sim = mean_series(sim_model, {**base, NAME: value}, k, T, runs)
        return jnp.mean(((sim - observed) / scale) ** 2)

    surrogate_loss = eqx.filter_jit(lambda v, k: loss_of(surrogate, v, k, cfg["rollouts"]))
    grad_fn = eqx.filter_jit(
        jax.value_and_grad(lambda v, k: loss_of(surrogate, v, k, cfg["rollouts"]))
    )

    # --- grid of the loss: ABM and surrogate (same runs per value as the data) -------
    k_scan = jax.random.fold_in(key, 3)
    scan = [] if "scan" not in parts else [
        (v, float(loss_of(model, v, k_scan, cfg["abm_runs"])),
         float(np.mean([surrogate_loss(jnp.float32(v), jax.random.fold_in(k_scan, j))
                        for j in range(4)])))
        for v in cfg["scan"]
    ]  # fmt: skip
    print("loss on a grid (ABM, surrogate):")
    for v, a, s in scan:
        print(f"  {NAME} = {v:.2f}: {a:.4f}  {s:.4f}")

    # --- pathwise gradient against central differences (common random numbers) ------
    def central(v, k, h=0.05):
        return (surrogate_loss(v + h, k) - surrogate_loss(v - h, k)) / (2 * h)

    k_fd = jax.random.fold_in(key, 4)
    checks = []
    for v in cfg["scan"][1:3] if "checks" in parts else ():
        ks = [jax.random.fold_in(k_fd, j) for j in range(4)]
        g = np.mean([float(grad_fn(jnp.float32(v), k)[1]) for k in ks])
        fd = np.mean([float(central(jnp.float32(v), k)) for k in ks])
        checks.append((v, g, fd))
        print(f"d loss / d {NAME} at {v:.2f} (4 keys): pathwise {g:.4f}, central difference "
              f"{fd:.4f}")  # fmt: skip

    # --- likelihood-ratio gradient through the sampler (gradient="score") -------------
    scored = GDNSurrogate(model, gdn, gradient="score")

    def score_loss(value, k):
        obs = ag.ensemble(scored, {**base, NAME: value}, k, T, cfg["score_rollouts"])
        lp = obs.observables["log_prob"]
        sim = jnp.stack([jnp.mean(with_score(obs.observables[n], lp), 0) for n in SERIES], 1)
        return jnp.mean(((sim - observed) / scale) ** 2)

    score_grad = eqx.filter_jit(jax.grad(score_loss))
    score_checks = []
    for v in cfg["scan"][1:3] if "score" in parts else ():
        ks = [jax.random.fold_in(k_fd, 100 + j) for j in range(4)]
        g = np.asarray([float(score_grad(jnp.float32(v), k)) for k in ks])
        fd = np.mean([float(central(jnp.float32(v), k)) for k in ks])
        score_checks.append((v, g.mean(), g.std(ddof=1) / 2, fd))
        print(f"d loss / d {NAME} at {v:.2f}: score function {g.mean():.4f} +- "
              f"{g.std(ddof=1) / 2:.4f} (4 keys x {cfg['score_rollouts']} rollouts), central "
              f"difference {fd:.4f}")  # fmt: skip

    # --- gradient descent on Theta: pathwise and central-difference gradients ---------
    def descend(gradient):
        optimiser = optax.adam(0.06)
        value = jnp.float32(args.start)
        state = optimiser.init(value)
        path = [float(value)]
        for i in range(cfg["iters"]):
            k = jax.random.fold_in(jax.random.fold_in(key, 5), i)
            grad = gradient(value, k)
            with jax.numpy_dtype_promotion("standard"):  # optax mixes int counts
                updates, state = optimiser.update(grad, state)
                value = jnp.clip(optax.apply_updates(value, updates), LOW, HIGH)
            path.append(float(value))
        return path

    paths = {}
    methods = [("pathwise", lambda v, k: grad_fn(v, k)[1]), ("central difference", central)]
    methods = methods if "descent" in parts else []
    methods += [("score function", score_grad)] if "score-descent" in parts else []
    for label, gradient in methods:
        start = time.perf_counter()
        paths[label] = descend(gradient)
        recovered = float(np.mean(paths[label][-4:]))
        print(f"Adam with {label} gradients: {NAME} {args.start} -> {recovered:.3f} (truth "
              f"{args.truth}; mean of the last 4 of {cfg['iters']} steps, "
              f"{time.perf_counter() - start:.0f} s)")  # fmt: skip
    recovered = float(np.mean(next(iter(paths.values()))[-4:])) if paths else float("nan")

    # --- gradient with respect to initial agent states ------------------------------------
    s0 = model.init(base, jax.random.fold_in(key, 6))
    prey0 = np.flatnonzero((np.asarray(s0.kind) == 1) & (np.asarray(s0.phase[ALIVE]) > 0))
    chosen = prey0[: cfg["agents"]] if "initial" in parts else prey0[:0]
    keys = jax.random.split(jax.random.fold_in(key, 8), cfg["removal_runs"])
    few = keys[: max(cfg["rollouts"] * 4, 2)]

    def final_prey(sim_model, phase, k):
        start_state = eqx.tree_at(lambda s: s.phase, s0, phase)
        return ag.simulate(sim_model(start_state), base, k, T).observables["prey"][-1]

    def surrogate_of(state):
        return GDNSurrogate(model, gdn, state)

    def abm_of(state):
        return FromState(model, state)

    finals = eqx.filter_jit(jax.vmap(final_prey, (None, None, 0)))
    gradient = np.zeros(0)
    if len(chosen):
        grads = eqx.filter_jit(jax.vmap(jax.grad(final_prey, 1), (None, None, 0)))(
            surrogate_of, s0.phase, few
        )
        gradient = np.asarray(jnp.mean(grads, 0))[ALIVE, chosen]
    base_abm = np.asarray(finals(abm_of, s0.phase, keys))
    base_sur = np.asarray(finals(surrogate_of, s0.phase, few))
    removal, removal_sur = [], []
    for i in chosen:
        dead = s0.phase.at[:, i].set(0.0).at[DEAD, i].set(1.0)
        removal.append(float(np.mean(base_abm - np.asarray(finals(abm_of, dead, keys)))))
        removal_sur.append(float(np.mean(base_sur - np.asarray(finals(surrogate_of, dead, few)))))
    removal, removal_sur = np.asarray(removal), np.asarray(removal_sur)
    if len(chosen):
        print(f"initial states, {len(chosen)} Alive prey: d E[prey_{T}] / d Alive_i through the "
              f"surrogate mean {gradient.mean():.3f} (sd {gradient.std():.3f}); removing the "
              f"agent lowers E[prey_{T}] by {removal.mean():.2f} (sd {removal.std():.2f}) in "
              f"the ABM ({len(keys)} runs) and by {removal_sur.mean():.2f} (sd "
              f"{removal_sur.std():.2f}) in the surrogate ({len(few)} runs)")  # fmt: skip

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    np.savez(out / "surrogate_calibration.npz", scan=np.asarray(scan), checks=np.asarray(checks),
             score_checks=np.asarray(score_checks),
             **{k.replace(" ", "_"): np.asarray(v) for k, v in paths.items()},
             gradient=gradient, removal=removal, removal_surrogate=removal_sur)  # fmt: skip
    return {"recovered": recovered, "paths": paths, "scan": scan, "checks": checks,
            "score_checks": score_checks,
            "initial_gradient": gradient, "removal": removal,
            "removal_surrogate": removal_sur}  # fmt: skip


if __name__ == "__main__":
    main()
