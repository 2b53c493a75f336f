"""Unbiased directional-derivative estimates by two coupled passes.

For ``F(θ) = E[f(θ, ω)]`` and a direction ``v`` (`automatic-differentiation-of-abms`
§3.4.3 eqs. 30-34, with pruning):

**Pass (i), forward mode.**  ``jax.jvp`` of ``f`` along ``v``.  Every
``StochasticDerivative`` draw ``j`` returns its exact value with tangent 0 and registers
a carrier whose tangent is its jump weight ``w_j`` (:mod:`~agentgrad.stochad.rules`).
Inside ``simulate`` each step is a scope of its own and the candidates are folded into a
*reservoir* carried by the scan: one candidate is kept, chosen with probability
``|w_j| / S`` where ``S = sum |w_j|`` over the whole run (weighted reservoir sampling:
when a batch with total ``S_b`` arrives, it replaces the kept candidate with probability
``S_b / (S + S_b)``, and within the batch the element is drawn proportionally to
``|w|``).  The tangent of the output, ``delta_out``, is the almost-sure part.

**Pass (ii), the alternative world.**  ``f`` is evaluated again, primal only, with the
same key; the selected draw takes its alternative value (``1 - X``, ``X ± 1`` or the
neighbouring category), everything downstream is recomputed with the same random
numbers.

The estimate ``delta_out + S (f_alt - f)`` is unbiased:
``E[S (f_alt - f)] = sum_j |w_j| (f_alt_j - f)`` — the first-order SPA derivative with
one alternative path instead of one per draw.  Cost: one ``jvp`` pass plus one primal
pass (a small constant times a forward simulation).

The reservoir lives in the *tangent* of a carry whose primal is zero (updated by a
``custom_jvp`` rule), because only there are the weights available as values inside
``lax.scan``.  Draws must happen at the top level of ``fn`` or inside
:func:`agentgrad.simulate`; a draw inside a ``lax.scan``, ``vmap``, ``cond``, ``jit`` or
``checkpoint`` opened inside ``fn`` raises :class:`StochasticDerivativeError`.  Python
loops of draws work, but each draw adds to the compiled program (compile time linear in
the number of draws, about 0.1-0.2 s each on a CPU; a warning above
``MANY_TOP_LEVEL_DRAWS``); long loops belong in a model run by ``simulate``.

Top-level sites are summarised independently (each draw picks its own candidate with
probability ``|w_j| / S_draw``) and one summary is then kept with probability
``S_draw / S`` — the same law as sequential reservoir folding, without a sequential
chain (which made XLA compile time quadratic in the number of draws).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp

from agentgrad.errors import AgentgradError
from agentgrad.stochad import recorder

MANY_TOP_LEVEL_DRAWS = 64  # warn above this many top-level sites (compile time)
RES_SIZE = 7  # reservoir: [S, group, step, site, index_hi, index_lo, sign]
_LO = 2**16  # element index = index_hi * 2**16 + index_lo (each part exact in float32)
_BLOCK = 4096  # two-level selection: blocks of this many elements, then within a block


def empty_reservoir() -> jax.Array:
    return jnp.zeros((RES_SIZE,), jnp.float32)


def _last_positive(a: jax.Array) -> jax.Array:
    return jnp.max(jnp.where(a > 0, jnp.arange(a.shape[0]), 0))


def _select(a: jax.Array, u: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Index ``j`` drawn with probability ``a_j / sum(a)`` (``a >= 0``, flat), and the sum.

    Two levels (block sums, then one block) keep float32 cumulative sums short, so the
    selection is accurate for draws of any size; the index is int32 (exact to 2^31).
    """
    n = a.shape[0]
    if n <= _BLOCK:
        cdf = jnp.cumsum(a)
        total = cdf[-1]
        j = jnp.minimum(jnp.sum(cdf <= u * total), _last_positive(a))
        return j.astype(jnp.int32), total
    n_blocks = -(-n // _BLOCK)
    blocks = jnp.pad(a, (0, n_blocks * _BLOCK - n)).reshape(n_blocks, _BLOCK)
    sums = jnp.sum(blocks, axis=1)
    cum = jnp.cumsum(sums)
    total = cum[-1]
    target = u * total
    b = jnp.minimum(jnp.sum(cum <= target), _last_positive(sums))
    row = blocks[b]
    within = jnp.clip(target - (cum[b] - sums[b]), 0.0, sums[b])
    k = jnp.minimum(jnp.sum(jnp.cumsum(row) <= within), _last_positive(row))
    return (b * _BLOCK + k).astype(jnp.int32), total


def draw_summary(weights, group, step, site, u):
    """One draw's candidate: element chosen with probability ``|w_j| / S_draw`` (``u``),
    as a reservoir vector whose first entry is ``S_draw``."""
    flat = weights.reshape(-1)
    j, total = _select(jnp.abs(flat).astype(jnp.float32), u)
    sign = jnp.where(flat[j] < 0, -1.0, 1.0)
    hi, lo = j // _LO, j % _LO
    return jnp.stack(
        [total, group, step, site, hi.astype(jnp.float32), lo.astype(jnp.float32), sign]
    ).astype(jnp.float32)


def merge_summaries(summaries: jax.Array, u: jax.Array) -> jax.Array:
    """Keep one of ``summaries`` (shape ``(G, RES_SIZE)``) with probability proportional
    to its total; the result's total is the sum (weighted reservoir sampling, one shot)."""
    totals = summaries[:, 0]
    g, total = _select(totals, u)
    kept = summaries[g].at[0].set(total)
    return jnp.where(total > 0, kept, empty_reservoir())


@jax.custom_jvp
def reservoir_step(res, carriers, group, step, u):
    """Primal: ``res`` unchanged.  Tangent: the reservoir with ``carriers`` folded in."""
    return res


@reservoir_step.defjvp
def _reservoir_step_jvp(primals, tangents):
    res, carriers, group, step, u = primals
    summaries = [
        draw_summary(c, group, step, jnp.float32(site), u[site, 0])
        for site, c in enumerate(tangents[1])
    ]
    return res, merge_summaries(jnp.stack([tangents[0], *summaries]), u[0, 1])


def fold_scope(res, carriers, group, step, key):
    """Fold a scope's carriers into the reservoir carried (in tangent space) by a scan."""
    if not carriers:
        return res
    u = jax.random.uniform(key, (len(carriers), 2))
    return reservoir_step(res, list(carriers), jnp.float32(group), jnp.float32(step), u)


def _plan(res: jax.Array) -> recorder.FlipPlan:
    i = jnp.round(res[1:6]).astype(jnp.int32)
    index = i[3] * _LO + i[4]
    return recorder.FlipPlan(i[0], i[1], i[2], index, (res[0] > 0).astype(jnp.int32), res[6])


def derivative_estimate(
    fn: Callable[[Any, jax.Array], jax.Array],
    params: Any,
    key: jax.Array,
    direction: Any,
) -> jax.Array:
    """One unbiased estimate of the directional derivative ``d/de E[fn(params + e v, key)]``.

    ``fn(params, key)`` is built from agentgrad samplers with
    ``estimator=StochasticDerivative()`` (at its top level, in Python loops or not) and/or
    :func:`agentgrad.simulate` of models using that estimator.  ``direction`` has the
    structure of ``params``.  Pure in ``(params, key, direction)``: ``jit`` and ``vmap``
    over keys or directions work.  Average many keys for the expectation.
    """
    meta: list[tuple[str, int]] = []

    def recorded(p):
        with recorder.scope(recorder.Scope("record")) as sc:
            out = fn(p, key)
        meta.extend(sc.meta)
        return out, list(sc.carriers)

    direction = jax.tree.map(lambda d, p: jnp.asarray(d, jnp.result_type(p)), direction, params)
    (out, _), (out_dot, carriers_dot) = jax.jvp(recorded, (params,), (direction,))
    if len(meta) > MANY_TOP_LEVEL_DRAWS:
        warnings.warn(
            f"{len(meta)} StochasticDerivative draws/simulate calls at the top level of fn: "
            "compile time grows with each (about 0.2 s per draw); write the loop as a Model "
            "step and run it with agentgrad.simulate, which compiles once",
            stacklevel=2,
        )
    k_select = jax.random.fold_in(key, 0x5AD)
    res = empty_reservoir()
    if meta:  # one independent summary per site, then one selection among them
        u = jax.random.uniform(k_select, (len(meta) + 1,))
        summaries = jnp.stack(
            [
                draw_summary(c, jnp.float32(group), 0.0, 0.0, u[n]) if kind == "draw" else c
                for n, ((kind, group), c) in enumerate(zip(meta, carriers_dot, strict=True))
            ]
        )
        res = merge_summaries(summaries, u[-1])
    with recorder.scope(recorder.Scope("flip", plan=_plan(res))):
        out_alt = fn(params, key)
    return out_dot + res[0] * (out_alt - out)


def grad_estimate(
    fn: Callable[[Any, jax.Array], jax.Array],
    params: Mapping[str, Any],
    key: jax.Array,
    n_samples: int,
) -> dict[str, jax.Array]:
    """Independent per-sample gradient estimates of ``E[fn(params, key)]``.

    ``params`` maps names to scalars or arrays.  Returns ``name -> array`` of shape
    ``(n_samples, *output_shape, *param_shape)`` (the ``jax.jacobian`` layout; for a
    scalar parameter ``(n_samples, *output_shape)``).  Sample ``s`` uses key
    ``split(key, n_samples)[s]`` for every direction (one basis direction per parameter
    element; ``vmap`` over keys and directions).
    """
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
        raise AgentgradError(f"n_samples must be a positive integer, got {n_samples!r}")
    if not isinstance(params, Mapping) or not params:
        raise AgentgradError("grad_estimate needs params as a non-empty dict of arrays")
    names = list(params)
    params = {n: jnp.asarray(params[n], jnp.float32) for n in names}
    sizes = [int(params[n].size) for n in names]
    offsets = [sum(sizes[:i]) for i in range(len(names) + 1)]
    basis = jnp.eye(offsets[-1], dtype=jnp.float32)

    def one(k, e):
        direction = {
            n: e[offsets[i] : offsets[i + 1]].reshape(params[n].shape) for i, n in enumerate(names)
        }
        return derivative_estimate(fn, params, k, direction)

    keys = jax.random.split(key, n_samples)
    est = jax.jit(jax.vmap(jax.vmap(one, (None, 0)), (0, None)))(keys, basis)
    out = {}
    for i, n in enumerate(names):
        block = jnp.moveaxis(est[:, offsets[i] : offsets[i + 1]], 1, -1)
        out[n] = block.reshape(block.shape[:-1] + params[n].shape)
    return out
