"""Memory and CPU figures from /proc (Linux): this process's memory, and the CPU used by other processes."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Sequence


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


def _busy_cpu_s() -> float:
    """CPU seconds spent busy by all cores since boot (user..steal in /proc/stat), 0 where unavailable."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return 0.0
    return (sum(values) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")


def _live_children_cpu_s() -> float:
    """CPU seconds of this process's children that are still running (a server it started), 0 where unavailable."""
    total = 0
    for task in Path("/proc/self/task").glob("*/children"):
        try:
            pids = task.read_text().split()
        except OSError:
            continue
        for pid in pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def _own_cpu_s() -> float:
    """CPU seconds of this process and of its children, running or ended."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system + _live_children_cpu_s()


class ForeignCpu:
    """Share of the machine's CPU capacity used by anything but this process and its child processes while the
    block runs."""

    share = 0.0

    def __enter__(self) -> ForeignCpu:
        self._start = (time.perf_counter(), _own_cpu_s(), _busy_cpu_s())
        return self

    def __exit__(self, *exc: object) -> None:
        wall, own, busy = (end - start for end, start in
                           zip((time.perf_counter(), _own_cpu_s(), _busy_cpu_s()), self._start))
        self.share = max(0.0, (busy - own) / (wall * len(os.sched_getaffinity(0)))) if wall > 0 else 0.0


def repo_relative(value: Any, root: Path) -> Any:
    """``value`` (a JSON-like result) with every path under ``root`` written relative to it, so a committed report
    names no folder of the machine it ran on."""
    prefix = str(root).rstrip("/") + "/"
    if isinstance(value, str):
        return value.replace(prefix, "") if prefix in value else ("." if value == prefix[:-1] else value)
    if isinstance(value, dict):
        return {k: repo_relative(v, root) for k, v in value.items()}
    if isinstance(value, list):
        return [repo_relative(v, root) for v in value]
    return value


def run_header(script: str, argv: Sequence[str] | None) -> dict[str, Any]:
    """The command (``script`` and ``argv``, by default this process's arguments), date and machine of a report."""
    import platform
    import sys
    from datetime import datetime, timezone

    return {"command": " ".join([f".venv/bin/python {script}", *(argv if argv is not None else sys.argv[1:])]),
            "date": datetime.now(timezone.utc).isoformat(timespec="minutes"),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}"}


def save_report(out: Path, data: dict[str, Any], render: Any) -> None:
    """Write ``data`` as JSON beside ``out`` and ``render(data)`` (Markdown) to ``out``, and print it."""
    import json

    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(data, indent=1), encoding="utf-8")
    out.write_text(render(data), encoding="utf-8")
    print(out.read_text())


def revision_src(root: Path, revision: str, work: Path) -> Path:
    """The ``src`` folder of git ``revision`` of the repository at ``root``, extracted under ``work``."""
    import subprocess

    work.mkdir()
    archive = subprocess.run(["git", "-C", str(root), "archive", revision, "src"], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(work)], input=archive.stdout, check=True)
    return work / "src"
