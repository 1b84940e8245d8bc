"""`dvc repro` runs the offline chain (simulate -> backfill -> train, evaluate) as dvc.yaml
writes it, on a small world: every stage's data hashed in dvc.lock, the model trained through
Feast into the real MLflow server, the evaluation's figures, and nothing rerun the second time."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from tests.platform import PLATFORM

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]


def dvc(directory: Path, *args: str) -> str:
    bin_dir = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "FRAUDSTREAM_MLFLOW_TRACKING_URI": PLATFORM.mlflow_url,
        "FRAUDSTREAM_N_ESTIMATORS": "50",  # the selection's trees are more than a small world needs
    }
    result = subprocess.run(
        [f"{bin_dir}/dvc", *args], cwd=directory, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_dvc_repro_reproduces_the_offline_chain(tmp_path: Path) -> None:
    # The repository's dvc.yaml, with its code paths, and small parameters of our own.
    for code in ("tools", "libs", "services"):
        (tmp_path / code).symlink_to(ROOT / code)
    shutil.copy(ROOT / "dvc.yaml", tmp_path / "dvc.yaml")
    name = f"dvc-{uuid.uuid4().hex[:8]}"
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["simulate"].update(days=60, customers=600, terminals=1200)
    params["train"].update(registered_model=name, experiment=name, min_rows=3000)
    params["evaluate"].update(train_start="2018-05-10", folds=2)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    dvc(tmp_path, "init", "--no-scm", "-q")

    dvc(tmp_path, "repro")

    lock = yaml.safe_load((tmp_path / "dvc.lock").read_text())
    assert set(lock["stages"]) == {"simulate", "backfill", "train", "evaluate"}
    history = lock["stages"]["simulate"]["outs"][0]
    assert history["path"] == "data/history"
    assert history["md5"].endswith(".dir")
    trained_on = {dep["path"]: dep for dep in lock["stages"]["train"]["deps"]}
    assert trained_on["data/history"]["md5"] == history["md5"]
    assert trained_on["data/feast"]["md5"] == lock["stages"]["backfill"]["outs"][0]["md5"]

    trained = json.loads((tmp_path / "metrics" / "train.json").read_text())
    assert trained["outcome"] == "promoted"
    assert trained["version"] == "1"
    assert trained["published"] is False
    assert 0.5 < trained["metrics"]["auc_roc"] <= 1
    evaluated = json.loads((tmp_path / "metrics" / "evaluate.json").read_text())
    assert len(evaluated["folds"]) == 2
    assert {"auc_roc", "average_precision", "card_precision_at_100"} <= set(evaluated)

    assert "Data and pipelines are up to date." in dvc(tmp_path, "repro")
