"""Benchmark: training throughput of the learning case studies, and the memory of
backpropagating through 100 steps at 8100 agents with and without checkpointing.

Part 1 — agent-steps per second of one optimiser step (forward + backward + update,
compiled, best of 3) of
  * the NCA (examples/nca_morphogenesis.py settings: 24x24 cells, batch 8, 48 steps,
    grow + regrow = 2 x 8 x 48 x 576 agent-steps per optimiser step);
  * the duopoly (examples/opinion_dynamics.py settings: 8100 consumers, 100 steps,
    2 runs per episode).

Part 2 — peak resident memory (fresh process per cell) of the gradient of the mean
return of one 100-step duopoly run (8100 consumers) w.r.t. all 8100 tendencies, with
``checkpoint=False`` and ``checkpoint=True``.

    python benchmarks/learning.py
"""

from __future__ import annotations

import argparse
import json
import runpy
from pathlib import Path

from _memory import peak_since, reset_peak, run_worker
from _timing import best_time

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _step_time(loss, model, trainable, key) -> float:
    """Best of 3 wall times of one compiled optimiser step of ``ag.train``."""
    import equinox as eqx
    import optax

    from agentgrad.training import make_update, trainable_filter

    params, static = eqx.partition(model, trainable_filter(model, trainable))
    optimizer = optax.adam(1e-3)
    update = make_update(loss, optimizer)
    return best_time(update, params, static, optimizer.init(params), key)


def throughput() -> None:
    import jax

    from agentgrad.models.duopoly import Duopoly
    from agentgrad.models.nca import NeuralCA, target_pattern

    nca = runpy.run_path(str(EXAMPLES / "nca_morphogenesis.py"))
    cfg = nca["FULL"]
    model = NeuralCA(cfg["size"], key=jax.random.key(0))
    loss = nca["make_loss"](target_pattern(cfg["size"]), cfg["batch"], cfg["steps"])
    seconds = _step_time(
        lambda m, k: loss(m, k)[0], model, lambda m: m.substep("grow"), jax.random.key(1)
    )
    agent_steps = 2 * cfg["batch"] * cfg["steps"] * cfg["size"] ** 2
    print(
        f"{'case study':<14} {'agent-steps/opt. step':>22} {'s/opt. step':>12} "
        f"{'agent-steps/s':>14}"
    )
    print(f"{'NCA':<14} {agent_steps:>22} {seconds:>12.3f} {agent_steps / seconds:>14.3g}")

    od = runpy.run_path(str(EXAMPLES / "opinion_dynamics.py"))
    cfg = od["FULL"]
    model = Duopoly(tendency=0.5)

    def od_loss(m, k):
        return -od["mean_return"](m, k, cfg["steps"], cfg["runs"])

    seconds = _step_time(
        od_loss, model, lambda m: m.substep("purchase").tendency_logit, jax.random.key(1)
    )
    agent_steps = cfg["runs"] * cfg["steps"] * model.n_agents
    print(f"{'opinion':<14} {agent_steps:>22} {seconds:>12.3f} {agent_steps / seconds:>14.3g}")


def memory_worker(checkpoint: str) -> dict:
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    import agentgrad as ag
    from agentgrad.models.duopoly import Duopoly

    model = Duopoly(tendency=0.5)
    key = jax.random.key(1)
    use = checkpoint == "on"

    @eqx.filter_jit
    def grad(m):
        return eqx.filter_grad(
            lambda mm: jnp.mean(ag.simulate(mm, None, key, 100, checkpoint=use).final_state.total)
        )(m)

    jax.block_until_ready(grad(model))  # compile first: the peak is the run's own
    baseline = reset_peak()
    jax.block_until_ready(grad(model))
    return {"peak_mb": peak_since(baseline)}


def memory() -> None:
    print("\nPart 2: gradient of one 100-step duopoly run (8100 consumers) w.r.t. tendencies")
    print(f"{'checkpoint':<12} {'peak MB above baseline':>24}")
    for mode in ("off", "on"):
        result = run_worker(__file__, "memory", mode)
        print(f"{mode:<12} {result['peak_mb']:>24.0f}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", nargs="*")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(memory_worker(args.worker[1])))
    else:
        print("Part 1: training throughput (forward + backward + update)")
        throughput()
        memory()
