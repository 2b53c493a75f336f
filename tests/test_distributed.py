"""Two processes joined by jax.distributed on 127.0.0.1 (gloo collectives on CPU) run one
sharded simulation whose observables and gradient equal the single-process run."""

import json
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

import agentgrad as ag

HERE = Path(__file__).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(address: str, rank: int, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(HERE / "distributed_worker.py"), address, str(rank), *extra],
        cwd=HERE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_processes_equal_one():
    from distributed_case import MODEL, N_STEPS, PARAMS

    address = f"127.0.0.1:{_free_port()}"
    procs = [_worker(address, rank) for rank in (0, 1)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-2000:]
    result = json.loads(outs[0][0].strip().splitlines()[-1])  # gloo also prints

    def observables(beta):
        return ag.simulate(MODEL, dict(PARAMS, beta=beta), jax.random.key(0), N_STEPS).observables

    expected = observables(PARAMS["beta"])
    for name, values in expected.items():
        np.testing.assert_allclose(result[name], np.asarray(values), rtol=1e-6, atol=1e-7)
    grad = jax.grad(lambda b: observables(b)["infected"].sum())(PARAMS["beta"])
    np.testing.assert_allclose(result["grad"], float(grad), rtol=1e-5)


def test_unreachable_coordinator_is_a_one_line_error():
    code = (
        "import agentgrad as ag\n"
        "try:\n"
        f"    ag.distributed.initialize('127.0.0.1:{_free_port()}', 2, 1, timeout_s=3)\n"
        "except ag.AgentgradError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    message = out.stdout.strip()
    assert "could not join the run at 127.0.0.1:" in message and "within 3 s" in message
    assert len(message.splitlines()) == 1


def test_bad_distributed_arguments():
    with pytest.raises(ag.AgentgradError, match="together"):
        ag.distributed.initialize("127.0.0.1:1234")
    with pytest.raises(ag.AgentgradError, match=r"process_id must be in \[0, 2\)"):
        ag.distributed.initialize("127.0.0.1:1234", 2, 2)
    with pytest.raises(ag.AgentgradError, match="host:port"):
        ag.distributed.initialize("localhost", 2, 0)
    with pytest.raises(ag.AgentgradError, match="before any JAX computation"):
        ag.distributed.initialize("127.0.0.1:1234", 2, 0)
