"""Contact networks as sorted edge arrays, with neighbour aggregation by segment sums.

A :class:`Graph` stores every undirected edge as two directed edges
``senders[e] -> receivers[e]``, sorted by receiver (the column structure of a CSR
matrix).  ``neighbour_sum(x)_i = sum_{j in N(i)} x_j`` is one gather and one
sorted ``segment_sum``: O(E) time and memory.

Large graphs (more than :data:`BLOCK_NODES` nodes) are stored cache-blocked: the edges
are grouped by blocks of :data:`BLOCK_NODES` senders, and sorted by receiver (then
sender) within each block.  The gather ``x[senders]`` then reads one block of ``x`` at a
time from cache instead of all of ``x`` from main memory (at 10^7 nodes the step is
about 2x faster, forward and reverse), and the ``segment_sum`` scatters into receivers
without assuming sorted indices.  Each receiver still sums its senders in ascending
order, so the result is bitwise that of the CSR order.  The complete graph stores no edges:
``neighbour_sum(x)_i = sum_j x_j - x_i`` is O(N) (the mean-field path; an N x N
matrix is never formed).

Generators run once on the host with NumPy (seeded from a JAX key or an int):
Erdős–Rényi ``G(n, p)`` by geometric skips over the numbered node pairs (O(n + E), no
comparison sort), Watts–Strogatz, Barabási–Albert (vectorised), and import from an
edge-list file or a networkx graph; all usable at 10^7 nodes.  Self-loops are dropped
and duplicate edges merged; the CSR layout comes from SciPy's counting sorts.
"""

from __future__ import annotations

import os
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from agentgrad.errors import AgentgradError, GraphError
from agentgrad.resources import INT32_MAX, graph_bytes, require_memory

#: senders per cache block (2^19 float32 values = 2 MiB, about an L2 cache or an L3 share)
BLOCK_NODES = 2**19


