"""The audit log: every administrative act (an API key created or revoked, the retrain loop
paused or resumed, a forced retrain, a version promoted or rolled back), recorded once it took
effect on the `audit` topic: who, what, when, and on what. The ops console shows the latest.

A record names keys by their name and digest prefix, never the key. An act whose record the
broker did not acknowledge is reported to whoever asked for it as not audited.
"""

from __future__ import annotations

import getpass
import logging
import socket
import time
import uuid
from collections import deque
from collections.abc import Mapping
from datetime import UTC
from enum import StrEnum

from confluent_kafka import Producer
from google.protobuf.message import DecodeError

from fraudstream_common.deadletter import PROTOBUF_HEADERS
from fraudstream_common.kafka import AsyncProducer, DeliveryError, produce_acknowledged, producer_config
from fraudstream_common.schemas.v1.audit_pb2 import AdminAction
from fraudstream_common.settings import ServiceSettings
from fraudstream_common.stream import TopicFollower
from fraudstream_common.timestamps import timestamp_of
from fraudstream_common.topics import Topic, topic_name

log = logging.getLogger(__name__)


class Action(StrEnum):
    KEY_CREATED = "key_created"
    KEY_REVOKED = "key_revoked"
    KEY_ROTATED = "key_rotated"
    LOOP_PAUSED = "loop_paused"
    LOOP_RESUMED = "loop_resumed"
    RETRAIN_FORCED = "retrain_forced"
    VERSION_PROMOTED = "version_promoted"
    VERSION_ROLLED_BACK = "version_rolled_back"


class NotAuditedError(Exception):
    """The act took effect, but its record was not acknowledged by the broker."""


def admin_action(action: Action, actor: str, details: Mapping[str, str], origin: str) -> AdminAction:
    return AdminAction(
        action_id=uuid.uuid4().hex,
        action=action.value,
        actor=actor,
        details=dict(details),
        at=timestamp_of(time.time()),
        origin=origin,
    )


def _logged(record: AdminAction) -> AdminAction:
    log.info(
        "admin action: %s by %s",
        record.action,
        record.actor,
        extra={"action_id": record.action_id, "details": dict(record.details), "origin": record.origin},
    )
    return record


class AuditLog:
    """A service's audit log, on its own async producer."""

    def __init__(self, producer: AsyncProducer, topic: str, origin: str) -> None:
        self._producer = producer
        self._topic = topic
        self._origin = origin

    async def record(self, action: Action, actor: str, **details: str) -> AdminAction:
        entry = admin_action(action, actor, details, self._origin)
        try:
            await self._producer.produce(
                self._topic, entry.SerializeToString(), action.value.encode(), PROTOBUF_HEADERS
            )
        except Exception as exc:
            raise NotAuditedError(f"{action.value} done, but its audit record was not written: {exc}") from exc
        return _logged(entry)


def command_line_actor() -> str:
    return f"cli:{getpass.getuser()}@{socket.gethostname()}"


def record_from_command_line(
    settings: ServiceSettings, action: Action, details: Mapping[str, str], *, timeout: float = 10.0
) -> AdminAction:
    """Writes the record of an act done by a command, waiting for the broker's acknowledgement."""
    entry = admin_action(action, command_line_actor(), details, "cli")
    producer = Producer(producer_config(settings, client_id="fraudstream-cli-audit"))
    topic = topic_name(Topic.AUDIT, settings.topic_prefix)
    try:
        produce_acknowledged(
            producer, topic, entry.SerializeToString(), action.value.encode(), PROTOBUF_HEADERS, timeout
        )
    except DeliveryError as exc:
        raise NotAuditedError(f"{action.value} done, but its audit record was not written: {exc}") from exc
    return _logged(entry)


class AuditTrail(TopicFollower):
    """The latest administrative acts, read from the whole audit topic, for the ops console."""

    def __init__(self, settings: ServiceSettings, *, client_id: str, keep: int = 50) -> None:
        super().__init__(settings, topic_name(Topic.AUDIT, settings.topic_prefix), client_id=client_id)
        self._keep = keep
        self._latest: deque[dict[str, object]] = deque(maxlen=keep)
        self._seen: set[str] = set()

    def latest(self) -> list[dict[str, object]]:
        """Newest first: action, actor, details, at (ISO 8601), origin."""
        return list(reversed(self._latest))

    def _caught_up(self, values: list[bytes]) -> None:
        for value in values[-self._keep :]:
            self._follow(value)

    def _follow(self, value: bytes) -> None:
        try:
            entry = AdminAction.FromString(value)
        except DecodeError:
            log.warning("audit: a record that is not an AdminAction was skipped")
            return
        if entry.action_id in self._seen:
            return
        self._seen.add(entry.action_id)
        self._latest.append(
            {
                "action": entry.action,
                "actor": entry.actor,
                "details": dict(entry.details),
                "at": entry.at.ToDatetime(tzinfo=UTC).isoformat(),
                "origin": entry.origin,
            }
        )
