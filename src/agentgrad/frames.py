"""Pictures of a model's state: the images behind ``agentgrad run MODEL --animate``.

A spatial model implements ``Model.frame(state) -> (H, W, 3)`` RGB in ``[0, 1]``.  The
helpers here turn per-cell shares into colours:

    image[h, w] = (1 - sum_k s_k) * background + sum_k s_k * colour_k

where ``s_k[h, w]`` is the share of cell ``(h, w)`` painted with colour ``k`` (scaled
down where the shares sum to more than one).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

Colour = tuple[float, float, float]

# Colour-blind-safe defaults (Okabe-Ito).
BLUE: Colour = (0.0, 0.45, 0.70)
ORANGE: Colour = (0.90, 0.62, 0.0)
GREEN: Colour = (0.0, 0.62, 0.45)
RED: Colour = (0.84, 0.37, 0.0)
YELLOW: Colour = (0.94, 0.89, 0.26)
GREY: Colour = (0.35, 0.35, 0.35)
WHITE: Colour = (1.0, 1.0, 1.0)


def paint(layers: Sequence[tuple[jax.Array, Colour]], background: Colour = WHITE) -> jax.Array:
    """Blend per-cell shares ``(H, W)`` of each colour over ``background``; ``(H, W, 3)``."""
    shares = jnp.stack([jnp.clip(jnp.asarray(s, jnp.float32), 0.0, None) for s, _ in layers])
    total = shares.sum(0)
    shares = shares / jnp.maximum(total, 1.0)  # never more than the whole cell
    colours = jnp.asarray([c for _, c in layers], jnp.float32)  # (K, 3)
    image = jnp.einsum("khw,kc->hwc", shares, colours)
    rest = 1.0 - shares.sum(0)
    return image + rest[..., None] * jnp.asarray(background, jnp.float32)


def cell_counts(
    rows: jax.Array, cols: jax.Array, weights: jax.Array, height: int, width: int
) -> jax.Array:
    """Sum of ``weights`` of the agents at each cell ``(rows, cols)``; ``(height, width)``."""
    flat = jnp.asarray(rows, jnp.int32) * width + jnp.asarray(cols, jnp.int32)
    counts = jnp.zeros(height * width, jnp.float32).at[flat].add(jnp.asarray(weights, jnp.float32))
    return counts.reshape(height, width)


def run_frames(model: Any, params: Any, key: jax.Array, n_steps: int) -> np.ndarray:
    """Pictures ``(n_steps + 1, H, W, 3)`` of one run: the initial state and every step.

    The run is ``simulate(model, params, key, n_steps)``; its initial state is drawn with
    the engine's ``k_init = split(key)[0]``, so frame 0 is that run's start.
    """
    from agentgrad.engine import simulate

    params = model.param_space.complete(params)
    traj = simulate(model, params, key, n_steps, save_every=1)
    first = model.frame(model.init(params, jax.random.split(key)[0]))
    return np.concatenate([np.asarray(first)[None], np.asarray(jax.vmap(model.frame)(traj.states))])
