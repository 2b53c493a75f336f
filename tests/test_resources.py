"""Memory estimates (agentgrad.resources): monotone in the sizes, checkpointing helps,
limits parse, refusals name the estimate and the limit."""

import pytest

import agentgrad as ag
from agentgrad.resources import (
    ResourceError,
    _parse_limit,
    check_size,
    format_bytes,
    require_memory,
    simulation_bytes,
    state_bytes,
)


def test_estimates_scale_with_sizes_and_modes():
    small = ag.models.SIRNetwork(graph=ag.graphs.complete(1000))
    big = ag.models.SIRNetwork(graph=ag.graphs.complete(4000))
    p = small.param_space.defaults()
    assert state_bytes(big, p) - 8 == 4 * (state_bytes(small, p) - 8)  # + 2 scalars
    base = dict(batch=4, steps=100, runs=10)
    fwd = simulation_bytes(small, p, **base)
    assert simulation_bytes(small, p, **{**base, "runs": 1000}) > fwd
    rev = simulation_bytes(small, p, **base, reverse=True)
    ckpt = simulation_bytes(small, p, **base, reverse=True, checkpoint=True)
    assert rev > ckpt > fwd
    assert simulation_bytes(small, p, **base, directions=9) > fwd


def test_limits_and_refusals(monkeypatch):
    assert _parse_limit("16G") == 16 * 2**30 and _parse_limit("500MiB") == 500 * 2**20
    assert _parse_limit("off") is None and _parse_limit("12345") == 12345
    with pytest.raises(ResourceError, match="not a size"):
        _parse_limit("lots")
    monkeypatch.setenv("AGENTGRAD_MEMORY_LIMIT", "1M")
    with pytest.raises(ResourceError, match=r"needs about 2\.0 MiB .* only 1\.0 MiB .*; fewer"):
        require_memory(2 * 2**20, "the thing", "fewer")
    require_memory(2**19, "the thing", "fewer")
    monkeypatch.setenv("AGENTGRAD_MEMORY_LIMIT", "off")
    require_memory(2**60, "the thing", "fewer")
    with pytest.raises(ResourceError, match="too large"):
        check_size(2**31, "--agents")
    assert format_bytes(1536) == "1.5 KiB"


def test_graph_generators_refuse_before_allocating(monkeypatch):
    monkeypatch.setenv("AGENTGRAD_MEMORY_LIMIT", "10M")
    with pytest.raises(ResourceError, match="Erdős–Rényi graph of 1000000 nodes"):
        ag.graphs.erdos_renyi(1_000_000, 10, key=0)
    with pytest.raises(ResourceError, match="graph of 2000000001 nodes"):
        ag.graphs.from_edges([0, 1], [1, 2_000_000_000])


def test_compiled_count_orders_modes_and_decides_near_the_limit(monkeypatch):
    """XLA's count: forward < forward mode < reverse, checkpointing saves memory; near
    the limit it replaces the fitted formula, which over-predicts SEIRM."""
    from agentgrad.models.population import synthetic_population
    from agentgrad.resources import compiled_run_bytes, require_simulation_memory

    model = ag.models.SEIRM(synthetic_population(3000, 10.0, key=0))
    p = model.param_space.defaults()
    fwd = compiled_run_bytes(model, p, steps=30)
    jvp = compiled_run_bytes(model, p, steps=30, directions=3)
    rev = compiled_run_bytes(model, p, steps=30, reverse=True)
    ckpt = compiled_run_bytes(model, p, steps=30, reverse=True, checkpoint=True)
    assert 0 < fwd < jvp < rev and ckpt < rev
    sizes = dict(batch=2, steps=30, runs=2, reverse=True, checkpoint=True)
    fitted = simulation_bytes(model, p, **sizes)
    counted = simulation_bytes(model, p, **sizes, compiled=True)
    assert counted < fitted  # the formula errs on the safe side for SEIRM
    monkeypatch.setenv("AGENTGRAD_MEMORY_LIMIT", str((counted + fitted) // 2))
    require_simulation_memory(model, p, "the run", "fewer", **sizes)  # the count decides
    monkeypatch.setenv("AGENTGRAD_MEMORY_LIMIT", str(counted // 2))
    with pytest.raises(ResourceError, match="the run needs about .*; fewer"):
        require_simulation_memory(model, p, "the run", "fewer", **sizes)
