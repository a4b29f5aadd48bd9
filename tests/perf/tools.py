"""The command-line tools the benchmarks drive (wrk, pgbench): found on PATH, or installed with
Debian's apt where this process may (root, apt-get present), or else named with how to get them."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

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
