"""The `fraudstream` command."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from fraudstream_cli.platform.manager import Platform, Status
from fraudstream_cli.platform.processes import PlatformError
from fraudstream_cli.platform.services import parse_replicas
from fraudstream_cli.platform.settings import PlatformSettings
from fraudstream_simulator.config import DriftSpec

if TYPE_CHECKING:
    from confluent_kafka import Consumer
    from confluent_kafka.admin import AdminClient

    from fraudstream_common.settings import ServiceSettings

app = typer.Typer(help="fraudstream: a real-time fraud model kept alive in production.", no_args_is_help=True)
platform_app = typer.Typer(
    help="The local platform: Kafka (KRaft), Redis, MLflow, as local processes.",
    no_args_is_help=True,
)
app.add_typer(platform_app, name="platform")
features_app = typer.Typer(
    help="Features: one definition for the stream, the backfill and scoring.", no_args_is_help=True
)
app.add_typer(features_app, name="features")


def _platform(replicas: Mapping[str, int] | None = None) -> Platform:
    return Platform(PlatformSettings(), replicas)


def _say(line: str) -> None:
    typer.echo(line)


def _fail(error: Exception) -> None:
    typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


def _require(modules: list[str], how: str) -> None:
    """Fails, naming the modules and `how` to install them, unless all can be imported."""
    import importlib.util

    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        _fail(ModuleNotFoundError(f"{', '.join(missing)} not installed: {how}"))


def _print_status(rows: list[Status]) -> None:
    # As wide as the longest name ("inference-1" with replicas), and a space at the least.
    width = max([len("part"), *(len(row.name) for row in rows)]) + 2
    typer.echo(f"{'part':<{width}}{'state':<10}{'pid':<9}{'port':<7}detail")
    for row in rows:
        state = "running" if row.running else ("foreign" if row.port_open else "stopped")
        detail = row.detail or ("port taken by another process" if state == "foreign" else "")
        typer.echo(f"{row.name:<{width}}{state:<10}{row.pid or '-'!s:<9}{row.port:<7}{detail}")


@platform_app.command("up")
def platform_up() -> None:
    """Start Kafka, Redis and MLflow (idempotent) and create every topic."""
    try:
        _platform().up(_say)
    except PlatformError as error:
        _fail(error)


@platform_app.command("down")
def platform_down() -> None:
    """Stop the platform's processes (their data stays in the platform folder)."""
    try:
        _platform().down(_say)
    except PlatformError as error:
        _fail(error)


@platform_app.command("status")
def platform_status() -> None:
    """Show which parts of the platform run."""
    rows = _platform().status(with_services=False)
    _print_status(rows)
    if not all(r.running for r in rows):
        raise typer.Exit(3)


@platform_app.command("feast-apply")
def platform_feast_apply() -> None:
    """Register fraudstream's Feast repository in any deployment's registry (compose and
    Kubernetes run this once), from FRAUDSTREAM_FEATURE_* variables."""
    from fraudstream_common.settings import ServiceSettings
    from fraudstream_feature_store.settings import FeatureStoreSettings
    from fraudstream_feature_store.store import apply_repository

    class Settings(ServiceSettings, FeatureStoreSettings):
        pass

    settings = Settings()
    apply_repository(settings.feature_store_redis_url, settings.feature_registry, settings.feature_offline_dir)
    typer.echo(f"feast repository applied: registry {settings.feature_registry}")


@platform_app.command("topics")
def platform_topics(
    bootstrap_servers: Annotated[
        str, typer.Option(envvar="FRAUDSTREAM_KAFKA_BOOTSTRAP_SERVERS", help="Any Kafka cluster.")
    ] = "127.0.0.1:9092",
    topic_prefix: Annotated[str, typer.Option(envvar="FRAUDSTREAM_TOPIC_PREFIX", help="Topic name prefix.")] = "",
    stream_partitions: Annotated[
        int,
        typer.Option(
            envvar="FRAUDSTREAM_STREAM_PARTITIONS",
            min=1,
            help="Partitions of each shared stream: the most replicas of a stage that all have work.",
        ),
    ] = 4,
) -> None:
    """Create fraudstream's topics on any Kafka cluster (compose and Kubernetes run this once);
    TLS and SASL from the FRAUDSTREAM_KAFKA_* settings the services take."""
    from fraudstream_cli.platform.kafka import ensure_topics
    from fraudstream_common.settings import ServiceSettings

    try:
        client = ServiceSettings(kafka_bootstrap_servers=bootstrap_servers).kafka_client_config()
        created = ensure_topics(client, topic_prefix, stream_partitions=stream_partitions)
    except (PlatformError, ValueError) as error:  # ValueError: settings that cannot work together
        _fail(error)
        return
    typer.echo(f"{len(created)} topics created" + (f": {', '.join(created)}" if created else ", all present"))


