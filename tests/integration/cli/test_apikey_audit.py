"""`fraudstream apikey create`, `rotate` and `revoke` on the real platform: each act leaves a record on
the `audit` topic naming the key by its digest prefix, never the key; a key whose record
cannot be written is revoked again."""

from __future__ import annotations

import redis

from fraudstream_common.apikeys import digest_of, list_keys
from fraudstream_common.schemas.v1.audit_pb2 import AdminAction
from fraudstream_common.settings import DEVELOPMENT_API_KEY_SECRET
from fraudstream_common.topics import Topic
from tests.integration.cli.test_platform import fraudstream
from tests.platform import PLATFORM, Topics, drain, free_port


def test_creating_and_revoking_a_key_are_audited_without_the_key(topics: Topics) -> None:
    env = {"FRAUDSTREAM_TOPIC_PREFIX": topics.prefix, "FRAUDSTREAM_REDIS_URL": PLATFORM.redis_url}
    created = fraudstream("apikey", "create", "--scope", "admin", "--name", "it-ops", env=env)
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    rotated = fraudstream("apikey", "rotate", key, "--overlap-hours", "1", env=env)
    assert rotated.returncode == 0, rotated.stderr
    new_key = rotated.stdout.strip()
    revoked = fraudstream("apikey", "revoke", key, env=env)
    assert revoked.returncode == 0, revoked.stderr

    acts = [AdminAction.FromString(r.value) for r in drain(topics(Topic.AUDIT), expected=3)]
    assert [a.action for a in acts] == ["key_created", "key_rotated", "key_revoked"]
    assert all(a.actor.startswith("cli:") and a.origin == "cli" for a in acts)
    assert {a.details["key"] for a in acts} == {f"key:{digest_of(key)[:12]}"}
    assert acts[1].details["new_key"] == f"key:{digest_of(new_key)[:12]}"
    assert (acts[0].details["name"], acts[0].details["scopes"]) == ("it-ops", "admin")
    for secret in (key, new_key):
        assert not any(secret in a.SerializeToString().decode(errors="replace") for a in acts)
    client = redis.Redis.from_url(PLATFORM.redis_url)
    listed = {r.digest: r for r in list_keys(client, secret=DEVELOPMENT_API_KEY_SECRET, namespace=topics.prefix)}
    assert listed[digest_of(new_key)].name == "it-ops"
    assert listed[digest_of(new_key)].scopes == frozenset({"admin"})
    assert digest_of(key) not in listed


def test_a_key_whose_record_cannot_be_written_does_not_stay(topics: Topics) -> None:
    env = {
        "FRAUDSTREAM_TOPIC_PREFIX": topics.prefix,
        "FRAUDSTREAM_REDIS_URL": PLATFORM.redis_url,
        "FRAUDSTREAM_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",  # no broker there
    }
    created = fraudstream("apikey", "create", "--scope", "admin", "--name", "it-unaudited", env=env)
    assert created.returncode == 1
    assert "audit record was not written" in created.stderr
    assert "the key was revoked again" in created.stderr
    client = redis.Redis.from_url(PLATFORM.redis_url)
    names = [r.name for r in list_keys(client, secret=DEVELOPMENT_API_KEY_SECRET, namespace=topics.prefix)]
    assert "it-unaudited" not in names
