"""The Go programs the tests run (tools/checks: compose-check and k8s-check, and actionlint and
Toxiproxy pinned there), built once per test session with the Go toolchain `make test` needs."""

from __future__ import annotations

import functools
import shutil
import subprocess
import tempfile
from pathlib import Path

CHECKS = Path(__file__).resolve().parents[3] / "tools" / "checks"


@functools.cache
def built(package: str) -> Path:
    """The binary of `package` (a path in tools/checks, or a module it pins)."""
    go = shutil.which("go")
    assert go is not None, "deployment files are checked with Go programs: install Go (see README, Tests)"
    binary = Path(tempfile.mkdtemp(prefix="fraudstream-checks-")) / package.rstrip("/").rsplit("/", 1)[-1]
    subprocess.run([go, "build", "-o", str(binary), package], cwd=CHECKS, check=True, timeout=600)
    return binary
