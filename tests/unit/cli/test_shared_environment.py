"""`fraudstream up` and `make demo` start every service with the shell's environment, so a
variable two services read must mean one thing to both: one default, unless the platform sets it
per process or it names the same knob tuned per service."""

from __future__ import annotations

from collections import defaultdict

from pydantic_settings import BaseSettings

from fraudstream_cli.platform.services import SERVICES, LocalService
from fraudstream_cli.platform.settings import PlatformSettings
from fraudstream_features.settings import FeaturesSettings
from fraudstream_inference.settings import InferenceSettings
from fraudstream_ingest.settings import IngestSettings
from fraudstream_monitor.settings import MonitorSettings
from fraudstream_trainer.settings import TrainerSettings

SETTINGS: dict[str, type[BaseSettings]] = {
    "ingest": IngestSettings,
    "features": FeaturesSettings,
    "trainer": TrainerSettings,
    "inference": InferenceSettings,
    "monitor": MonitorSettings,
}
# The size and wait of each service's own batches: one value set for all is one meaning.
TUNED_PER_SERVICE = {"batch_max_messages", "batch_max_wait_seconds"}


def test_every_service_is_checked() -> None:
    assert set(SETTINGS) == {spec.name for spec in SERVICES}


def test_a_variable_two_services_read_has_one_default() -> None:
    per_process = {
        name.removeprefix("FRAUDSTREAM_").lower()
        for spec in SERVICES
        for name in LocalService(spec, PlatformSettings()).environment()
    }
    defaults: dict[str, dict[str, str]] = defaultdict(dict)
    for service, settings in SETTINGS.items():
        for name, field in settings.model_fields.items():
            defaults[name][service] = repr(field.default_factory or field.default)
    differing = {
        name: by_service
        for name, by_service in defaults.items()
        if len(set(by_service.values())) > 1 and name not in per_process | TUNED_PER_SERVICE
    }
    assert differing == {}
