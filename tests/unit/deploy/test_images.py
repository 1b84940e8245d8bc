"""The images: one Dockerfile, a target per service, read by BuildKit's own parser; the bases
pinned by digest; the gRPC bridge compiled in one stage only; the GPU target on a CUDA base
with onnxruntime-gpu from the lock file; every image that compose.yaml and the images workflow
build is a target."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import yaml

from . import compose_model as compose
from . import dockerfile_model as dockerfile

ROOT = Path(__file__).resolve().parents[3]
SERVICES = ("ingest", "features", "trainer", "inference", "monitor")
TARGETS = {*SERVICES, "inference-gpu", "cli"}
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


def images_workflow() -> dict[str, Any]:
    workflow: dict[str, Any] = yaml.safe_load((ROOT / ".github" / "workflows" / "images.yml").read_text())
    return workflow


def test_buildkit_reads_the_dockerfile_without_warnings() -> None:
    assert dockerfile.dockerfile()["warnings"] == []


def test_compose_and_the_workflow_build_every_target_and_nothing_else() -> None:
    built = {s["build"]["target"] for s in compose.services().values() if "build" in s}
    assert built == TARGETS
    assert set(images_workflow()["jobs"]["build"]["strategy"]["matrix"]["target"]) == TARGETS
    assert set(dockerfile.stages()) >= TARGETS


def test_each_target_runs_its_own_service_as_an_unprivileged_user() -> None:
    stages = dockerfile.stages()
    for target in TARGETS:
        assert stages[target]["user"] == "10001", target
    for service in SERVICES:
        assert stages[service]["entrypoint"] == ["python", "-m", f"fraudstream_{service}"]
    assert stages["inference-gpu"]["entrypoint"] == stages["inference"]["entrypoint"]
    assert stages["cli"]["entrypoint"] == ["fraudstream"]


def test_base_images_are_pinned_by_digest_and_dependabot_proposes_new_ones() -> None:
    for image in dockerfile.images():
        assert DIGEST.search(image), f"{image} is not pinned by digest"
    updates = yaml.safe_load((ROOT / ".github" / "dependabot.yml").read_text())["updates"]
    assert {"package-ecosystem": "docker", "directory": "/"}.items() <= next(
        u for u in updates if u["package-ecosystem"] == "docker"
    ).items()


def test_the_bridge_is_compiled_once_and_every_target_installs_its_wheel() -> None:
    stages = dockerfile.stages()
    compiling = [name for name, stage in stages.items() if any("grpc-bridge" in run for run in stage["runs"])]
    assert compiling == ["bridge"]
    environment = (ROOT / "deploy" / "image" / "environment.sh").read_text()
    assert "--no-install-package fraudstream-grpc-bridge" in environment
    for target in TARGETS:
        [copied] = set(stages[target]["copy_from"])
        assert copied == f"{target}-environment"
        assert any("deploy/image/environment.sh " in run for run in dockerfile.runs(copied)), target
        assert "bridge" in {stage["copy_from"][0] for stage in dockerfile.lineage(copied) if stage["copy_from"]}
    # In the images workflow, the bridge's stage is built in a job of its own, whose cache the others read.
    jobs = images_workflow()["jobs"]
    bridge = next(step["with"] for step in jobs["bridge"]["steps"] if "build-push-action" in step.get("uses", ""))
    assert bridge["target"] == "bridge"
    assert "scope=bridge" in bridge["cache-to"]
    build = next(step["with"] for step in jobs["build"]["steps"] if "build-push-action" in step.get("uses", ""))
    assert "type=gha,scope=bridge" in build["cache-from"]
    assert jobs["build"]["needs"] == "bridge"


def test_the_gpu_target_has_cuda_and_onnxruntime_gpu_from_the_lock() -> None:
    stages = dockerfile.stages()
    gpu = stages["inference-gpu"]
    # The CUDA major the locked onnxruntime-gpu is built for, as its
    # onnxruntime.capi.build_and_package_info says, and cuDNN 9 beside it.
    assert gpu["base"].startswith("nvidia/cuda:13.")
    assert "-cudnn-runtime-" in gpu["base"]
    assert gpu["env"]["FRAUDSTREAM_DEVICE"] == "cuda"  # no silent fall back to the CPU
    assert any("environment.sh inference --extra gpu" in run for run in dockerfile.runs("inference-gpu-environment"))
    assert any("environment.sh inference --extra cpu" in run for run in dockerfile.runs("inference-environment"))
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    extras = {frozenset((item["package"], item["extra"]) for item in conflict) for conflict in lock["conflicts"]}
    assert frozenset({("fraudstream-inference", "cpu"), ("fraudstream-inference", "gpu")}) in extras
    [inference] = [p for p in lock["package"] if p["name"] == "fraudstream-inference"]
    optional = {extra: {d["name"] for d in deps} for extra, deps in inference["optional-dependencies"].items()}
    assert optional == {"cpu": {"onnxruntime"}, "gpu": {"onnxruntime-gpu"}}


def test_the_build_context_leaves_out_local_environments_and_builds() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", ".tools", ".platform", "libs/grpc-bridge/target"} <= ignored


def test_a_version_tag_pins_the_production_overlay_to_the_digests_it_pushed() -> None:
    jobs = images_workflow()["jobs"]
    pin = jobs["pin"]
    assert pin["needs"] == "build"
    assert "refs/tags/v" in pin["if"]
    script = next(step["run"] for step in pin["steps"] if "run" in step)
    assert "kustomize edit set image" in script
    assert "@$(cat" in script  # by digest, not by tag
    uploaded = next(step for step in jobs["build"]["steps"] if "upload-artifact" in step.get("uses", ""))
    assert uploaded["with"]["name"] == "digest-${{ matrix.target }}"
    production = yaml.safe_load((ROOT / "k8s" / "overlays" / "production" / "kustomization.yaml").read_text())
    for image in production["images"]:
        assert image["name"].removeprefix("fraudstream-") in TARGETS, image
