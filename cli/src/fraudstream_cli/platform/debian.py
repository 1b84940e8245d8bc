"""Programs from Debian's packages (Java, Maven and Redis for the platform; Chromium and
promtool for tests), installed with apt-get when missing and the process may (as root);
otherwise a clear error that names the package."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from fraudstream_cli.platform.processes import PlatformError


def ensure_debian_package(package: str, binary: str) -> str:
    """The path of `binary` (a name on PATH or under /usr/bin), installing `package` if needed."""
    debian_binary = Path("/usr/bin") / binary
    found = shutil.which(binary) or (str(debian_binary) if debian_binary.exists() else None)
    if found:
        return found
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        raise PlatformError(f"{binary} is not installed; install Debian's package: sudo apt-get install {package}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (
        [apt, "update", "-q"],
        [apt, "install", "-y", "-q", "--no-install-recommends", package],
    ):
        result = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)  # noqa: S603
        if result.returncode != 0:
            raise PlatformError(f"`{' '.join(argv[1:3])}` failed while installing {package}:\n{result.stderr[-1000:]}")
    if not debian_binary.exists():
        raise PlatformError(f"apt-get installed {package} but {debian_binary} is missing")
    return str(debian_binary)
