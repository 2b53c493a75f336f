"""Property-based checks (hypothesis) of invariants that must hold for any input."""

import math

import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from agentgrad import Param, graphs, soft

# XLA flushes subnormal floats to zero in arithmetic, so exactness is for normal floats
finite = st.floats(-1e3, 1e3, allow_nan=False, allow_subnormal=False, width=32)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    lower=st.one_of(st.just(-math.inf), st.floats(-50, 0)),
    width=st.one_of(st.just(math.inf), st.floats(0.5, 50)),
    frac=st.floats(0.05, 0.95),
)
def test_bijection_round_trip(lower, width, frac):
    if math.isinf(width):
        upper = math.inf
    else:
        upper = width if math.isinf(lower) else lower + width
    if math.isinf(lower) and math.isinf(upper):
        x = 3.0 * frac
    elif math.isinf(upper):
        x = lower + 10 * frac
    elif math.isinf(lower):
        x = upper - 10 * frac
    else:
        x = lower + frac * width
    p = Param(x, lower, upper, prior=None)
    back = float(p.to_constrained(p.to_unconstrained(jnp.float32(x))))
    assert back == np.float32(x) or abs(back - x) <= 1e-4 * max(1.0, abs(x), width)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(st.lists(st.tuples(st.integers(0, 30), st.integers(0, 30)), min_size=1, max_size=80))
def test_from_edges_is_simple_symmetric(edges):
    src, dst = np.array(edges).T
    g = graphs.from_edges(src, dst, 31)
    pairs = set(zip(np.asarray(g.senders).tolist(), np.asarray(g.receivers).tolist(), strict=True))
    expected = {(u, v) for u, v in edges if u != v} | {(v, u) for u, v in edges if u != v}
    assert pairs == expected and len(pairs) == len(g.senders)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.lists(finite, min_size=1, max_size=12), st.floats(0.05, 5.0))
def test_soft_operators_exact_forward(values, temperature):
    x = jnp.asarray(values, jnp.float32)
    assert float(soft.max(x, temperature=temperature)) == float(x.max())
    assert float(soft.min(x, temperature=temperature)) == float(x.min())
    one_hot = np.asarray(soft.argmax(x, temperature=temperature))
    assert one_hot.sum() == 1.0 and one_hot[int(jnp.argmax(x))] == 1.0
    np.testing.assert_array_equal(soft.step(x), (x >= 0).astype(jnp.float32))
