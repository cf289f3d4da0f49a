"""Memory figures of the running process from /proc/self/status (Linux)."""
from __future__ import annotations

from pathlib import Path


def status_mib(field: str) -> float:
    """A size field of /proc/self/status in MiB ("VmHWM": peak resident memory, "VmRSS": current); NaN elsewhere."""
    try:
        lines = Path("/proc/self/status").read_text().splitlines()
    except OSError:
        return float("nan")
    for line in lines:
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")
