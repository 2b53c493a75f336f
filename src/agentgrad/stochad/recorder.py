"""Dynamic scope through which samplers report to the stochastic-derivative passes.

A model draws its randomness deep inside user code, so the samplers cannot return
their jump candidates to :func:`agentgrad.stochad.derivative_estimate` through the
call chain.  While an estimate is being *traced*, a :class:`Scope` is installed in a
``ContextVar``; every ``StochasticDerivative`` draw registers with the innermost
scope.  Scopes exist only during tracing (no state survives a call), and each
``simulate`` step opens its own scope so values never leak out of ``lax.scan``.

Modes:

* ``record`` — pass (i): each draw appends a *carrier*, an array whose primal value is
  zero and whose forward-mode tangent is the signed jump weight of every element
  (see :mod:`agentgrad.stochad.rules`).
* ``flip`` — pass (ii): the draw at the planned (group, step, site, index) takes its
  alternative value.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import equinox as eqx
import jax
from jax._src import core as jax_core

try:
    from jax.extend.core import get_opaque_trace_state
except ImportError:  # pragma: no cover - older JAX
    from jax._src.core import get_opaque_trace_state

_CURRENT: contextvars.ContextVar[Scope | None] = contextvars.ContextVar(
    "agentgrad_stochad_scope", default=None
)


class FlipPlan(eqx.Module):
    """Where pass (ii) flips a draw (traced int32 scalars, and the jump's sign)."""

    group: jax.Array  # top-level draw or simulate call, in trace order
    step: jax.Array  # simulate step (-1: the model's init; 0 for top-level draws)
    site: jax.Array  # draw within the step (0 for top-level draws)
    index: jax.Array  # flat element index of the candidate within the draw
    active: jax.Array  # 0 when no candidate exists (all weights zero)
    sign: jax.Array  # +1 / -1: direction of a binomial jump


@dataclass
class Scope:
    """One level of registration: the top level of ``fn`` or one ``simulate`` step."""

    mode: str  # "record" or "flip"
    plan: FlipPlan | None = None
    group: Any = None  # inside simulate: this call's group index (int)
    step: Any = None  # inside simulate: traced step index
    carriers: list[jax.Array] = field(default_factory=list)
    meta: list[tuple[str, int]] = field(default_factory=list)
    counter: int = 0  # draws (and, at top level, simulate calls) seen so far
    trace: Any = field(default_factory=lambda: _trace_state())

    def next_site(self) -> int:
        """Index of the next draw; raises if it runs under a JAX transformation that was
        opened inside this scope (its jump weights could not leave that trace)."""
        if _trace_state() != self.trace:
            raise _misuse_error()
        self.counter += 1
        return self.counter - 1

    def register(self, carrier: jax.Array, kind: str, site: int) -> None:
        """Record a carrier: ``kind`` is "draw" (jump weights) or "reservoir" (simulate)."""
        self.carriers.append(carrier)
        self.meta.append((kind, site))


def _trace_state() -> Any:
    return get_opaque_trace_state(convention="flax")


def _misuse_error() -> Exception:
    from agentgrad.stochad.estimators import StochasticDerivativeError

    kind = type(getattr(getattr(jax_core, "trace_ctx", None), "trace", None)).__name__
    where = (
        "jax.vmap"
        if "Batch" in kind
        else ("a lax.scan / fori_loop / while_loop / cond, jax.jit or jax.checkpoint")
    )
    return StochasticDerivativeError(
        f"a StochasticDerivative draw (or simulate call) ran inside {where} opened inside "
        "the estimated function; its jump would be silently lost.  Write the loop as a "
        "Model step and run it with agentgrad.simulate (which supports draws in every "
        "step), keep draws at the function's top level (Python loops are fine), or vmap "
        "derivative_estimate itself"
    )


def current() -> Scope | None:
    """The innermost active scope, or ``None`` outside an estimate."""
    return _CURRENT.get()


@contextmanager
def scope(new: Scope) -> Iterator[Scope]:
    """Install ``new`` as the innermost scope for the duration of the block."""
    token = _CURRENT.set(new)
    try:
        yield new
    finally:
        _CURRENT.reset(token)
