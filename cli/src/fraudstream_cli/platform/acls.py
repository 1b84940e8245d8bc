"""Kafka users and ACLs on a cluster that authorises: one user per writer of the topics table
(fraudstream_common.topics.Writer), each allowed to write only the topics the table gives it.

Every user but the producers' may also read any topic, and use the consumer groups and
transactional ids that begin with its name (the services name theirs after themselves, and
their replicas after their pods); the operators' user (the topics job and the command line)
may create and configure topics. The Kubernetes dev overlay renders these as Strimzi
KafkaUsers (scripts/k8s_resources.py); `acl_bindings` gives them to any cluster's admin API.
"""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka.admin import AclBinding, AclOperation, AclPermissionType, ResourcePatternType, ResourceType

from fraudstream_common.topics import TOPIC_SPECS, Writer

# The names its consumer groups and transactional ids begin with.
NAME_PREFIXES = {writer: writer.value for writer in Writer} | {Writer.ADMIN: "fraudstream-cli"}
CLUSTER = "kafka-cluster"


@dataclass(frozen=True)
class Acl:
    """Operations allowed on a resource (Strimzi's and Kafka's names: topic, group,
    transactionalId, cluster; literal or prefix)."""

    resource: str
    name: str
    operations: tuple[str, ...]
    pattern: str = "literal"


def kafka_user(writer: Writer) -> str:
    return f"fraudstream-{writer.value}"


def acls(writer: Writer) -> list[Acl]:
    prefix = NAME_PREFIXES[writer]
    rules = [Acl("topic", spec.topic.value, ("Write", "Describe")) for spec in TOPIC_SPECS if writer in spec.writers]
    if writer is Writer.PRODUCER:
        return rules
    rules += [
        Acl("topic", "*", ("Read", "Describe", "DescribeConfigs")),
        Acl("group", prefix, ("Read", "Describe"), "prefix"),
        Acl("transactionalId", prefix, ("Write", "Describe"), "prefix"),
    ]
    if writer is Writer.ADMIN:
        rules += [Acl("topic", "*", ("Create", "AlterConfigs")), Acl("cluster", CLUSTER, ("Describe",))]
    return rules


_RESOURCE_TYPES = {
    "topic": ResourceType.TOPIC,
    "group": ResourceType.GROUP,
    "transactionalId": ResourceType.TRANSACTIONAL_ID,
    "cluster": ResourceType.BROKER,
}
_PATTERNS = {"literal": ResourcePatternType.LITERAL, "prefix": ResourcePatternType.PREFIXED}
_OPERATIONS = {
    "Read": AclOperation.READ,
    "Write": AclOperation.WRITE,
    "Create": AclOperation.CREATE,
    "Describe": AclOperation.DESCRIBE,
    "DescribeConfigs": AclOperation.DESCRIBE_CONFIGS,
    "AlterConfigs": AclOperation.ALTER_CONFIGS,
}


def acl_bindings(writer: Writer, prefix: str = "") -> list[AclBinding]:
    """The ACLs of `writer`'s user for a cluster's admin API, for a deployment whose topics and
    consumer groups take `prefix` (FRAUDSTREAM_TOPIC_PREFIX; transactional ids do not)."""
    return [
        AclBinding(
            _RESOURCE_TYPES[acl.resource],
            f"{prefix}{acl.name}" if acl.resource in ("topic", "group") and acl.name != "*" else acl.name,
            _PATTERNS[acl.pattern],
            f"User:{kafka_user(writer)}",
            "*",
            _OPERATIONS[operation],
            AclPermissionType.ALLOW,
        )
        for acl in acls(writer)
        for operation in acl.operations
    ]
