"""Peak-memory helpers shared by the benchmark scripts (Linux /proc)."""


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
