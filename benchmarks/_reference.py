"""Shared plumbing of the scripts that compare a model with a paper's reference code."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


def import_reference(root: Path, module: str, name: str) -> Any:
    """``name`` from ``module`` of a checkout of ``fracozzi/ABM-Graph-Diffusion-Network``,
    unmodified.  Importing it changes the working directory (restored here), and our
    ``benchmarks/models.py`` would shadow its ``models`` package (removed from the path)."""
    if not (root / Path(*module.split("."))).with_suffix(".py").is_file():
        sys.exit(f"error: {root} is not a checkout of fracozzi/ABM-Graph-Diffusion-Network")
    cwd, here = os.getcwd(), Path(__file__).resolve().parent
    sys.path = [str(root)] + [p for p in sys.path if Path(p or ".").resolve() != here]
    obj = getattr(importlib.import_module(module), name)
    os.chdir(cwd)
    return obj


def main(
    doc: str,
    run_reference: Callable[[Path, int, int, Path], None],
    compare: Callable[[Path, int, str | None], None],
    runs: int,
    steps: int,
    csv: str,
) -> None:
    """``--reference CHECKOUT`` reruns the reference into ``--csv``; then ours is compared
    with the CSV (sMAPE per setting; a figure with ``--figure``)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--reference", help="checkout of the reference repository (reruns it)")
    parser.add_argument("--runs", type=int, default=runs)
    parser.add_argument("--steps", type=int, default=steps)
    parser.add_argument("--csv", default=csv)
    parser.add_argument("--figure", help="PNG of both models' trajectories")
    args = parser.parse_args()
    if args.runs < 2 or args.steps < 1:
        sys.exit("error: --runs must be >= 2 and --steps >= 1")
    if args.reference:
        run_reference(Path(args.reference), args.runs, args.steps, Path(args.csv).resolve())
    compare(Path(args.csv), args.runs, args.figure)


def draw(ax: Any, runs: Any, reference: Any, colour: str, label: str) -> None:
    """Ours (mean ± sd over ``runs``, rows = runs) solid, the reference's mean dashed."""
    import numpy as np

    t = np.arange(len(reference))
    m, sd = runs.mean(0), runs.std(0, ddof=1)
    ax.plot(t, m, color=colour, label=f"{label}, agentgrad")
    ax.fill_between(t, m - sd, m + sd, color=colour, alpha=0.15)
    ax.plot(t, reference, "--", color=colour, label=f"{label}, reference code")


def save(fig: Any, figure: str) -> None:
    fig.tight_layout()
    Path(figure).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(figure, dpi=120)
    print(f"wrote {figure}")
