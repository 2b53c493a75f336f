"""Graphs: generators, aggregation against dense references, import and errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from agentgrad import GraphError, graphs


def dense_adjacency(g):
    a = np.zeros((g.n_nodes, g.n_nodes))
    a[np.asarray(g.receivers), np.asarray(g.senders)] = 1.0
    return a


def check_simple_undirected(g):
    a = dense_adjacency(g)
    assert np.array_equal(a, a.T), "not symmetric"
    assert np.all(np.diag(a) == 0), "self-loop"
    assert len(g.senders) == 2 * g.n_edges == a.sum(), "duplicate edges"
    np.testing.assert_array_equal(g.degree, a.sum(1))
    assert np.all(np.diff(np.asarray(g.receivers)) >= 0), "not sorted by receiver"


@pytest.mark.parametrize(
    "make",
    [
        lambda: graphs.erdos_renyi(300, 6, key=jax.random.key(1)),
        lambda: graphs.watts_strogatz(300, 6, 0.2, key=2),
        lambda: graphs.barabasi_albert(300, 3, key=3),
        lambda: graphs.from_edges([0, 1, 1, 2, 3], [1, 0, 2, 2, 0], 5),
    ],
)
def test_generators_make_simple_graphs_and_aggregate(make):
    g = make()
    check_simple_undirected(g)
    x = jax.random.normal(jax.random.key(0), (g.n_nodes, 2))
    a = dense_adjacency(g)
    np.testing.assert_allclose(g.neighbour_sum(x), a @ np.asarray(x), rtol=1e-5, atol=1e-5)
    mean = a @ np.asarray(x) / np.maximum(a.sum(1), 1)[:, None]
    np.testing.assert_allclose(g.neighbour_mean(x), mean, rtol=1e-5, atol=1e-5)


def test_complete_graph_is_mean_field_without_edges():
    g = graphs.complete(50)
    assert g.senders.size == 0 and g.n_edges == 50 * 49 // 2
    x = jnp.arange(50.0)
    a = np.ones((50, 50)) - np.eye(50)
    np.testing.assert_allclose(g.neighbour_sum(x), a @ np.arange(50.0))
    np.testing.assert_allclose(g.neighbour_mean(x), a @ np.arange(50.0) / 49)


def test_erdos_renyi_statistics_and_determinism():
    n, k = 20_000, 10.0
    g = graphs.erdos_renyi(n, k, key=jax.random.key(5))
    # E = Binomial(n(n-1)/2, p): mean n k / 2 = 1e5, sd ~ 316; allow 5 sd
    assert abs(g.n_edges - n * k / 2) < 5 * 316
    deg = np.asarray(g.degree)
    assert deg.var() == pytest.approx(k, rel=0.05)  # Poisson-like degrees
    g2 = graphs.erdos_renyi(n, k, key=jax.random.key(5))
    np.testing.assert_array_equal(g.senders, g2.senders)
    check_simple_undirected(graphs.erdos_renyi(200, p=0.6, key=0))  # dense branch


def test_watts_strogatz_keeps_edge_count_and_lattice_at_p0():
    g = graphs.watts_strogatz(100, 4, 0.0, key=0)
    assert g.n_edges == 200
    np.testing.assert_array_equal(g.degree, 4.0)
    g = graphs.watts_strogatz(1000, 10, 0.3, key=0)
    assert g.n_edges > 4950


def test_barabasi_albert_edge_count_and_hubs():
    g = graphs.barabasi_albert(2000, 2, key=0)
    assert g.n_edges == 2 * (2000 - 2)
    assert float(g.degree.max()) > 10 * float(g.degree.mean())
    check_simple_undirected(graphs.barabasi_albert(30, 4, key=1))  # sequential part only


def test_barabasi_albert_degrees_follow_the_power_law():
    """P(K >= k) = m (m + 1) / (k (k + 1)) for k >= m (Bollobás et al. 2001); the tail
    fraction at n = 10^5 is within 4 binomial standard errors (plus 2% finite-size)."""
    n, m = 100_000, 3
    g = graphs.barabasi_albert(n, m, key=7)
    assert g.n_edges == m * (n - m)  # every new node has m distinct targets
    degree = np.asarray(g.degree)
    assert degree[m:].min() >= m
    for k in (5, 10, 20, 40):
        exact = m * (m + 1) / (k * (k + 1))
        se = np.sqrt(exact * (1 - exact) / n)
        assert abs((degree >= k).mean() - exact) < 4 * se + 0.02 * exact, k


def test_watts_strogatz_rewires_the_stated_fraction():
    """Each of the n k / 2 lattice edges is rewired with probability p (a rewiring onto
    an existing edge or a self-loop is rejected, probability ~ (k + 1) / n here)."""
    n, k, p = 20_000, 6, 0.3
    g = graphs.watts_strogatz(n, k, p, key=3)
    senders, receivers = np.asarray(g.senders), np.asarray(g.receivers)
    ring = np.abs(senders - receivers)
    ring = np.minimum(ring, n - ring)
    long_range = (ring > k // 2).sum() / 2 / (n * k / 2)
    expected = p * (1 - (k + 1) / n)  # a new end within ring distance k/2 stays short
    se = np.sqrt(p * (1 - p) / (n * k / 2))
    assert abs(long_range - expected) < 4 * se + 0.005
    assert g.n_edges <= n * k // 2 and float(g.degree.mean()) == pytest.approx(k, rel=0.01)


def test_edge_list_file(tmp_path):
    f = tmp_path / "edges.txt"
    f.write_text("# contacts\n0 1\n1,2\n\n2 3 0.5\n3 3\n1 0\n")
    g = graphs.from_edge_list(f)
    assert g.n_nodes == 4 and g.n_edges == 3
    assert graphs.from_edge_list(f, n_nodes=10).n_nodes == 10


@pytest.mark.parametrize(
    "content, message",
    [
        ("0 1\n1 x\n", r"edges.txt:2: expected two integer node ids"),
        ("0 1\n5\n", r"edges.txt:2: expected two integer"),
        ("0 -1\n", "non-negative"),
        ("# nothing\n", "contains no edges"),
    ],
)
def test_edge_list_errors(tmp_path, content, message):
    f = tmp_path / "edges.txt"
    f.write_text(content)
    with pytest.raises(GraphError, match=message):
        graphs.from_edge_list(f)


def test_edge_list_unreadable(tmp_path):
    with pytest.raises(GraphError, match="cannot read graph file"):
        graphs.from_edge_list(tmp_path / "missing.txt")
    f = tmp_path / "bin.txt"
    f.write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(GraphError, match="not a text edge list"):
        graphs.from_edge_list(f)
    with pytest.raises(GraphError, match="has 2 nodes"):
        graphs.from_edges([0, 5], [1, 1], 2)


def test_from_networkx():
    nx = pytest.importorskip("networkx")
    h = nx.karate_club_graph()
    g = graphs.from_networkx(h)
    assert g.n_nodes == 34 and g.n_edges == h.number_of_edges()
    np.testing.assert_array_equal(g.degree, [d for _, d in h.degree()])


def test_generator_argument_errors():
    with pytest.raises(GraphError, match="mean_degree"):
        graphs.erdos_renyi(10, 20, key=0)
    with pytest.raises(GraphError, match="need key"):
        graphs.erdos_renyi(10, 2)
    with pytest.raises(GraphError, match="even integer"):
        graphs.watts_strogatz(10, 3, 0.1, key=0)
    with pytest.raises(GraphError, match="m must be"):
        graphs.barabasi_albert(10, 10, key=0)
    with pytest.raises(GraphError, match="number of nodes"):
        graphs.complete(0)
    for spec in ("ring", "erdos-renyi", "erdos-renyi:x", "watts-strogatz:4"):
        with pytest.raises(GraphError):
            graphs.parse_graph(spec, 10, 0)


def test_cache_blocked_edges_give_bitwise_the_csr_sums():
    """Graphs above BLOCK_NODES store edges grouped by sender blocks; neighbour sums,
    their gradients and the CSR view are unchanged (here forced on a small graph)."""
    g = graphs.erdos_renyi(3000, 8.0, key=4)
    blocked = g.with_sender_blocks(5)
    assert blocked.sender_blocks == 5 and g.sender_blocks == 1
    assert not np.array_equal(np.asarray(blocked.senders), np.asarray(g.senders))
    for a, b in zip(blocked.csr(), g.csr(), strict=True):
        np.testing.assert_array_equal(a, b)
    x = jax.random.normal(jax.random.key(0), (3000, 2))
    np.testing.assert_array_equal(blocked.neighbour_sum(x), g.neighbour_sum(x))

    def loss(graph, x):
        return jnp.sum(jnp.sin(graph.neighbour_mean(x)))

    np.testing.assert_array_equal(jax.grad(loss, 1)(blocked, x), jax.grad(loss, 1)(g, x))
    assert blocked.n_edges == g.n_edges
    assert graphs.from_csr(*g.csr(), np.asarray(g.degree), 3000).sender_blocks == 1


def test_erdos_renyi_skip_samples_the_exact_gnp_law():
    """Every pair is an edge with probability p, independently: over 4000 graphs on 6
    nodes (15 pairs, p = 0.3) each pair's frequency is within 5 sd (0.036) of p, and the
    edge count has the Binomial(15, 0.3) mean 4.5 and variance 3.15 (within 10%)."""
    n, p, reps = 6, 0.3, 4000
    adjacency = np.zeros((reps, n, n))
    for seed in range(reps):
        s, r = graphs.erdos_renyi(n, p=p, key=seed).csr()
        adjacency[seed, r, s] = 1.0
    pairs = adjacency[:, *np.triu_indices(n, 1)]
    assert np.abs(pairs.mean(0) - p).max() < 5 * np.sqrt(p * (1 - p) / reps)
    counts = pairs.sum(1)
    assert counts.mean() == pytest.approx(15 * p, abs=5 * np.sqrt(15 * p * (1 - p) / reps))
    assert counts.var() == pytest.approx(15 * p * (1 - p), rel=0.1)


def test_erdos_renyi_methods_edge_cases_and_pair_decoding():
    assert graphs.erdos_renyi(40, p=1.0, key=0).n_edges == 40 * 39 // 2
    assert graphs.erdos_renyi(40, p=0.0, key=0).n_edges == 0
    for method in ("skip", "pairs"):
        check_simple_undirected(graphs.erdos_renyi(500, 7, key=2, method=method))
    with pytest.raises(GraphError, match="method must be"):
        graphs.erdos_renyi(40, 3, key=0, method="fast")
    # pair numbers at and around every row start decode exactly, up to v = 2^31
    v = np.array([1, 2, 3, 1000, 10**7, 2**31 - 1, 2**31], np.int64)
    start = v * (v - 1) // 2
    code = np.concatenate([start, start + v - 1])
    got_v, got_w = graphs._pair_of_code(code)
    np.testing.assert_array_equal(got_v, np.concatenate([v, v]))
    np.testing.assert_array_equal(got_w, np.concatenate([0 * v, v - 1]))


def test_random_draws_are_not_recomputed_per_edge():
    """neighbour_sum's input is computed once per node: XLA must not fuse a random
    draw (Threefry's xor rounds) into the per-edge gather, under jit, vmap and grad."""
    import re

    import equinox as eqx

    from agentgrad import rng

    g = graphs.erdos_renyi(2000, 10.0, key=1)
    dynamic, static = eqx.partition(g, eqx.is_array)

    def step(arrays, key, p):
        graph = eqx.combine(arrays, static)
        x = (rng.uniform(key, (graph.n_nodes,)) < p).astype(jnp.float32) * p
        return jnp.sum(graph.neighbour_mean(x))

    keys = jax.random.split(jax.random.key(0), 3)
    programs = {
        "jit": jax.jit(step).lower(dynamic, keys[0], 0.3),
        "vmap": jax.jit(jax.vmap(step, (None, 0, None))).lower(dynamic, keys, 0.3),
        "grad": jax.jit(jax.grad(step, 2)).lower(dynamic, keys[0], 0.3),
    }
    for name, lowered in programs.items():
        hlo = lowered.compile().as_text()
        for fused in re.findall(r"calls=%([\w.\-]+)", hlo):
            body = re.search(r"\n%" + re.escape(fused) + r" [^\n]*\{\n(.*?)\n\}", hlo, re.S)
            if body and " gather(" in body.group(1):
                assert body.group(1).count(" xor(") < 5, f"{name}: draw fused into gather"
