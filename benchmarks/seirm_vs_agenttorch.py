"""Benchmark: agentgrad SEIRM against AgentTorch's covid SEIRM on the same population.

Both models run the same two substeps per day (per-edge transmission with an
infectiousness profile and age susceptibility, then SEIRM progression) on the same
synthetic population (``synthetic_population``: age pyramid + Erdős–Rényi, mean degree
10), 1% initially infectious, 21 days.  Forward: the simulation alone.  Backward: the
simulation plus a reverse-mode gradient of total new infections + deaths w.r.t. the
learnable parameters (agentgrad: all 5 SEIRM parameters; AgentTorch: R2 and M).
Best of ``--repeats`` after a warm-up (agentgrad: after compilation).

**Same work.**  The two models differ in rules (see ``docs/benchmarks.md``): AgentTorch
draws random isolation decisions that block about half the exposures, divides the force
of infection by a per-agent mean-interaction count, and weights exposed and infectious
infectors differently.  With our default ``transmission`` = 0.1 our epidemic infected
about 4x as many people in 21 days.  So, per size, the script first runs AgentTorch,
reads its total new infections, and sets our ``transmission`` by bisection so that our
mean total new infections over ``--match-runs`` keys equals AgentTorch's (to 2%); both
counts are printed beside the timings (``--no-match`` times the defaults).

AgentTorch is not a dependency.  ``--setup`` creates a separate virtual environment
(default ``~/.cache/agentgrad/agenttorch-venv``) with the CPU PyTorch wheel and
``agent-torch==0.6.0`` plus the pins its covid model needs to import (langchain < 0.3,
pandas < 3, scipy, epiweeks); ``benchmarks/agenttorch_seirm.py`` is then run inside it.

    python benchmarks/seirm_vs_agenttorch.py --setup          # once (~2 GB download)
    python benchmarks/seirm_vs_agenttorch.py --sizes 10000 100000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp
from _timing import best_time

import agentgrad as ag
from agentgrad.models import SEIRM
from agentgrad.models.population import synthetic_population

HERE = Path(__file__).resolve().parent
DEFAULT_VENV = Path.home() / ".cache" / "agentgrad" / "agenttorch-venv"
PINS = [
    "torch==2.13.0",
    "agent-torch==0.6.0",
    "langchain<0.3",
    "langchain-community<0.3",
    "langchain-openai<0.2",
    "pandas<3",
    "scipy",
    "epiweeks",
]


def setup(venv: Path) -> None:
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "torch==2.13.0"], check=True)
    subprocess.run([*pip, *PINS], check=True)


def total_infected(model, params, steps: int, runs: int) -> float:
    """Mean total new infections over ``runs`` keys."""
    obs = ag.ensemble(model, params, jax.random.key(1), steps, runs).observables
    return float(jnp.mean(jnp.sum(obs["new_infected"], axis=1)))


def match_transmission(model, steps: int, target: float, runs: int) -> float:
    """``transmission`` whose mean 21-day infections equal ``target`` (bisection; the
    count increases with transmission)."""
    low, high = 0.0, 1.0
    for _ in range(30):
        mid = 0.5 * (low + high)
        params = model.param_space.complete({"initial_infected": 0.01, "transmission": mid})
        value = total_infected(model, params, steps, runs)
        if abs(value - target) <= 0.02 * target:
            return mid
        low, high = (mid, high) if value < target else (low, mid)
    return 0.5 * (low + high)


def agentgrad_times(population, steps: int, repeats: int, transmission: float) -> dict:
    model = SEIRM(population)
    params = model.param_space.complete({"initial_infected": 0.01, "transmission": transmission})
    key = jax.random.key(0)

    def total(p):
        obs = ag.simulate(model, p, key, steps).observables
        return jnp.sum(obs["new_infected"]) + jnp.sum(obs["new_dead"])

    forward = jax.jit(total)
    backward = jax.jit(jax.value_and_grad(total))
    return {
        "forward": best_time(forward, params, repeats=repeats),
        "backward": best_time(backward, params, repeats=repeats),
        "infected": total_infected(model, params, steps, 8),
    }


def agenttorch_times(venv: Path, pop_dir: Path, steps: int, repeats: int, device: str):
    python = venv / "bin" / "python"
    if not python.exists():
        return None
    cmd = [str(python), str(HERE / "agenttorch_seirm.py"), str(pop_dir), "--steps", str(steps)]
    cmd += ["--repeats", str(repeats), "--device", device]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        print(f"AgentTorch run failed:\n{out.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--steps", type=int, default=21)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV)
    parser.add_argument("--device", default="cpu", help="AgentTorch device: cpu or cuda")
    parser.add_argument("--setup", action="store_true", help="create the AgentTorch venv")
    parser.add_argument("--no-match", action="store_true", help="keep our transmission 0.1")
    parser.add_argument("--match-runs", type=int, default=8)
    args = parser.parse_args()
    if args.setup:
        setup(args.venv)
        return
    print(
        "| agents | transmission | infected ours / AgentTorch | agentgrad fwd s "
        "| AgentTorch fwd s | speed-up | agentgrad fwd+bwd s | AgentTorch fwd+bwd s | speed-up |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in args.sizes:
        population = synthetic_population(n, key=0)
        with tempfile.TemporaryDirectory() as tmp:
            population.save(tmp)
            theirs = agenttorch_times(args.venv, Path(tmp), args.steps, args.repeats, args.device)
        transmission = 0.1
        if theirs is not None and not args.no_match:
            transmission = match_transmission(
                SEIRM(population), args.steps, theirs["total_new_infected"], args.match_runs
            )
        ours = agentgrad_times(population, args.steps, args.repeats, transmission)
        if theirs is None:
            at_f = at_b = sp_f = sp_b = at_i = "n/a (run --setup)"
        else:
            at_f, at_b = f"{theirs['forward']:.3f}", f"{theirs['backward']:.3f}"
            sp_f = f"{theirs['forward'] / ours['forward']:.1f}x"
            sp_b = f"{theirs['backward'] / ours['backward']:.1f}x"
            at_i = f"{theirs['total_new_infected']:,.0f}"
        print(
            f"| {n:,} | {transmission:.4f} | {ours['infected']:,.0f} / {at_i} "
            f"| {ours['forward']:.3f} | {at_f} | {sp_f} | {ours['backward']:.3f} "
            f"| {at_b} | {sp_b} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