@app.command("up")
def up(
    replicas: Annotated[
        list[str] | None,
        typer.Option(
            help="SERVICE=N, or several joined by commas: replicas of a scalable service (ingest, features, "
            "inference, monitor), e.g. --replicas features=2,monitor=2."
        ),
    ] = None,
) -> None:
    """Start the platform and every fraudstream service."""
    try:
        platform = _platform(parse_replicas(replicas or []))
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--replicas") from error
    try:
        platform.up(_say)
        platform.services_up(_say)
    except PlatformError as error:
        _fail(error)


@app.command("down")
def down(
    delete_data: Annotated[
        bool,
        typer.Option(
            "--delete-data",
            help="Then delete what they wrote: topics, stores, models, logs (not the downloads in the platform "
            "folder's cache).",
        ),
    ] = False,
) -> None:
    """Stop every fraudstream service, then the platform."""
    platform = _platform()
    try:
        platform.services_down(_say)
        platform.down(_say)
        if delete_data:
            platform.delete_data(_say)
    except PlatformError as error:
        _fail(error)


@app.command("status")
def status() -> None:
    """Show the platform's parts and the services, with their readiness."""
    rows = _platform().status(with_services=True)
    _print_status(rows)
    if not all(r.running for r in rows):
        raise typer.Exit(3)


@app.command("watch")
def watch(
    console: Annotated[str, typer.Option(help="The ops console (the monitor's HTTP).")] = "http://127.0.0.1:8082",
    interval: Annotated[float, typer.Option(min=0.5, help="Seconds between two lines.")] = 10.0,
    while_pid: Annotated[
        int | None, typer.Option(help="Stop, and print the report, once this process (the simulator) has exited.")
    ] = None,
    report_file: Annotated[Path | None, typer.Option(help="Also write the final report here.")] = None,
    drift: Annotated[
        str | None,
        typer.Option(help="The simulator's drift (NAME:DAY): the report then judges whether quality came back."),
    ] = None,
    start_date: Annotated[str, typer.Option(help="The simulator's first day (UTC), for --drift.")] = "2018-04-01",
) -> None:
    """Follow the loop from the ops console: a line per interval (simulated time, traffic,
    versions serving, alerts, requests, the trainer's last run, and the services of this
    machine's `fraudstream up` that have stopped), then a report of what it did (when the
    process given exits, or on Ctrl-C)."""
    from fraudstream_cli.watch import fetch, report, status_line

    drift_start = None
    if drift is not None:
        try:
            spec = DriftSpec.parse(drift)
        except ValueError as error:
            _fail(error)
            return
        drift_start = spec.starts_at(datetime.strptime(start_date, "%Y-%m-%d").replace(tzinfo=UTC)).timestamp()

    try:
        while True:
            typer.echo(status_line(fetch(console), time.time(), _stopped_services()))
            if while_pid is not None and not _alive(while_pid):
                break
            time.sleep(interval)
    except KeyboardInterrupt:
        pass
    final = fetch(console)
    if final is None:
        _fail(ConnectionError(f"the console at {console} does not answer: no report"))
        return
    text = report(final, drift_start)
    typer.echo(text)
    if report_file is not None:
        report_file.write_text(text + "\n")


def _stopped_services() -> list[str]:
    """The services `fraudstream up` runs on this machine that are not running; none where it
    runs none (a console watched from elsewhere)."""
    pids = _platform().service_pids()
    return [name for name, pid in pids.items() if pid is None] if any(pids.values()) else []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@app.command("simulate")
