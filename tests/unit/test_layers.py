"""The house's layers, read from the imports: libraries import no service, a service imports no
other service, and the command line imports no service (it starts them as processes)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = {
    "fraudstream_ingest": "services/ingest",
    "fraudstream_features": "services/features",
    "fraudstream_trainer": "services/trainer",
    "fraudstream_inference": "services/inference",
    "fraudstream_monitor": "services/monitor",
}
LAYERS = sorted([*(path.relative_to(ROOT).as_posix() for path in (ROOT / "libs").iterdir()), *SERVICES.values(), "cli"])


def imported_packages(source: Path) -> set[str]:
    """The top-level packages `source` imports, at module level or inside functions."""
    packages = set()
    for node in ast.walk(ast.parse(source.read_text(), str(source))):
        if isinstance(node, ast.Import):
            packages |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module is not None:
            packages.add(node.module.split(".")[0])
    return packages


@pytest.mark.parametrize("layer", LAYERS)
def test_no_layer_imports_a_service_other_than_itself(layer: str) -> None:
    foreign = {package for package, home in SERVICES.items() if home != layer}
    offending = {
        f"{source.relative_to(ROOT)} imports {', '.join(sorted(found))}"
        for source in (ROOT / layer).rglob("*.py")
        if (found := imported_packages(source) & foreign)
    }
    assert not offending, sorted(offending)


def test_the_layers_are_found() -> None:
    assert {"cli", "libs/common", "libs/modelling", "libs/drift", *SERVICES.values()} <= set(LAYERS)
    assert imported_packages(ROOT / "services/trainer/src/fraudstream_trainer/run_once.py") >= {
        "fraudstream_trainer",
        "fraudstream_registry",
    }
