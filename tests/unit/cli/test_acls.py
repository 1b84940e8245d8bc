"""The Kafka ACLs of each writer, as a cluster's admin API takes them."""

from __future__ import annotations

from confluent_kafka.admin import AclOperation, ResourcePatternType, ResourceType

from fraudstream_cli.platform.acls import acl_bindings
from fraudstream_common.topics import TOPIC_SPECS, Writer


def test_a_writer_may_write_only_its_topics_under_the_deployments_prefix() -> None:
    bindings = acl_bindings(Writer.FEATURES, prefix="eu.")
    written = {b.name for b in bindings if b.restype is ResourceType.TOPIC and b.operation is AclOperation.WRITE}
    assert written == {f"eu.{s.topic.value}" for s in TOPIC_SPECS if Writer.FEATURES in s.writers}
    assert {b.principal for b in bindings} == {"User:fraudstream-features"}


def test_groups_take_the_prefix_and_transactional_ids_do_not() -> None:
    bindings = acl_bindings(Writer.MONITOR, prefix="eu.")
    groups = {b.name for b in bindings if b.restype is ResourceType.GROUP}
    transactional = {b.name for b in bindings if b.restype is ResourceType.TRANSACTIONAL_ID}
    assert groups == {"eu.monitor"}
    assert transactional == {"monitor"}
    assert all(
        b.resource_pattern_type is ResourcePatternType.PREFIXED
        for b in bindings
        if b.restype in (ResourceType.GROUP, ResourceType.TRANSACTIONAL_ID)
    )


def test_the_producers_may_only_write_what_they_send() -> None:
    bindings = acl_bindings(Writer.PRODUCER)
    assert {(b.name, b.operation) for b in bindings} == {
        ("transactions.raw", AclOperation.WRITE),
        ("transactions.raw", AclOperation.DESCRIBE),
        ("labels", AclOperation.WRITE),
        ("labels", AclOperation.DESCRIBE),
    }