def simulate(
    days: Annotated[int, typer.Option(help="Simulated days.")] = 183,
    customers: Annotated[int, typer.Option(help="Number of customers.")] = 5000,
    terminals: Annotated[int, typer.Option(help="Number of terminals.")] = 10000,
    start_date: Annotated[str, typer.Option(help="First simulated day (UTC).")] = "2018-04-01",
    seed: Annotated[int, typer.Option(help="0 reproduces the handbook's data set exactly.")] = 0,
    drift: Annotated[
        list[str] | None,
        typer.Option(help="Drift scenario NAME:DAY (new-fraud-pattern, amount-shift, new-terminals); repeatable."),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Write parquet files to this folder instead of Kafka.")] = None,
    to_kafka: Annotated[bool, typer.Option("--kafka/--no-kafka", help="Replay to Kafka.")] = True,
    speedup: Annotated[float | None, typer.Option(help="Simulated seconds per wall-clock second.")] = None,
    rate: Annotated[float | None, typer.Option(help="Transactions per wall-clock second.")] = None,
    limit: Annotated[int | None, typer.Option(help="Replay only the first N transactions.")] = None,
    history_days: Annotated[
        float, typer.Option(min=0, help="Replay the first N days as fast as possible (a history), then pace the rest.")
    ] = 0.0,
    raw_format: Annotated[
        str, typer.Option("--format", help="Encoding on transactions.raw: json or protobuf.")
    ] = "protobuf",
    labels: Annotated[bool, typer.Option("--labels/--no-labels", help="Also emit delayed fraud labels.")] = True,
    run_id: Annotated[
        str, typer.Option(help="Prefix for transaction ids on Kafka, so a replay of the same world is not a duplicate.")
    ] = "",
    wait_for_model: Annotated[
        float,
        typer.Option(
            min=0,
            help="After the history, wait up to this many seconds for a model on models.published, and for the "
            "stages up to predictions to catch up with the history, before pacing the rest (0: do not wait).",
        ),
    ] = 0.0,
) -> None:
    """Simulate card transactions with known frauds (Fraud Detection Handbook rules), to Kafka or parquet.

    Without --speedup or --rate the replay goes as fast as it can.
    """
    from fraudstream_common.settings import ServiceSettings
    from fraudstream_simulator.config import SimulationConfig
    from fraudstream_simulator.simulation import simulate as run_simulation
    from fraudstream_simulator.sinks import (
        Pacing,
        RawFormat,
        ReplayStats,
        replay_to_kafka,
        write_parquet,
    )

    try:
        drifts = tuple(DriftSpec.parse(text) for text in (drift or []))
        config = SimulationConfig(
            n_customers=customers,
            n_terminals=terminals,
            nb_days=days,
            start_date=datetime.strptime(start_date, "%Y-%m-%d").replace(tzinfo=UTC),
            seed=seed,
            drifts=drifts,
        )
        pacing = Pacing(speedup=speedup, rate=rate, fast_days=history_days)
        encoding = RawFormat(raw_format)
    except ValueError as error:
        _fail(error)
        return
    typer.echo(
        f"simulating {days} days, {customers} customers, {terminals} terminals (seed {seed})...",
        err=True,
    )
    result = run_simulation(config)
    frauds = int(result.transactions["is_fraud"].sum())
    typer.echo(
        f"{len(result.transactions)} transactions, {frauds} frauds ({frauds / max(len(result.transactions), 1):.3%})",
        err=True,
    )
    if out is not None:
        write_parquet(result, out)
        typer.echo(f"wrote parquet to {out}", err=True)
        return
    if not to_kafka:
        return

    def progress(stats: ReplayStats) -> None:
        typer.echo(
            f"  {stats.transactions} transactions, {stats.labels} labels, {stats.seconds:.0f}s",
            err=True,
        )

    try:
        stats = replay_to_kafka(
            result,
            ServiceSettings(),
            pacing=pacing,
            raw_format=encoding,
            limit=limit,
            include_labels=labels,
            progress=progress,
            run_id=run_id,
            after_history=(lambda: _await_a_model(ServiceSettings(), wait_for_model)) if wait_for_model else None,
        )
    except (RuntimeError, TimeoutError) as error:
        _fail(error)
        return
    typer.echo(f"replayed {stats.transactions} transactions and {stats.labels} labels in {stats.seconds:.1f}s")


def _await_a_model(settings: ServiceSettings, timeout: float) -> None:
    """Returns once `models.published` holds a version (TimeoutError after `timeout` seconds)."""
    from fraudstream_common.kafka import usable, whole_topic_reader
    from fraudstream_common.topics import Topic, topic_name

    topic = topic_name(Topic.MODELS_PUBLISHED, settings.topic_prefix)
    typer.echo(f"history replayed; waiting for a first model on {topic}...", err=True)
    consumer, _partitions = whole_topic_reader(settings, topic, client_id="simulator-wait")
    started = time.monotonic()
    try:
        while time.monotonic() - started < timeout:
            if any(usable(message) for message in consumer.consume(100, timeout=1.0)):
                typer.echo(f"a model is published after {time.monotonic() - started:.0f}s", err=True)
                _await_caught_up(settings, timeout - (time.monotonic() - started))
                return
    finally:
        consumer.close()
    raise TimeoutError(f"no model published on {topic} within {timeout:.0f}s")


# The consumer groups between transactions.raw and predictions.
PREDICTION_PATH_GROUPS = ("ingest", "features-", "inference")


def _await_caught_up(settings: ServiceSettings, timeout: float, most_behind: int = 2000) -> None:
    """Returns once every consumer group on the way to predictions is at most `most_behind`
    messages behind its input (TimeoutError after `timeout` seconds). A first model scores the
    backlog that waited for it; paced traffic beside that backlog would reach the monitor days
    out of order, further than its hours wait."""
    from confluent_kafka import Consumer, ConsumerGroupState
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(settings.kafka_client_config())
    watermarks = Consumer({**settings.kafka_client_config(), "group.id": "simulator-caught-up"})
    started = time.monotonic()
    behind = -1
    try:
        while time.monotonic() - started < timeout:
            stable = [
                g.group_id.removeprefix(settings.topic_prefix)
                for g in admin.list_consumer_groups().result(timeout=30).valid
                # A group no member runs is no stage.
                if g.group_id.startswith(settings.topic_prefix) and g.state == ConsumerGroupState.STABLE
            ]
            groups = [g for g in stable if g.startswith(PREDICTION_PATH_GROUPS) and not g.endswith("-offline")]
            behind = _messages_behind(admin, watermarks, [settings.topic_prefix + g for g in groups])
            if all(any(g.startswith(p) for g in groups) for p in PREDICTION_PATH_GROUPS) and 0 <= behind <= most_behind:
                typer.echo(f"the stages caught up after {time.monotonic() - started:.0f}s; pacing the rest", err=True)
                return
            time.sleep(1.0)
    finally:
        watermarks.close()
    raise TimeoutError(f"the stages up to predictions were still {behind} messages behind after {timeout:.0f}s")


def _messages_behind(admin: AdminClient, watermarks: Consumer, groups: list[str]) -> int:
    """What `groups` have left to read of their inputs; -1 while one has committed nothing."""
    from confluent_kafka import ConsumerGroupTopicPartitions

    behind = 0
    for group in groups:
        committed = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result(timeout=30)
        if not committed.topic_partitions:
            return -1
        for partition in committed.topic_partitions:
            low, high = watermarks.get_watermark_offsets(partition, timeout=30)
            behind += max(high - (partition.offset if partition.offset >= 0 else low), 0)
    return behind


@features_app.command("backfill")
def features_backfill(
    history: Annotated[Path, typer.Option(help="A simulator parquet folder (fraudstream simulate --out).")],
    out: Annotated[
        Path | None, typer.Option(help="Write a plain parquet file here instead of into Feast's offline store.")
    ] = None,
    offline_dir: Annotated[
        Path | None, typer.Option(help="Feast's offline store folder (default: the local platform's).")
    ] = None,
) -> None:
    """Compute every transaction's features from a recorded history, as the stream would have,
    into Feast's offline store (feature view transaction_features) for training sets."""
    from fraudstream_cli.backfill import backfill_directory, backfill_offline_store

    try:
        if out is not None:
            rows = backfill_directory(history, out)
            typer.echo(f"wrote {rows} feature vectors to {out}")
            return
        rows, part = backfill_offline_store(history, offline_dir or PlatformSettings().feature_offline_dir)
    except FileNotFoundError as error:
        _fail(error)
        return
    typer.echo(f"wrote {rows} feature vectors to Feast's offline store: {part}")


@features_app.command("verify")
def features_verify(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of lines.")] = False,
) -> None:
    """Compare the vectors the running stream wrote to `transactions.enriched` with a backfill of
    the same transactions and labels, read back from Kafka (FRAUDSTREAM_ settings). Exits 1 when
    a vector flagged neither late nor early differs, or a transaction was enriched twice."""
    from fraudstream_cli.verify import verify
    from fraudstream_common.settings import ServiceSettings

    result = verify(ServiceSettings())
    if as_json:
        typer.echo(json.dumps({**asdict(result), "holds": result.holds}, indent=2))
    else:
        if result.compared_from is not None:
            since = datetime.fromtimestamp(result.compared_from, UTC).isoformat()
            typer.echo(f"compared from {since} (retention removed earlier input)")
        typer.echo(
            f"compared {result.compared} vectors; {result.not_enriched} transactions not enriched yet; "
            f"{result.enriched_twice} enriched more than once"
        )
        for flag, vectors in sorted(result.vectors.items()):
            typer.echo(f"  flagged {flag}: {vectors}, {result.differing.get(flag, 0)} differ from the backfill")
        for name, count in sorted(result.features.items()):
            typer.echo(f"  unflagged and different in {name}: {count}")
        if result.examples:
            typer.echo(f"  for example: {', '.join(result.examples)}")
    if not result.holds:
        raise typer.Exit(1)


@app.command("train")
def train_command(
    history: Annotated[
        Path | None,
        typer.Option(help="Take labels from a simulator folder instead of the trainer's label store."),
    ] = None,
    cutoff: Annotated[
        str | None, typer.Option(help="Train as of this time (ISO 8601, UTC); default: the latest label.")
    ] = None,
    publish: Annotated[
        bool, typer.Option("--publish/--no-publish", help="Publish models.published on promotion (needs Kafka).")
    ] = True,
    reason: Annotated[str, typer.Option(help="Why, for the run's record.")] = "operator",
    as_json: Annotated[bool, typer.Option("--json", help="Print the outcome as JSON.")] = False,
) -> None:
    """Train, gate and (if it passes) promote a model now, as the trainer service does on a
    retrain request: features from Feast's offline store, MLflow settings from FRAUDSTREAM_.
    Runs the trainer's own one-off run (`python -m fraudstream_trainer train`), which must be
    installed beside the command."""
    import subprocess

    _require(
        ["fraudstream_trainer"], "fraudstream train runs the trainer: install fraudstream-trainer (make install does)"
    )
    command = [sys.executable, "-m", "fraudstream_trainer", "train", "--reason", reason]
    if history is not None:
        command += ["--history", str(history)]
    if cutoff is not None:
        command += ["--cutoff", cutoff]
    if not publish:
        command.append("--no-publish")
    # The run's progress and MLflow's links go to stderr as they come; its outcome is the last
    # line on stdout (a library writing to stdout below Python's sys.stdout goes before it).
    completed = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)  # noqa: S603 (our own module)
    try:
        summary = json.loads(completed.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        raise typer.Exit(completed.returncode or 1) from None
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
    else:
        typer.echo(f"{summary['outcome']}: version {summary['version'] or '-'} (run {summary['run_id'] or '-'})")
        for line in summary["reasons"]:
            typer.echo(f"  {line}")
    if completed.returncode != 0:
        raise typer.Exit(completed.returncode)


apikey_app = typer.Typer(help="API keys for inference (and the admin actions).", no_args_is_help=True)
app.add_typer(apikey_app, name="apikey")


def _apikey_settings() -> Any:
    from fraudstream_common.settings import ApiKeySecret, ServiceSettings

    class Settings(ServiceSettings, ApiKeySecret):
        redis_url: str = "redis://127.0.0.1:6379/0"

    return Settings()


@apikey_app.command("create")
def apikey_create(
    scope: Annotated[list[str], typer.Option(help="predict, ingest or admin; repeatable.")],
    name: Annotated[str, typer.Option(help="Who or what the key is for.")] = "",
    expires_in_days: Annotated[float, typer.Option(min=0, help="Days the key is valid for; 0: until revoked.")] = 90.0,
) -> None:
    """Create an API key and print it once: only its SHA-256 is stored (in Redis, FRAUDSTREAM_REDIS_URL),
    in a record signed with FRAUDSTREAM_API_KEY_SECRET."""
    import redis

    from fraudstream_common.apikeys import Scope, create_key, digest_of, revoke_key
    from fraudstream_common.audit import Action, NotAuditedError, record_from_command_line

    try:
        scopes = [Scope(s) for s in scope]
    except ValueError as error:
        _fail(ValueError(f"{error}; scopes are {', '.join(s.value for s in Scope)}"))
        return
    settings = _apikey_settings()
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=5)
    expires_at = time.time() + expires_in_days * 86400 if expires_in_days > 0 else None
    try:
        key = create_key(
            client,
            scopes,
            name,
            secret=settings.api_key_secret.get_secret_value(),
            namespace=settings.topic_prefix,
            expires_at=expires_at,
        )
    except redis.RedisError as error:
        _fail(error)
        return
    details = {
        "key": f"key:{digest_of(key)[:12]}",
        "name": name,
        "scopes": ",".join(sorted(s.value for s in scopes)),
        "expires_at": "never" if expires_at is None else datetime.fromtimestamp(expires_at, UTC).isoformat(),
    }
    try:
        record_from_command_line(settings, Action.KEY_CREATED, details)
    except NotAuditedError as error:
        revoke_key(client, key, namespace=settings.topic_prefix)  # no key without its record
        _fail(ValueError(f"{error}; the key was revoked again"))
        return
    typer.echo(key)