class Graph(eqx.Module):
    """An undirected contact network on ``n_nodes`` agents.

    Attributes:
        senders, receivers: int32 arrays of the directed edges (each undirected edge
            twice), sorted by receiver (within each sender block, see
            ``sender_blocks``).
        degree: float32 number of neighbours of each node.
        n_nodes: number of nodes (static).
        is_complete: ``True`` for the edge-free complete-graph representation (static).
        layout: ``None``, or the :class:`~agentgrad.sharding.Sharding` the edges are laid
            out for (:meth:`partition`); ``senders``/``receivers`` are then in device
            blocks (static).
        sender_blocks: number of cache blocks of senders the edges are grouped in (1 =
            plain CSR order; module docstring) (static).
    """

    senders: jax.Array
    receivers: jax.Array
    degree: jax.Array
    n_nodes: int = eqx.field(static=True)
    is_complete: bool = eqx.field(static=True, default=False)
    layout: Any = eqx.field(static=True, default=None)
    sender_blocks: int = eqx.field(static=True, default=1)

    @property
    def n_edges(self) -> int:
        """Number of undirected edges."""
        if self.is_complete:
            return self.n_nodes * (self.n_nodes - 1) // 2
        if self.layout is not None:
            return int(np.asarray(self.degree, np.float64).sum()) // 2
        return int(self.senders.shape[0]) // 2

    def neighbour_sum(self, x: jax.Array) -> jax.Array:
        """``sum_{j in N(i)} x_j`` for every node ``i``; ``x`` has shape ``(n_nodes, ...)``."""
        if self.is_complete:
            return jnp.sum(x, axis=0) - x
        if self.layout is not None:
            return self._blocked_neighbour_sum(x)
        x = _materialized(x, self.degree[0] >= 0)
        return jax.ops.segment_sum(
            x[self.senders],
            self.receivers,
            num_segments=self.n_nodes,
            indices_are_sorted=self.sender_blocks == 1,
        )

    def csr(self) -> tuple[np.ndarray, np.ndarray]:
        """``(senders, receivers)`` as NumPy arrays in CSR order (sorted by receiver, then
        sender), whatever the storage order."""
        senders, receivers = np.asarray(self.senders), np.asarray(self.receivers)
        if self.sender_blocks == 1:
            return senders, receivers
        order = np.argsort(receivers, kind="stable")  # blocks hold ascending senders
        return senders[order], receivers[order]

    def with_sender_blocks(self, blocks: int) -> Graph:
        """The same graph with its edges grouped in ``blocks`` cache blocks of senders
        (``blocks = 1``: CSR order).  Neighbour sums are bitwise unchanged."""
        if self.is_complete or self.layout is not None:
            return self
        return from_csr(*self.csr(), self.degree, self.n_nodes, blocks)

    def partition(self, sharding: Any) -> Graph:
        """The same graph with its edges in D = ``sharding.size`` receiver blocks.

        Device d owns nodes ``[d N/D, (d+1) N/D)`` and the edges into them (edges are
        sorted by receiver, so each block is a contiguous slice), padded to the largest
        block's edge count E_max with edges from node 0 into a dummy row.  Arrays:
        ``senders`` (D E_max,) global sender ids, ``receivers`` (D E_max,) receiver ids
        local to the block.  :meth:`neighbour_sum` then all-gathers ``x`` (N values per
        step) and sums locally, so edge memory and work are split over devices.
        Requires N to be a multiple of D.
        """
        if self.is_complete or self.layout == sharding:
            return self
        if self.layout is not None:
            raise AgentgradError(
                f"Sharding: this graph is laid out for {self.layout.size} devices, not "
                f"{sharding.size}; partition the original graph"
            )
        blocks = sharding.size
        if self.n_nodes % blocks:
            raise AgentgradError(
                f"Sharding: the graph has {self.n_nodes} nodes, not a multiple of {blocks} "
                f"devices; choose a number of agents divisible by {blocks}"
            )
        rows = self.n_nodes // blocks
        senders, receivers = self.csr()
        bounds = np.searchsorted(receivers, np.arange(blocks + 1) * rows)
        width = max(1, int(np.diff(bounds).max()))
        block_senders = np.zeros((blocks, width), np.int32)
        block_receivers = np.full((blocks, width), rows, np.int32)  # dummy row
        for d in range(blocks):  # D slices, not a loop over agents
            lo, hi = bounds[d], bounds[d + 1]
            block_senders[d, : hi - lo] = senders[lo:hi]
            block_receivers[d, : hi - lo] = receivers[lo:hi] - d * rows
        return Graph(
            jnp.asarray(block_senders.reshape(-1)),
            jnp.asarray(block_receivers.reshape(-1)),
            self.degree,
            self.n_nodes,
            layout=sharding,
        )

    def _blocked_neighbour_sum(self, x: jax.Array) -> jax.Array:
        from jax.sharding import PartitionSpec

        from agentgrad.sharding import AXIS

        rows = self.n_nodes // self.layout.size
        agents = PartitionSpec(AXIS)

        def local(x_block, senders, receivers):
            x_all = jax.lax.all_gather(x_block, AXIS, tiled=True)  # (N, ...)
            summed = jax.ops.segment_sum(
                x_all[senders], receivers, num_segments=rows + 1, indices_are_sorted=True
            )
            return summed[:rows]

        return jax.shard_map(
            local, mesh=self.layout.mesh, in_specs=(agents, agents, agents), out_specs=agents
        )(x, self.senders, self.receivers)

    def neighbour_mean(self, x: jax.Array) -> jax.Array:
        """Mean of ``x`` over each node's neighbours (0 for isolated nodes)."""
        d = jnp.maximum(self.degree, 1.0).reshape((-1,) + (1,) * (x.ndim - 1))
        return self.neighbour_sum(x) / d.astype(x.dtype)


