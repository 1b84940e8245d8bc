"""Render the configuration reference in docs/configuration.md from the settings classes, or check it.

uv run python scripts/settings_reference.py           # rewrite the reference
uv run python scripts/settings_reference.py --check   # exit 1 when it is out of date
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pydantic import BaseModel

from fraudstream_cli.platform.settings import PlatformSettings
from fraudstream_common.settings import ServiceSettings
from fraudstream_common.topics import TOPIC_SPECS
from fraudstream_feature_store.settings import FeatureStoreSettings
from fraudstream_features.settings import FeaturesSettings
from fraudstream_inference.settings import InferenceSettings
from fraudstream_ingest.settings import IngestSettings
from fraudstream_monitor.settings import MonitorSettings
from fraudstream_trainer.settings import TrainerSettings

REFERENCE = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"
BEGIN, END = "<!-- settings:begin -->", "<!-- settings:end -->"
# (title, settings, the settings it inherits and that another section lists)
SECTIONS: list[tuple[str, type[BaseModel], tuple[type[BaseModel], ...]]] = [
    ("Every service", ServiceSettings, ()),
    ("ingest", IngestSettings, (ServiceSettings,)),
    ("features", FeaturesSettings, (ServiceSettings, FeatureStoreSettings)),
    ("trainer", TrainerSettings, (ServiceSettings, FeatureStoreSettings)),
    ("inference", InferenceSettings, (ServiceSettings, FeatureStoreSettings)),
    ("monitor", MonitorSettings, (ServiceSettings,)),
    ("Feature store (every service that reads or writes features)", FeatureStoreSettings, ()),
    ("Local platform (`fraudstream platform`, `fraudstream up`)", PlatformSettings, ()),
]


def render() -> str:
    lines = [BEGIN, ""]
    for title, settings, bases in SECTIONS:
        lines += [f"**{title}**", "", "| variable | default | meaning |", "| --- | --- | --- |"]
        inherited = {name for base in bases for name in base.model_fields}
        for name, field in settings.model_fields.items():
            if name in inherited:
                continue
            if field.default_factory is not None:
                default = "`.platform` in the repository"
            elif field.default == "":
                default = "(empty)"
            else:
                default = f"`{field.default}`"
            lines.append(f"| `FRAUDSTREAM_{name.upper()}` | {default} | {field.description} |")
        lines.append("")
    lines += [
        "**Topics** (each name takes `FRAUDSTREAM_TOPIC_PREFIX` in front; on a cluster with ACLs only its",
        "writers may write to a topic: see k8s/overlays/dev/kafka-users.yaml)",
        "",
        "| topic | partitions | key | writers |",
        "| --- | --- | --- | --- |",
    ]
    lines += [
        f"| `{s.topic.value}` | {f'`FRAUDSTREAM_STREAM_PARTITIONS` ({s.partitions})' if s.scales else s.partitions} "
        f"| {s.key} | {', '.join(sorted(w.value for w in s.writers))} |"
        for s in TOPIC_SPECS
    ]
    lines += ["", END]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    text = REFERENCE.read_text()
    start, end = text.index(BEGIN), text.index(END) + len(END)
    updated = text[:start] + render() + text[end:]
    if args.check:
        if updated != text:
            print("docs/configuration.md is out of date: run `make docs`", file=sys.stderr)
            return 1
        print("docs/configuration.md is current")
        return 0
    REFERENCE.write_text(updated)
    return 0


if __name__ == "__main__":
    sys.exit(main())