@apikey_app.command("list")
def apikey_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Every key's name, scopes, creation and expiry (never the key), and whether its record verifies:
    one that does not was written to Redis without the secret and is refused by every service."""
    import redis

    from fraudstream_common.apikeys import list_keys

    settings = _apikey_settings()
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=5)
    try:
        records = list_keys(client, secret=settings.api_key_secret.get_secret_value(), namespace=settings.topic_prefix)
    except redis.RedisError as error:
        _fail(error)
        return
    now = time.time()

    def when(seconds: float | None) -> str:
        return "never" if seconds is None else datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M")

    rows = [
        {
            "digest": record.digest[:12],
            "name": record.name,
            "scopes": ",".join(sorted(record.scopes)),
            "created": when(record.created_at),
            "expires": when(record.expires_at),
            "state": "forged or unsigned" if not record.signed else "expired" if record.expired(now) else "valid",
        }
        for record in records
    ]
    if as_json:
        typer.echo(json.dumps(rows, indent=1))
        return
    for row in rows:
        typer.echo("  ".join(f"{row[k]:<{w}}" for k, w in _KEY_COLUMNS.items()))


_KEY_COLUMNS = {"digest": 13, "name": 20, "scopes": 22, "created": 17, "expires": 17, "state": 18}


@apikey_app.command("revoke")
def apikey_revoke(key: Annotated[str, typer.Argument(help="The key to revoke.")]) -> None:
    """Revoke an API key (replicas stop accepting it within 30 s)."""
    import redis

    from fraudstream_common.apikeys import digest_of, revoke_key
    from fraudstream_common.audit import Action, NotAuditedError, record_from_command_line

    settings = _apikey_settings()
    if not revoke_key(redis.Redis.from_url(settings.redis_url, socket_timeout=5), key, namespace=settings.topic_prefix):
        _fail(KeyError("no such key"))
        return
    try:
        record_from_command_line(settings, Action.KEY_REVOKED, {"key": f"key:{digest_of(key)[:12]}"})
    except NotAuditedError as error:
        _fail(error)


@apikey_app.command("rotate")
def apikey_rotate(
    key: Annotated[str, typer.Argument(help="The key to replace.")],
    overlap_hours: Annotated[
        float, typer.Option(min=0, help="Hours the old key keeps working, for its users to switch.")
    ] = 24.0,
) -> None:
    """Print a new key with the old one's name, scopes and lifetime; the old one expires after
    the overlap (or sooner, as it would have)."""
    import redis

    from fraudstream_common.apikeys import digest_of, rotate_key
    from fraudstream_common.audit import Action, NotAuditedError, record_from_command_line

    settings = _apikey_settings()
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=5)
    try:
        new_key, old = rotate_key(
            client,
            key,
            secret=settings.api_key_secret.get_secret_value(),
            namespace=settings.topic_prefix,
            overlap_seconds=overlap_hours * 3600,
        )
    except (KeyError, redis.RedisError) as error:
        _fail(error)
        return
    details = {
        "key": f"key:{digest_of(key)[:12]}",
        "new_key": f"key:{digest_of(new_key)[:12]}",
        "name": old.name,
        "old_key_expires_at": datetime.fromtimestamp(old.expires_at or 0, UTC).isoformat(),
    }
    try:
        record_from_command_line(settings, Action.KEY_ROTATED, details)
    except NotAuditedError as error:
        _fail(ValueError(f"{error}; the new key works, and the old one expires as printed"))
        return
    typer.echo(new_key)


evaluate_app = typer.Typer(
    help="Measure the model (default), the drift detection (`drift`), the closed loop (`loop`) or the "
    "promotion gate (`gate`)."
)
app.add_typer(evaluate_app, name="evaluate")


class LabelSetting(StrEnum):
    reported = "reported"
    handbook = "handbook"


@evaluate_app.callback(invoke_without_command=True)
def evaluate_command(
    context: typer.Context,
    history: Annotated[
        Path | None,
        typer.Option(help="A simulator parquet folder (fraudstream simulate --out); default: the handbook's run."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    train_start: Annotated[
        str, typer.Option(help="First day the latest fold trains on; the handbook's test folds: 2018-08-15.")
    ] = "2018-08-15",
    folds: Annotated[int, typer.Option(min=2, help="Folds, each 7 days before the next.")] = 4,
    labels_setting: Annotated[
        LabelSetting,
        typer.Option(
            "--labels",
            help="reported: each label known when it was reported; handbook: every label known exactly 7 days "
            "after its transaction, as the handbook's protocol assumes.",
        ),
    ] = LabelSetting.reported,
    select: Annotated[
        int,
        typer.Option(
            min=0,
            help="Choose the model's parameters first with this many trials on validation folds before the test "
            "folds (0: the saved selection's).",
        ),
    ] = 0,
    save_selection: Annotated[
        bool, typer.Option(help="Save what --select chose as the trainer's default parameters.")
    ] = False,
    tracking_uri: Annotated[
        str | None, typer.Option(help="An MLflow server to record the selection and its trials in.")
    ] = None,
) -> None:
    """Train and test the model on the handbook's prequential folds, with features from
    fraudstream's own definitions; print its figures beside the handbook's best."""
    _require(["fraudstream_modelling", "fraudstream_drift"], "install fraudstream-cli[evaluate]")
    if context.invoked_subcommand is not None:
        return

    import pandas as pd

    from fraudstream_cli.backfill import backfill
    from fraudstream_modelling.evaluation import Evaluation, evaluate, handbook_labels, labelled
    from fraudstream_modelling.model import ModelParams
    from fraudstream_modelling.protocol import prequential_folds
    from fraudstream_modelling.selection import Search, log_selection, write_selection
    from fraudstream_modelling.selection import select as select_params
    from fraudstream_simulator.config import SimulationConfig
    from fraudstream_simulator.simulation import simulate

    if save_selection and not select:
        _fail(ValueError("--save-selection saves what --select chooses: give --select N"))
        return
    try:
        fold_list = prequential_folds(datetime.strptime(train_start, "%Y-%m-%d").date(), n_folds=folds)
    except ValueError as error:
        _fail(error)
        return
    if history is None:
        world = simulate(SimulationConfig())
        transactions, labels = world.transactions, world.labels
    else:
        transactions = pd.read_parquet(history / "transactions.parquet")
        labels = pd.read_parquet(history / "labels.parquet")
    if labels_setting is LabelSetting.handbook:
        labels = handbook_labels(labels)
    frame = labelled(backfill(transactions, labels), labels)
    selection = None
    if select:

        def progress(n: int, _params: ModelParams, trial: Evaluation) -> None:
            typer.echo(f"trial {n + 1}/{select} on the validation folds: {_figures(trial.mean())}", err=True)

        search = Search(trials=select)
        selection = select_params(frame, fold_list, search, on_trial=progress)
    evaluation = evaluate(frame, selection.params if selection else None, folds=fold_list)
    result: dict[str, Any] = {**evaluation.as_json(), "labels": labels_setting.value}
    if selection is not None:
        chosen_on = {
            "history": str(history) if history else "the handbook's simulated run",
            "labels": labels_setting.value,
            "test_folds_train_from": train_start,
            "trials": search.trials,
            "search_seed": search.seed,
        }
        result["selection"] = selection.as_json()
        if save_selection:
            saved = write_selection(selection, chosen_on)
            typer.echo(f"the trainer's defaults are now this selection: {saved}", err=True)
        if tracking_uri:
            run_id = log_selection(selection, evaluation, chosen_on, tracking_uri=tracking_uri)
            result["selection"]["mlflow_run_id"] = run_id
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    else:
        typer.echo(f"labels: {labels_setting.value}")
        if selection is not None:
            typer.echo(f"selected on validation folds ({_figures(selection.value)}): {selection.params}")
        typer.echo(evaluation.table())


def _figures(values: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:.3f}" for name, value in values.items())


@evaluate_app.command("drift")
def evaluate_drift_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    seeds: Annotated[
        str,
        typer.Option(
            help="The worlds: held-out (never looked at when thresholds were chosen), tuning (those "
            "they were chosen on), or seeds separated by commas (0: the handbook's world)."
        ),
    ] = "held-out",
    customers: Annotated[int, typer.Option(min=100, help="Customers in each simulated world.")] = 5000,
    terminals: Annotated[int, typer.Option(min=100, help="Terminals in each simulated world.")] = 10000,
    drift_day: Annotated[
        int, typer.Option(min=88, help="Day each drift starts (the month before it is watched).")
    ] = 100,
    days_after: Annotated[int, typer.Option(min=1, help="Days simulated after each drift starts.")] = 3,
    stationary_days: Annotated[
        int, typer.Option(min=30, help="Days of the world without drift watched for false alarms.")
    ] = 180,
    scenario: Annotated[
        list[str] | None,
        typer.Option(help="new-fraud-pattern, amount-shift or new-terminals; repeatable (default: all)."),
    ] = None,
    jobs: Annotated[int, typer.Option(min=1, help="Worlds simulated at once, one process each.")] = 2,
    tune: Annotated[
        bool,
        typer.Option(
            "--tune",
            help="Choose the detectors' thresholds on the tuning seeds instead (every combination of "
            "drift_evaluation.TUNING_GRID); prints the best first.",
        ),
    ] = False,
) -> None:
    """Run the simulator's drift scenarios through the monitor's drift detection, per seed: the
    false alarms on a stationary world, and each scenario's detection delay (only alerts that
    name a subject the scenario moves count)."""

    from fraudstream_cli.drift_evaluation import (
        HELD_OUT_SEEDS,
        TUNING_SEEDS,
        World,
        aggregate,
        evaluate_drift,
        table,
        tuning_report,
        watch_all,
    )
    from fraudstream_simulator.config import DRIFT_NAMES

    named = {"held-out": HELD_OUT_SEEDS, "tuning": TUNING_SEEDS}
    try:
        scenarios = _scenarios(scenario, DRIFT_NAMES)
    except ValueError as error:
        _fail(error)
        return
    try:
        chosen = named.get(seeds) or tuple(int(seed) for seed in seeds.split(","))
    except ValueError:
        _fail(ValueError(f"--seeds {seeds!r}: write held-out, tuning, or seeds separated by commas"))
        return
    world = World(customers, terminals, drift_day, days_after, stationary_days, scenarios)
    if tune:
        if seeds != "held-out" and chosen != TUNING_SEEDS:
            _fail(ValueError("--tune chooses on the tuning seeds only; leave --seeds out"))
            return
        report = tuning_report(watch_all(TUNING_SEEDS, world, jobs), world, jobs)
        typer.echo(json.dumps(report, indent=2) if as_json else report["text"])
        return
    results = evaluate_drift(chosen, world, jobs=jobs)
    if as_json:
        document = {
            "world": asdict(world),
            "seeds": {str(r.seed): r.as_json() for r in results},
            "aggregate": asdict(aggregate(results)),
        }
        typer.echo(json.dumps(document, indent=2))
    else:
        typer.echo(table(results))


class ServedModelChoice(StrEnum):
    """The modelling library's ServedModel, without importing it when the command line starts."""

    refit = "refit"
    judged = "judged"


