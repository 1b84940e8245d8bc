"""The retrain requests already on `retrain.requests`, followed from the topic's start: what a
monitor asked before it restarted (or before the judging moved to it) is listed in its console
again, and the cooldown of the last request holds across the restart."""

from __future__ import annotations

import logging

from google.protobuf.message import DecodeError

from fraudstream_common.schemas.v1.monitoring_pb2 import RetrainRequest
from fraudstream_common.stream import TopicFollower
from fraudstream_monitor.core import MonitorCore
from fraudstream_monitor.settings import MonitorSettings

logger = logging.getLogger(__name__)


class SentRequestsFollower(TopicFollower):
    """Hands every request on the topic to the core (`MonitorCore.sent`); ready once it has read
    what was there."""

    name = "requests-follower"

    def __init__(self, settings: MonitorSettings, core: MonitorCore, topic: str) -> None:
        super().__init__(settings, topic, client_id=f"{settings.instance_id}-requests")
        self._core = core

    def _follow(self, value: bytes) -> None:
        try:
            request = RetrainRequest.FromString(value)
        except DecodeError:
            logger.error("undecodable retrain.requests record skipped")
            return
        self._core.sent(request)
