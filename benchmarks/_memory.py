"""Peak-memory helpers shared by the benchmark scripts (Linux /proc)."""

import json
import subprocess
import sys


def status_mb(field: str) -> float:
    """A memory field (VmRSS, VmHWM) of /proc/self/status in MB."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def reset_peak() -> float:
    """Reset the peak-RSS counter (Linux clear_refs) and return the current RSS in MB."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass
    return status_mb("VmRSS")


def peak_since(baseline: float) -> float:
    """Peak resident memory above ``baseline`` (MB) since the last :func:`reset_peak`."""
    return status_mb("VmHWM") - baseline


def run_worker(script: str, *args) -> dict:
    """Run ``python script --worker *args`` in a fresh process (so peak memory is per
    configuration) and return its last stdout line, parsed as JSON."""
    out = subprocess.run(
        [sys.executable, script, "--worker", *map(str, args)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])