@evaluate_app.command("loop")
def evaluate_loop_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    customers: Annotated[int, typer.Option(min=100, help="Customers in each simulated world.")] = 5000,
    terminals: Annotated[int, typer.Option(min=100, help="Terminals in each simulated world.")] = 10000,
    drift_day: Annotated[
        int, typer.Option(help="Day the drift starts (the first model is trained 14 days before; 65 or later).")
    ] = 70,
    days_after: Annotated[int, typer.Option(min=8, help="Days simulated after the drift starts.")] = 28,
    scenario: Annotated[
        list[str] | None,
        typer.Option(help="new-fraud-pattern, amount-shift or new-terminals; repeatable (default: all)."),
    ] = None,
    served_model: Annotated[
        ServedModelChoice,
        typer.Option(
            help="What a promoted run publishes, as the trainer's setting: refit (the judged recipe trained again "
            "on the latest matured labels) or judged (the model the gate judged)."
        ),
    ] = ServedModelChoice.refit,
    seed: Annotated[int, typer.Option(help="The simulator's seed (0: the handbook's world).")] = 0,
) -> None:
    """Replay the closed loop offline in event time: the monitor's drift detection, the
    trainer's windows and gate, labels only once known; per scenario the loop's quality per day
    beside a model never retrained and one retrained every day, and whether it recovered."""

    from fraudstream_cli.loop_evaluation import LoopPolicy, evaluate_loop, table
    from fraudstream_modelling.choice import ServedModel
    from fraudstream_simulator.config import DRIFT_NAMES

    try:
        results = evaluate_loop(
            n_customers=customers,
            n_terminals=terminals,
            drift_day=drift_day,
            days_after=days_after,
            scenarios=_scenarios(scenario, DRIFT_NAMES),
            seed=seed,
            policy=LoopPolicy(served_model=ServedModel(served_model.value)),
        )
    except ValueError as error:
        _fail(error)
        return
    if as_json:
        typer.echo(
            json.dumps({"served_model": served_model.value, **{r.scenario: r.as_json() for r in results}}, indent=2)
        )
    else:
        typer.echo(f"served model: {served_model.value}")
        typer.echo(table(results))


