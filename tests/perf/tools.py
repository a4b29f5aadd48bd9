"""The command-line tools the benchmarks drive (wrk, pgbench): found on PATH, or installed with
Debian's apt where this process may (root, apt-get present), or else named with how to get them.
Also the CPU time processes have used, from Linux's /proc."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

DEBIAN_PACKAGES = {"wrk": "wrk", "pgbench": "postgresql-client"}


def require(*tools: str) -> bool:
    """True when every tool is on PATH (after installing the missing ones where possible); else
    prints what is missing and how to install it, and returns False."""
    missing = [tool for tool in tools if not shutil.which(tool)]
    if missing and os.geteuid() == 0 and shutil.which("apt-get"):
        packages = sorted({DEBIAN_PACKAGES.get(tool, tool) for tool in missing})
        print(f"installing {', '.join(packages)} with apt-get (needed: {', '.join(missing)})", flush=True)
        subprocess.run(["apt-get", "update", "-qq"], check=False)
        subprocess.run(["apt-get", "install", "-y", "-qq", *packages], check=False)
        missing = [tool for tool in tools if not shutil.which(tool)]
    if missing:
        packages = " ".join(sorted({DEBIAN_PACKAGES.get(tool, tool) for tool in missing}))
        print(f"{', '.join(missing)} not found: install with `apt-get install {packages}` (Debian/Ubuntu)"
              f" or `brew install {' '.join(missing)}` (macOS)", file=sys.stderr)
        return False
    return True


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _stat(raw: str) -> tuple[int, str, float]:
    """(parent pid, command name, user + system CPU seconds) of one /proc/<pid>/stat line."""
    fields = raw.rsplit(")", 1)[1].split()
    return int(fields[1]), raw[raw.index("(") + 1:raw.rindex(")")], (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used (0 once it is gone)."""
    try:
        return _stat(Path(f"/proc/{pid}/stat").read_text())[2]
    except (FileNotFoundError, ProcessLookupError):
        return 0.0


def processes() -> dict[int, tuple[int, str, float]]:
    """{pid: (parent pid, command name, CPU seconds)} of every process."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                found[int(entry.name)] = _stat((entry / "stat").read_text())
            except OSError:
                continue
    return found
