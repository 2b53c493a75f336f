"""Every example script runs."""

import runpy
import sys

import pytest


def test_quickstart_example(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["quickstart", "2000"])
    runpy.run_path("examples/sir_network_quickstart.py", run_name="__main__")
    out = capsys.readouterr().out
    assert "peak daily new infections" in out
    assert out.count("d total_infections / d") == 9
    value = float(out.split("d beta")[1].split("=")[1].split()[0])
    assert value == pytest.approx(value) and value != 0.0