def _materialized(x: jax.Array, true: jax.Array) -> jax.Array:
    """``x``, computed once per node before the per-edge gather reads it.

    XLA's CPU fusion inlines cheap element-wise producers (a random draw's 20 Threefry
    rounds among them) into the gather that consumes them, recomputing them for every
    edge: 10x the work at mean degree 10.  A conditional is never fused, so routing
    ``x`` through one (``true`` a run-time scalar, read from the graph so that ``vmap``
    over ``x`` keeps it a conditional; either branch returns ``x``) materialises it;
    ``optimization_barrier`` does not (XLA's CPU pipeline drops it before fusion).
    A graph closed over as a compile-time constant lets XLA fold the conditional away.
    """
    # the branches must differ, or XLA merges them and drops the conditional
    return jax.lax.cond(true, lambda y: y, lambda y: y + 0, x)


# --------------------------------------------------------------------------- construction


def _rng(key: Any) -> np.random.Generator:
    """A NumPy generator seeded from a JAX key or an integer seed."""
    if key is None:
        raise GraphError("random graph generators need key= (a jax.random.key or an int seed)")
    if isinstance(key, int | np.integer):
        return np.random.default_rng(int(key))
    data = np.asarray(
        jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key
    )
    return np.random.default_rng(data.astype(np.uint64).ravel().tolist())


def _check_n(n: Any, minimum: int = 1) -> int:
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < minimum:
        raise GraphError(f"number of nodes must be an integer >= {minimum}, got {n!r}")
    return int(n)


def _unique(x: np.ndarray) -> np.ndarray:
    """Sorted unique values by one sort (NumPy 2's hash-based ``np.unique`` is several
    times slower on millions of int64 codes)."""
    x = np.sort(x)
    return x[np.concatenate([[True], x[1:] != x[:-1]])] if x.size else x


def from_edges(src: Any, dst: Any, n_nodes: int | None = None) -> Graph:
    """Build an undirected graph from edge endpoint arrays (0-based node ids).

    Self-loops are dropped; duplicate edges (in either direction) are merged.
    """
    src, dst = np.asarray(src), np.asarray(dst)
    if src.shape != dst.shape or src.ndim != 1:
        raise GraphError("edge endpoints must be two 1-D arrays of equal length")
    if src.size and not (
        np.issubdtype(src.dtype, np.integer) and np.issubdtype(dst.dtype, np.integer)
    ):
        raise GraphError("edge endpoints must be integer node ids")
    src, dst = src.astype(np.int64), dst.astype(np.int64)
    if src.size and min(src.min(), dst.min()) < 0:
        raise GraphError("node ids must be non-negative")
    top = int(max(src.max(), dst.max())) + 1 if src.size else 0
    if n_nodes is None:
        n_nodes = top
    n_nodes = _check_n(n_nodes)
    if top > n_nodes:
        raise GraphError(f"edge refers to node {top - 1} but the graph has {n_nodes} nodes")
    if n_nodes > INT32_MAX or 2 * src.size > INT32_MAX:
        raise GraphError("graph too large for int32 edge indices (at most 2^31 - 1 nodes)")
    require_memory(
        graph_bytes(n_nodes, src.size),
        f"a graph of {n_nodes} nodes and {src.size} edges",
        "check the largest node id and the number of agents",
    )
    keep = src != dst
    lo, hi = np.minimum(src[keep], dst[keep]), np.maximum(src[keep], dst[keep])
    return _symmetric_csr(hi.astype(np.int32), lo.astype(np.int32), n_nodes)


