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
``lax.scan``.  Draws must happen at the top level of ``fn`` (Python loops are fine) or
inside :func:`agentgrad.simulate`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp

from agentgrad.errors import AgentgradError
from agentgrad.stochad import recorder

RES_SIZE = 6  # reservoir: [S, group, step, site, index, sign]


def empty_reservoir() -> jax.Array:
    return jnp.zeros((RES_SIZE,), jnp.float32)


def fold_weights(res, weights, group, step, site, u):
    """Fold one draw's signed weights (any shape) into the reservoir ``res``.

    ``u`` holds two uniforms: one picks the element within the draw, one decides whether
    it replaces the kept candidate.
    """
    a = jnp.abs(weights.reshape(-1)).astype(jnp.float32)
    total = jnp.sum(a)
    cdf = jnp.cumsum(a)
    j = jnp.minimum(jnp.sum(cdf <= u[0] * total), a.shape[0] - 1)
    sign = jnp.where(weights.reshape(-1)[j] < 0, -1.0, 1.0)
    new_total = res[0] + total
    replace = (total > 0) & (u[1] * new_total < total)
    cand = jnp.stack([new_total, group, step, site, j.astype(jnp.float32), sign]).astype(
        jnp.float32
    )
    kept = res.at[0].set(new_total)
    return jnp.where(replace, cand, kept)


def fold_reservoir(res, other, u):
    """Merge a reservoir summary ``other`` (e.g. from a ``simulate`` call) into ``res``."""
    new_total = res[0] + other[0]
    replace = (other[0] > 0) & (u * new_total < other[0])
    return jnp.where(replace, other.at[0].set(new_total), res.at[0].set(new_total))


@jax.custom_jvp
def reservoir_step(res, carriers, group, step, u):
    """Primal: ``res`` unchanged.  Tangent: the reservoir with ``carriers`` folded in."""
    return res


@reservoir_step.defjvp
def _reservoir_step_jvp(primals, tangents):
    res, carriers, group, step, u = primals
    r = tangents[0]
    for site, c in enumerate(tangents[1]):
        r = fold_weights(r, c, group, step, jnp.float32(site), u[site])
    return res, r


def fold_scope(res, carriers, group, step, key):
    """Fold a scope's carriers into the reservoir carried (in tangent space) by a scan."""
    if not carriers:
        return res
    u = jax.random.uniform(key, (len(carriers), 2))
    return reservoir_step(res, list(carriers), jnp.float32(group), jnp.float32(step), u)


def _plan(res: jax.Array) -> recorder.FlipPlan:
    i = jnp.round(res[1:5]).astype(jnp.int32)
    return recorder.FlipPlan(i[0], i[1], i[2], i[3], (res[0] > 0).astype(jnp.int32), res[5])


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
    k_select = jax.random.fold_in(key, 0x5AD)
    res = empty_reservoir()
    for n, ((kind, group), c) in enumerate(zip(meta, carriers_dot, strict=True)):
        u = jax.random.uniform(jax.random.fold_in(k_select, n), (2,))
        if kind == "draw":
            res = fold_weights(res, c, jnp.float32(group), 0.0, 0.0, u)
        else:
            res = fold_reservoir(res, c, u[0])
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

    Returns ``name -> array (n_samples, *output_shape)``: sample ``s`` uses key
    ``split(key, n_samples)[s]`` for every parameter direction (``vmap`` over both).
    """
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
        raise AgentgradError(f"n_samples must be a positive integer, got {n_samples!r}")
    if not isinstance(params, Mapping) or not params:
        raise AgentgradError("grad_estimate needs params as a non-empty dict of scalars")
    names = list(params)
    params = {n: jnp.asarray(params[n], jnp.float32) for n in names}
    basis = jnp.eye(len(names), dtype=jnp.float32)

    def one(k, e):
        return derivative_estimate(fn, params, k, dict(zip(names, e, strict=True)))

    keys = jax.random.split(key, n_samples)
    est = jax.jit(jax.vmap(jax.vmap(one, (None, 0)), (0, None)))(keys, basis)
    return {n: est[:, i] for i, n in enumerate(names)}