@evaluate_app.command("gate")
def evaluate_gate_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (with every pair) instead of a table.")] = False,
    world: Annotated[
        list[str] | None,
        typer.Option(
            help="A world: SEED, or SEED:SCENARIO:DAY for one with a drift from DAY; repeatable "
            "(default: the tuning worlds the margins were sized on, gate_evaluation.TUNING_WORLDS)."
        ),
    ] = None,
    customers: Annotated[int, typer.Option(min=100, help="Customers in each simulated world.")] = 5000,
    terminals: Annotated[int, typer.Option(min=100, help="Terminals in each simulated world.")] = 10000,
    days: Annotated[int, typer.Option(min=30, help="Days simulated in each world.")] = 100,
    first_day: Annotated[int, typer.Option(min=1, help="The first cutoff, in days from the world's start.")] = 60,
    every: Annotated[int, typer.Option(min=1, help="Days between cutoffs.")] = 2,
    gap: Annotated[
        list[int] | None, typer.Option(min=1, help="Days the champion was judged before; repeatable (default 1 2 3 5).")
    ] = None,
    ap_margin: Annotated[
        float | None, typer.Option(help="The gate's average precision margin (default: its own).")
    ] = None,
    card_precision_margin: Annotated[
        float | None, typer.Option(help="The gate's card precision@100 margin (default: its own).")
    ] = None,
    frauds_lost: Annotated[
        float,
        typer.Option(
            help="Share of the challenger's training frauds labelled genuine, as when fraud reports are lost: "
            "the gate's power against a real loss (0: like challengers, its false refusals)."
        ),
    ] = 0.0,
    jobs: Annotated[int, typer.Option(min=1, help="Worlds simulated at once, one process each.")] = 2,
    pairs_from: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            help="Judge the pairs of an earlier --json report again under the margins given (default: "
            "its own), in seconds, instead of simulating; the options that shape worlds do not apply.",
        ),
    ] = None,
) -> None:
    """How often the trainer's gate refuses a challenger of the champion's own recipe, trained a
    few days later: on stationary worlds and after a drift, with the bounds' quantiles."""

    from fraudstream_cli.gate_evaluation import (
        TUNING_WORLDS,
        GateWorld,
        Layout,
        evaluate_gate,
        rejudge,
        table,
        with_margins,
    )
    from fraudstream_cli.loop_evaluation import LoopPolicy

    if pairs_from is not None:
        try:
            report = rejudge(json.loads(pairs_from.read_text()), ap_margin, card_precision_margin)
        except (ValueError, KeyError, TypeError) as error:
            _fail(ValueError(f"{pairs_from}: not a report of `fraudstream evaluate gate --json` ({error})"))
            return
        typer.echo(json.dumps(report, indent=2) if as_json else table(report))
        return
    try:
        worlds = [GateWorld.parse(text) for text in world] if world else list(TUNING_WORLDS)
    except ValueError as error:
        _fail(error)
        return
    gate = with_margins(LoopPolicy().gate, ap_margin, card_precision_margin)
    layout = Layout(
        customers, terminals, days, first_day, every, tuple(gap or Layout.gaps), frauds_lost, LoopPolicy(gate=gate)
    )
    try:
        report = evaluate_gate(worlds, layout, jobs)
    except ValueError as error:
        _fail(error)
        return
    typer.echo(json.dumps(report, indent=2) if as_json else table(report))


def _scenarios(given: list[str] | None, known: tuple[str, ...]) -> tuple[str, ...]:
    """The scenarios asked for (all known ones when none is); ValueError names an unknown one."""
    unknown = [name for name in given or () if name not in known]
    if unknown:
        raise ValueError(f"unknown scenario {unknown[0]!r}; choose from {', '.join(known)}")
    return tuple(given or known)


if __name__ == "__main__":
    sys.exit(app())