def _symmetric_csr(rows: np.ndarray, cols: np.ndarray, n_nodes: int) -> Graph:
    """The graph with edges ``{rows[e], cols[e]}`` given once each as a lower-triangle
    entry (``cols < rows``; repeats allowed), via SciPy's counting sorts: COO -> CSR,
    duplicates merged, then ``L + L^T`` merges each row's two sorted halves.  O(n + E)
    plus per-row sorts, instead of sorting 2E combined keys."""
    import scipy.sparse as sparse  # lazy: ~0.1 s of import, needed only here

    lower = sparse.csr_matrix(
        (np.ones(rows.size, np.int32), (rows, cols)), shape=(n_nodes, n_nodes)
    )
    lower.sum_duplicates()  # sorted column indices, one entry per edge
    lower.data[:] = 1
    full = (lower + lower.T).tocsr()  # L and L^T are disjoint: every value stays 1
    degree = np.diff(full.indptr)
    receivers = np.repeat(np.arange(n_nodes, dtype=np.int32), degree)
    return from_csr(full.indices.astype(np.int32, copy=False), receivers, degree, n_nodes)


def from_csr(
    senders: Any, receivers: Any, degree: Any, n_nodes: int, blocks: int | None = None
) -> Graph:
    """A :class:`Graph` from directed edges already in CSR order (both directions of
    every edge, sorted by receiver then sender), grouped in ``blocks`` cache blocks of
    senders (default: one per :data:`BLOCK_NODES` nodes; module docstring)."""
    blocks = max(1, -(-n_nodes // BLOCK_NODES) if blocks is None else int(blocks))
    senders, receivers = _blocked(np.asarray(senders), np.asarray(receivers), n_nodes, blocks)
    return Graph(
        jnp.asarray(senders, jnp.int32),
        jnp.asarray(receivers, jnp.int32),
        jnp.asarray(degree, jnp.float32),
        n_nodes,
        sender_blocks=blocks,
    )


def _blocked(
    senders: np.ndarray, receivers: np.ndarray, n_nodes: int, blocks: int
) -> tuple[np.ndarray, np.ndarray]:
    """CSR-ordered edges regrouped by ``blocks`` blocks of senders (stable: each block
    stays sorted by receiver, then sender)."""
    if blocks <= 1:
        return senders, receivers
    size = -(-n_nodes // blocks)
    block = (senders // size).astype(np.uint16 if blocks < 2**16 else np.int64)
    order = np.argsort(block, kind="stable")  # radix sort of 16-bit keys: O(E)
    return senders[order], receivers[order]


def complete(n: int) -> Graph:
    """Complete graph on ``n`` nodes, aggregated in O(n) without storing edges."""
    n = _check_n(n, 2)
    if n > INT32_MAX:
        raise GraphError(f"at most {INT32_MAX} nodes are supported, got {n}")
    require_memory(4 * n, f"a complete graph of {n} nodes", "use fewer agents (--agents)")
    empty = jnp.zeros((0,), jnp.int32)
    return Graph(empty, empty, jnp.full((n,), n - 1, jnp.float32), n, True)


def lattice(rows: int, cols: int | None = None, *, periodic: bool = True) -> Graph:
    """The ``rows x cols`` grid graph (von Neumann neighbourhood: 4 neighbours; a torus
    when ``periodic``).  Node ``r * cols + c`` is the cell in row ``r``, column ``c``."""
    rows = _check_n(rows, 2)
    cols = rows if cols is None else _check_n(cols, 2)
    index = np.arange(rows * cols).reshape(rows, cols)
    if periodic:
        right, down = np.roll(index, -1, axis=1), np.roll(index, -1, axis=0)
        src = np.concatenate([index.ravel(), index.ravel()])
        dst = np.concatenate([right.ravel(), down.ravel()])
    else:
        src = np.concatenate([index[:, :-1].ravel(), index[:-1, :].ravel()])
        dst = np.concatenate([index[:, 1:].ravel(), index[1:, :].ravel()])
    return from_edges(src, dst, rows * cols)


def erdos_renyi(
    n: int,
    mean_degree: float | None = None,
    *,
    p: float | None = None,
    key: Any = None,
    method: str = "skip",
) -> Graph:
    """Erdős–Rényi ``G(n, p)`` with ``p = mean_degree / (n - 1)`` (give one of the two).

    Both methods sample the exact ``G(n, p)`` law in O(n + E) memory:

    - ``"skip"`` (default; Batagelj & Brandes 2005): the pairs ``(v, w)``, ``w < v``, are
      numbered ``k = v(v-1)/2 + w``; the gaps between successive edges' numbers are
      i.i.d. Geometric(p), drawn as ``floor(Exp(1) / -log(1-p)) + 1``.  Edges come out
      distinct and sorted, so the CSR graph needs only a transposition (a counting sort)
      instead of comparison sorts: 1.9-2.3x faster than ``"pairs"`` at 10^6-10^7 nodes
      (``benchmarks/graph_build.py``).
    - ``"pairs"``: ``M ~ Binomial(n(n-1)/2, p)`` distinct pairs drawn uniformly (the
      method before ``"skip"``; kept so that graphs seeded before it can be rebuilt).

    The two methods give different graphs for the same key.
    """
    n = _check_n(n, 2)
    if method not in ("skip", "pairs"):
        raise GraphError(f"erdos_renyi: method must be 'skip' or 'pairs', got {method!r}")
    if (mean_degree is None) == (p is None):
        raise GraphError("erdos_renyi: give exactly one of mean_degree or p")
    if p is None:
        if not 0 <= mean_degree <= n - 1:
            raise GraphError(f"mean_degree must be in [0, n-1] = [0, {n - 1}], got {mean_degree}")
        p = mean_degree / (n - 1)
    if not 0 <= p <= 1:
        raise GraphError(f"edge probability p must be in [0, 1], got {p}")
    n_pairs = n * (n - 1) // 2
    require_memory(
        graph_bytes(n, p * n_pairs) * 1.5,
        f"an Erdős–Rényi graph of {n} nodes and mean degree {p * (n - 1):g}",
        "use fewer agents (--agents) or a smaller mean degree",
    )
    rng = _rng(key)
    if method == "skip":
        return _erdos_renyi_skip(n, p, rng)
    m = int(rng.binomial(n_pairs, p))
    if m > n_pairs // 2:  # dense
        require_memory(9 * n * n, f"a dense graph of {n} nodes", "use fewer agents")
        codes = np.flatnonzero(np.triu(rng.random((n, n)) < p, 1))
        return from_edges(codes // n, codes % n, n)
    codes = np.zeros(0, np.int64)
    while codes.size < m:
        k = int(1.1 * (m - codes.size)) + 16
        i, j = rng.integers(0, n, k), rng.integers(0, n, k)
        ok = i != j
        new = np.minimum(i[ok], j[ok]) * n + np.maximum(i[ok], j[ok])
        codes = _unique(np.concatenate([codes, new]))
    codes = rng.choice(codes, m, replace=False) if codes.size > m else codes
    return from_edges(codes // n, codes % n, n)


def _pair_of_code(code: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pair number ``k = v(v-1)/2 + w`` (``0 <= w < v``) back to ``(v, w)``:
    ``v = floor((1 + sqrt(1 + 8k)) / 2)``, corrected by one where float64 rounds wrongly."""
    v = ((1.0 + np.sqrt(1.0 + 8.0 * code)) / 2.0).astype(np.int64)
    v -= (v * (v - 1)) >> 1 > code
    v += (v * (v + 1)) >> 1 <= code
    return v, (code - ((v * (v - 1)) >> 1)).astype(np.int32)


def _erdos_renyi_skip(n: int, p: float, rng: np.random.Generator) -> Graph:
    """``G(n, p)`` by geometric skips over the numbered pairs (:func:`erdos_renyi`)."""
    n_pairs = n * (n - 1) // 2
    if p == 0:  # (n >= 2, so there are pairs)
        return from_csr(np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(n), n)
    mean = n_pairs * p
    chunk = int(mean + 6 * np.sqrt(mean)) + 16  # one chunk suffices but for ~1e-9 odds
    if 2 * chunk > INT32_MAX:
        raise GraphError("graph too large for int32 edge indices (at most 2^31 - 1 edges)")
    scale = 0.0 if p == 1 else -1.0 / np.log1p(-p)  # Geometric(1) = 1: every pair
    codes, last = [], -1
    while last < n_pairs - 1:
        gaps = np.minimum(rng.standard_exponential(chunk) * scale, n_pairs).astype(np.int64)
        codes.append(np.cumsum(gaps + 1) + last)
        last = int(codes[-1][-1])
    code = np.concatenate(codes) if len(codes) > 1 else codes[0]
    code = code[: np.searchsorted(code, n_pairs)]
    v, w = _pair_of_code(code)
    return _symmetric_csr(v.astype(np.int32), w, n)  # distinct and sorted already


def watts_strogatz(n: int, k: int, p: float, *, key: Any = None) -> Graph:
    """Watts–Strogatz small world: ring lattice with ``k`` neighbours, rewiring prob. ``p``.

    Each lattice edge ``(i, i + d)``, ``d = 1..k/2``, has its far end moved to a uniform
    random node with probability ``p``; a rewiring that would create a self-loop or a
    duplicate edge keeps the lattice edge.
    """
    n = _check_n(n, 3)
    if not isinstance(k, int | np.integer) or k < 2 or k % 2 or k >= n:
        raise GraphError(f"watts_strogatz: k must be an even integer in [2, n-1], got {k}")
    if not 0 <= p <= 1:
        raise GraphError(f"watts_strogatz: rewiring probability must be in [0, 1], got {p}")
    require_memory(graph_bytes(n, n * k // 2) * 2, f"a graph of {n} nodes", "use fewer agents")
    rng = _rng(key)
    src = np.repeat(np.arange(n), k // 2)
    lattice = (src + np.tile(np.arange(1, k // 2 + 1), n)) % n
    dst = np.where(rng.random(src.size) < p, rng.integers(0, n, src.size), lattice)
    codes = np.minimum(src, dst) * n + np.maximum(src, dst)
    ordered = np.sort(codes)
    repeated = ordered[1:][ordered[1:] == ordered[:-1]]
    collides = np.isin(codes, repeated)
    bad = (src == dst) | (collides & (dst != lattice))
    dst = np.where(bad, lattice, dst)
    return from_edges(src, dst, n)


SEQUENTIAL_BA_NODES = 2000  # early nodes redraw often (few targets to choose from)


def barabasi_albert(n: int, m: int, *, key: Any = None) -> Graph:
    """Barabási–Albert preferential attachment: each new node links to ``m`` distinct
    existing nodes, chosen with probability proportional to their degree.

    Node ``m`` links to the seed nodes ``0..m-1``.  Vectorised (Batagelj & Brandes 2005,
    "Efficient generation of large random networks"): write the edges in arrival order
    into one list ``L = (s_0, t_0, s_1, t_1, ...)``; drawing a target with probability
    proportional to degree is drawing a uniform position of ``L`` among the entries that
    existed when the node arrived (positions ``[0, 2 f_v)``, ``f_v`` = the node's first
    edge), so ``t_e = L[r_e]`` with ``r_e`` uniform.  Even positions are sources (known);
    odd ones point to earlier targets, resolved for all edges at once by pointer jumping
    (O(E log E)).  A node that drew the same target twice redraws that edge (rejection,
    as in the sequential algorithm) until its ``m`` targets are distinct; the first
    2000 nodes, whose few candidates make repeats common, are built one by one.
    Degrees follow ``P(K >= k) = m (m + 1) / (k (k + 1))`` for ``k >= m`` (large n).
    """
    n = _check_n(n, 2)
    if not isinstance(m, int | np.integer) or not 1 <= m < n:
        raise GraphError(f"barabasi_albert: m must be an integer in [1, n-1], got {m}")
    m = int(m)
    require_memory(graph_bytes(n, n * m) * 3, f"a graph of {n} nodes", "use fewer agents")
    rng = _rng(key)
    n_edges = (n - m) * m
    source = m + np.arange(n_edges, dtype=np.int64) // m
    target = np.full(n_edges, -1, np.int64)
    early = min(n - m, SEQUENTIAL_BA_NODES) * m  # edges of the nodes built one by one
    target[:m] = np.arange(m)
    for e in range(m, early, m):  # a loop over the first 2000 nodes only
        chosen: list[int] = []
        while len(chosen) < m:
            r = int(rng.integers(0, 2 * e))
            t = int(source[r // 2] if r % 2 == 0 else target[r // 2])
            if t not in chosen:
                chosen.append(t)
        target[e : e + m] = chosen
    first = (source - m) * m  # first edge of each edge's source node
    position = np.zeros(n_edges, np.int64)
    draw = np.arange(early, n_edges)
    resolved = target
    while draw.size:
        position[draw] = (rng.random(draw.size) * (2 * first[draw])).astype(np.int64)
        resolved = _resolve_positions(position, source, target, early)
        grouped = resolved[early:].reshape(-1, m)
        ordered = np.sort(grouped, axis=1)
        repeat = np.zeros_like(grouped, dtype=bool)
        repeat[:, 1:] = ordered[:, 1:] == ordered[:, :-1]
        rows = np.flatnonzero(repeat.any(axis=1))
        # redraw the later slot of each repeated target (rows with a repeat only)
        sub = grouped[rows]
        rank = np.argsort(np.argsort(sub, axis=1, kind="stable"), axis=1, kind="stable")
        again = np.take_along_axis(repeat[rows], rank, axis=1)
        draw = early + (rows[:, None] * m + np.arange(m))[again]
    return from_edges(source, resolved, n)


def _resolve_positions(
    position: np.ndarray, source: np.ndarray, fixed: np.ndarray, n_fixed: int
) -> np.ndarray:
    """Targets ``t_e = L[position_e]`` of the Barabási–Albert edge list (``L[2j] =
    source_j``, ``L[2j + 1] = t_j``) for ``e >= n_fixed``; the first ``n_fixed`` are
    given in ``fixed``.  Pointer jumping: every open edge follows its link's link."""
    target = fixed.copy()
    link = position // 2
    later = np.arange(n_fixed, position.size)
    even = later[position[later] % 2 == 0]
    target[even] = source[link[even]]
    open_ = later[position[later] % 2 == 1]
    while open_.size:
        j = link[open_]
        done = target[j] >= 0
        target[open_[done]] = target[j[done]]
        link[open_[~done]] = link[j[~done]]  # follow the chain twice as far
        open_ = open_[~done]
    return target


def read_edge_list(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read the endpoint arrays of an edge-list file (format: :func:`from_edge_list`).

    UTF-8 with or without a byte-order mark; line-numbered errors.
    """
    try:
        with open(path, encoding="utf-8-sig") as fh:
            lines = fh.read().splitlines()
    except OSError as err:
        raise GraphError(f"cannot read graph file {str(path)!r}: {err.strerror}") from None
    except UnicodeDecodeError:
        raise GraphError(f"graph file {str(path)!r} is not a text edge list") from None
    src, dst = [], []
    for lineno, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        fields = text.replace(",", " ").split()
        try:
            if len(fields) < 2:
                raise ValueError
            u, v = int(fields[0]), int(fields[1])
        except ValueError:
            raise GraphError(
                f"{path}:{lineno}: expected two integer node ids 'u v', got {text[:40]!r}"
            ) from None
        if u < 0 or v < 0:
            raise GraphError(f"{path}:{lineno}: node ids must be non-negative, got {text[:40]!r}")
        if max(u, v) > INT32_MAX - 1:
            raise GraphError(f"{path}:{lineno}: node id {max(u, v)} exceeds {INT32_MAX - 1}")
        src.append(u)
        dst.append(v)
    if not src:
        raise GraphError(f"graph file {str(path)!r} contains no edges")
    return np.asarray(src, np.int64), np.asarray(dst, np.int64)


def from_edge_list(path: str | os.PathLike, n_nodes: int | None = None) -> Graph:
    """Read an undirected graph from a text file: one ``u v`` pair per line.

    Node ids are non-negative integers (0-based); columns are separated by whitespace
    or a comma; blank lines and lines starting with ``#`` are ignored; extra columns
    (e.g. weights) are ignored; a UTF-8 byte-order mark (Excel's "CSV UTF-8") is
    accepted.  Self-loops are dropped and duplicate edges merged.  ``n_nodes`` defaults
    to the largest id + 1; ids at or above ``n_nodes`` are an error.
    """
    src, dst = read_edge_list(path)
    return from_edges(src, dst, n_nodes)


def from_networkx(graph: Any) -> Graph:
    """Convert a ``networkx`` graph; nodes are renumbered ``0..n-1`` in ``graph.nodes`` order."""
    try:
        import networkx as nx  # noqa: F401
    except ImportError:  # pragma: no cover - exercised only without networkx
        msg = "from_networkx needs networkx: pip install 'agentgrad[networkx]'"
        raise GraphError(msg) from None
    index = {node: i for i, node in enumerate(graph.nodes)}
    if not index:
        raise GraphError("networkx graph has no nodes")
    edges = np.asarray([(index[u], index[v]) for u, v in graph.edges], np.int64).reshape(-1, 2)
    return from_edges(edges[:, 0], edges[:, 1], len(index))


def parse_graph(spec: str, n: int | None, key: Any, default_n: int = 10_000) -> Graph:
    """Parse a command-line graph spec: ``complete``, ``erdos-renyi:MEAN_DEGREE``,
    ``watts-strogatz:K:P``, ``barabasi-albert:M`` or ``file:PATH``.

    ``n`` is the requested number of agents (``None``: ``default_n`` for generators, the
    file's node count for ``file:``).  With ``file:`` and an explicit ``n``, every node id
    must be below ``n`` and the file must name node ``n - 1`` (a mismatch is an error
    rather than silently simulating another population size).
    """
    name, _, rest = spec.partition(":")
    args = rest.split(":") if rest else []
    size = default_n if n is None else n
    try:
        if name == "complete" and not args:
            return complete(size)
        if name == "erdos-renyi" and len(args) == 1:
            return erdos_renyi(size, float(args[0]), key=key)
        if name == "watts-strogatz" and len(args) == 2:
            return watts_strogatz(size, int(args[0]), float(args[1]), key=key)
        if name == "barabasi-albert" and len(args) == 1:
            return barabasi_albert(size, int(args[0]), key=key)
    except ValueError as err:
        if isinstance(err, AgentgradError):
            raise
        raise GraphError(f"graph {spec!r}: arguments must be numbers ({err})") from None
    if name == "file" and rest:
        src, dst = read_edge_list(rest)
        top = int(max(src.max(), dst.max())) + 1
        if n is not None and top > n:
            raise GraphError(
                f"{rest}: names node {top - 1} but --agents is {n}; node ids must be < --agents"
            )
        if n is not None and top < n:
            raise GraphError(
                f"{rest}: names nodes 0..{top - 1} only but --agents is {n}; omit --agents to "
                f"use the file's {top} nodes"
            )
        return from_edges(src, dst, top)
    raise GraphError(
        f"unknown graph {spec!r}; use complete, erdos-renyi:MEAN_DEGREE, "
        "watts-strogatz:K:P, barabasi-albert:M or file:PATH"
    )
