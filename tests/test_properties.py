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


# ----------------------------------------------------------------------- file readers
# Any bytes: a reader returns a valid result or raises AgentgradError (one line) — never
# another exception, never a silently wrong size.

_text = st.one_of(
    st.binary(max_size=300),
    st.text(alphabet="0123456789 ,#\n\t-.eEnaif\ufeff\x00", max_size=200).map(str.encode),
)


def _write(tmp_path_factory, name, data: bytes):
    path = tmp_path_factory.mktemp("r") / name
    path.write_bytes(data)
    return path


@settings(max_examples=80, deadline=None, derandomize=True)
@given(data=_text)
def test_edge_list_reader_on_arbitrary_bytes(tmp_path_factory, data):
    from agentgrad.errors import AgentgradError
    from agentgrad.spaces.graphs import from_edge_list

    path = _write(tmp_path_factory, "edges.txt", data)
    try:
        g = from_edge_list(path)
    except AgentgradError as err:
        assert "\n" not in str(err)
        return
    senders = np.asarray(g.senders)
    assert senders.size % 2 == 0 and (senders.size == 0 or senders.max() < g.n_nodes)


@settings(max_examples=80, deadline=None, derandomize=True)
@given(data=_text)
def test_observed_csv_reader_on_arbitrary_bytes(tmp_path_factory, data):
    from agentgrad.errors import AgentgradError
    from agentgrad.io import read_observed_csv

    path = _write(tmp_path_factory, "obs.csv", b"infected,recovered\n" + data)
    try:
        out = read_observed_csv(path, ["infected", "recovered"])
    except AgentgradError as err:
        assert "\n" not in str(err)
        return
    lengths = {len(v) for v in out.values()}
    assert len(lengths) == 1 and all(np.isfinite(v).all() for v in out.values())


@settings(max_examples=60, deadline=None, derandomize=True)
@given(ages=_text, contacts=_text)
def test_population_reader_on_arbitrary_bytes(tmp_path_factory, ages, contacts):
    from agentgrad.errors import AgentgradError
    from agentgrad.models.population import load_population

    d = tmp_path_factory.mktemp("pop")
    (d / "ages.csv").write_bytes(ages)
    (d / "contacts.csv").write_bytes(contacts)
    try:
        pop = load_population(d)
    except AgentgradError as err:
        assert "\n" not in str(err)
        return
    assert pop.ages.size == pop.graph.n_nodes


@settings(max_examples=40, deadline=None, derandomize=True)
@given(
    st.lists(st.tuples(st.integers(0, 40), st.integers(0, 40)), min_size=1, max_size=60),
    st.sampled_from([" ", ",", "\t"]),
    st.booleans(),
)
def test_edge_list_round_trip_with_corruption(tmp_path_factory, edges, sep, bom):
    """Valid files read back exactly; one corrupted line is reported with its number."""
    from agentgrad.errors import GraphError
    from agentgrad.spaces.graphs import from_edge_list

    lines = [f"{u}{sep}{v}" for u, v in edges]
    path = _write(
        tmp_path_factory, "e.txt", (("\ufeff" if bom else "") + "\n".join(lines)).encode()
    )
    kept = [(u, v) for u, v in edges if u != v]
    if kept:
        g = from_edge_list(path)
        assert g.n_edges == len({(min(e), max(e)) for e in kept})
    bad = len(lines) // 2
    lines[bad] = lines[bad] + "x"
    path.write_text("\n".join(lines), encoding="utf-8")
    try:
        from_edge_list(path)
    except GraphError as err:
        assert f":{bad + 1}:" in str(err)
    else:  # 'x' glued to the second id is always malformed
        raise AssertionError("corrupted line accepted")
