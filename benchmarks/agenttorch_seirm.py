"""Time AgentTorch's covid SEIRM model on an agentgrad population directory.

Runs *inside the AgentTorch virtual environment* (see ``seirm_vs_agenttorch.py``, which
creates it and calls this script); it does not import agentgrad.  Converts
``POP/ages.csv`` and ``POP/contacts.csv`` to AgentTorch's population files (age-group
pickle, disease-stage CSV, mobility-network edge list), configures the packaged
``models/covid/yamls/config.yaml`` for the heuristic (no-LLM) mode, and prints one JSON
line with the best-of-``repeats`` wall time of ``runner.step(steps)`` (forward) and of a
forward pass plus ``loss.backward()`` w.r.t. the learnable R2 and M (backward).

AgentTorch's ``network_from_file`` also builds an unused dense N x N adjacency matrix
through networkx (80 GB at 10^5 agents); we replace it by the same edge tensors without
that matrix.  Network construction is not timed either way.

    python agenttorch_seirm.py POP --steps 21 --repeats 3 [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch


def edge_tensors(params):
    """``network_from_file`` without networkx / the dense adjacency matrix."""
    edges = torch.tensor(pd.read_csv(params["file_path"], header=None).to_numpy()).t().long()
    both = torch.hstack((edges, torch.vstack((edges[1], edges[0]))))
    attr = torch.vstack((torch.ones(both.shape[1]).long(), torch.ones(both.shape[1]).float()))
    return None, (both, attr)


def write_population(src: Path, dst: Path, infected: float, seed: int) -> int:
    ages = pd.read_csv(src / "ages.csv", comment=None)["age"].to_numpy()
    n = ages.size
    (dst / "mobility_networks").mkdir(parents=True)
    pd.Series(np.minimum(ages // 10, 8)).to_pickle(dst / "age.pickle")
    rng = np.random.default_rng(seed)
    stage = np.where(rng.random(n) < infected, 2, 0)
    pd.DataFrame({"stage": stage}).to_csv(dst / "disease_stages.csv", index=False)
    contacts = pd.read_csv(src / "contacts.csv", comment="#", header=None)
    contacts.to_csv(dst / "mobility_networks" / "0.csv", header=False, index=False)
    (dst / "population_mapping.json").write_text("{}")
    return n


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("population", type=Path)
    parser.add_argument("--steps", type=int, default=21)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--infected", type=float, default=0.01)
    args = parser.parse_args()

    import agent_torch
    from agent_torch.core.helpers import read_config
    from agent_torch.models.covid.substeps import utils
    from omegaconf import OmegaConf

    utils.network_from_file = edge_tensors
    from agent_torch.models.covid.simulator import get_registry, get_runner

    with tempfile.TemporaryDirectory() as tmp:
        pop = Path(tmp) / "pop"
        n = write_population(args.population, pop, args.infected, 0)
        cfg_path = Path(agent_torch.__file__).parent / "models/covid/yamls/config.yaml"
        cfg = OmegaConf.load(cfg_path)
        meta = cfg.simulation_metadata
        meta.population_dir = str(pop)
        meta.num_agents = n
        meta.num_steps_per_episode = args.steps
        meta.NUM_WEEKS = math.ceil(args.steps / 7) + 1
        meta.EXECUTION_MODE = "heuristic"
        meta.ALIGN_LLM = False
        meta.calibration = False
        meta.device = args.device
        config_file = Path(tmp) / "config.yaml"
        OmegaConf.save(cfg, config_file)
        runner = get_runner(read_config(str(config_file)), get_registry())
        runner.init()

        def sync():
            if args.device == "cuda":
                torch.cuda.synchronize()

        def forward():
            runner.reset()
            with torch.no_grad():
                runner.step(args.steps)
            sync()

        def backward():
            runner.reset()
            runner.step(args.steps)
            env = runner.state["environment"]
            loss = env["daily_infected"].sum() + env["daily_deaths"].sum()
            loss.backward()
            sync()

        result = {"agents": n, "steps": args.steps, "device": args.device}
        for name, fn in (("forward", forward), ("backward", backward)):
            fn()  # warm-up
            times = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t0)
            result[name] = min(times)
        stages = runner.state["agents"]["citizens"]["disease_stage"].detach().long().view(-1)
        result["final_stage_counts"] = torch.bincount(stages, minlength=5).tolist()
        result["total_new_infected"] = float(runner.state["environment"]["daily_infected"].sum())
        print(json.dumps(result))


if __name__ == "__main__":
    main()
