"""A Kafka broker and a Redis server that ask what managed offerings ask: Kafka on a SASL_SSL
listener (SCRAM-SHA-512) with ACLs enforced, Redis on TLS with an ACL user; with certificates
made here, for 127.0.0.1."""

from __future__ import annotations

import datetime
import ipaddress
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AdminClient,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialAlteration,
    UserScramCredentialUpsertion,
)
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from fraudstream_cli.platform.acls import acl_bindings, kafka_user
from fraudstream_cli.platform.kafka import KafkaBroker, ensure_topics, find_java, format_storage
from fraudstream_cli.platform.settings import PlatformSettings
from fraudstream_common.topics import Writer
from tests.platform import free_port, wait_for_redis


@dataclass(frozen=True)
class Certificates:
    ca: Path
    certificate: Path
    key: Path
    # Key and chain in one PEM file, as Kafka's PEM keystore reads them.
    keystore: Path


def make_certificates(directory: Path) -> Certificates:
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fraudstream test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    paths = Certificates(
        directory / "ca.pem", directory / "server.crt", directory / "server.key", directory / "keystore.pem"
    )
    paths.ca.write_bytes(ca.public_bytes(pem))
    paths.certificate.write_bytes(certificate.public_bytes(pem))
    paths.key.write_bytes(key_pem)
    paths.keystore.write_bytes(key_pem + certificate.public_bytes(pem) + ca.public_bytes(pem))
    return paths


@dataclass
class SecuredKafka:
    """One KRaft node. Clients use the SASL_SSL listener; the test itself administers the
    broker on a loopback PLAINTEXT listener whose anonymous principal is the super user."""

    directory: Path
    certificates: Certificates
    port: int = field(default_factory=free_port)
    internal_port: int = field(default_factory=free_port)
    controller_port: int = field(default_factory=free_port)
    passwords: dict[Writer, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def admin(self) -> AdminClient:
        return AdminClient({"bootstrap.servers": f"127.0.0.1:{self.internal_port}", "log_level": 0})

    def client_settings(self, writer: Writer) -> dict[str, str]:
        """The FRAUDSTREAM_ settings of a client connecting as `writer`'s user."""
        return {
            "FRAUDSTREAM_KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "FRAUDSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "FRAUDSTREAM_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "FRAUDSTREAM_KAFKA_SASL_USERNAME": kafka_user(writer),
            "FRAUDSTREAM_KAFKA_SASL_PASSWORD": self.passwords[writer],
            "FRAUDSTREAM_KAFKA_SSL_CA_LOCATION": str(self.certificates.ca),
        }

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        properties = self.directory / "server.properties"
        properties.write_text(self._properties())
        java = find_java()
        classpath = f"{KafkaBroker(PlatformSettings()).ensure_jars()}/*"
        format_storage(java, classpath, properties)
        log = (self.directory / "kafka.log").open("wb")
        self.process = subprocess.Popen(
            [java, "-Xmx512m", "-cp", classpath, "kafka.Kafka", str(properties)], stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 90
        while True:
            assert self.process.poll() is None, f"the secured broker exited; see {self.directory / 'kafka.log'}"
            try:
                self.admin().list_topics(timeout=2)
                break
            except KafkaException:
                assert time.monotonic() < deadline, f"the secured broker did not start; see {self.directory}"
                time.sleep(0.5)
        ensure_topics({"bootstrap.servers": f"127.0.0.1:{self.internal_port}"})
        self._add_users()

    def _add_users(self) -> None:
        admin = self.admin()
        self.passwords = {writer: f"{writer.value}-{free_port()}-secret" for writer in Writer}
        upserts: list[UserScramCredentialAlteration] = [
            UserScramCredentialUpsertion(
                kafka_user(writer), ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096), password.encode()
            )
            for writer, password in self.passwords.items()
        ]
        for future in admin.alter_user_scram_credentials(upserts).values():
            future.result()
        bindings = [binding for writer in Writer for binding in acl_bindings(writer)]
        for future in admin.create_acls(bindings).values():
            future.result()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def _properties(self) -> str:
        c = self.certificates
        return "\n".join(
            [
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
                f"listeners=SASL_SSL://127.0.0.1:{self.port},INTERNAL://127.0.0.1:{self.internal_port},"
                f"CONTROLLER://127.0.0.1:{self.controller_port}",
                f"advertised.listeners=SASL_SSL://127.0.0.1:{self.port},INTERNAL://127.0.0.1:{self.internal_port}",
                "controller.listener.names=CONTROLLER",
                "listener.security.protocol.map=SASL_SSL:SASL_SSL,INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT",
                "inter.broker.listener.name=INTERNAL",
                "sasl.enabled.mechanisms=SCRAM-SHA-512",
                "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config="
                "org.apache.kafka.common.security.scram.ScramLoginModule required;",
                "ssl.keystore.type=PEM",
                f"ssl.keystore.location={c.keystore}",
                "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                "super.users=User:ANONYMOUS",
                "allow.everyone.if.no.acl.found=false",
                f"log.dirs={self.directory / 'data'}",
                "auto.create.topics.enable=false",
                "offsets.topic.replication.factor=1",
                "offsets.topic.num.partitions=4",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "transaction.state.log.num.partitions=4",
                "share.coordinator.state.topic.replication.factor=1",
                "share.coordinator.state.topic.min.isr=1",
                "group.initial.rebalance.delay.ms=0",
                "",
            ]
        )


@dataclass
class TlsRedis:
    """redis-server on TLS only, its default user off and one ACL user with a password."""

    directory: Path
    certificates: Certificates
    port: int = field(default_factory=free_port)
    password: str = "redis-test-secret"
    process: subprocess.Popen[bytes] | None = None

    def url(self, database: int) -> str:
        return (
            f"rediss://fraudstream:{self.password}@127.0.0.1:{self.port}/{database}?ssl_ca_certs={self.certificates.ca}"
        )

    def start(self) -> None:
        """Starts the server; on a port taken since it was chosen (a Kafka client's ephemeral
        port, say: CI saw it), again on another."""
        for _ in range(3):
            process = self._start()
            try:
                wait_for_redis(self.url(0), process)
                return
            except AssertionError:
                if "Address already in use" not in (self.directory / "redis.log").read_text():
                    raise
                self.port = free_port()
        raise AssertionError(f"redis-server found no free port: {(self.directory / 'redis.log').read_text()[-500:]}")

    def _start(self) -> subprocess.Popen[bytes]:
        self.directory.mkdir(parents=True, exist_ok=True)
        c = self.certificates
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                "0",
                "--tls-port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--tls-cert-file",
                str(c.certificate),
                "--tls-key-file",
                str(c.key),
                "--tls-ca-cert-file",
                str(c.ca),
                "--tls-auth-clients",
                "no",
                "--dir",
                str(self.directory),
                "--save",
                "",
                "--user",
                "default",
                "off",
                "--user",
                "fraudstream",
                "on",
                f">{self.password}",
                "~*",
                "&*",
                "+@all",
            ],
            stdout=(self.directory / "redis.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        return self.process

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
