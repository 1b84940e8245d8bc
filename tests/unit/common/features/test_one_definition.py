"""The feature definitions hold on simulated history, computed three ways: the rollable state
(what the stream and the backfill run), an independent brute-force reading of the semantics in
definitions.py, and the handbook's own pandas formulation. The request-time path (state stored
as JSON, read back, combined with the transaction) gives the same vectors."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from fraudstream_cli.backfill import label_events, transaction_events
from fraudstream_cli.verify import mismatches
from fraudstream_common.features.definitions import (
    CUSTOMER_FEATURES,
    DAY,
    FEATURE_NAMES,
    LABEL_DELAY_DAYS,
    SECONDS_SINCE_LAST_CAP,
    TERMINAL_FEATURES,
    transaction_features,
)
from fraudstream_common.features.history import (
    FeatureStates,
    LabelEvent,
    TransactionEvent,
    in_event_order,
    replay,
)
from fraudstream_common.features.state import CustomerState, TerminalState, feature_vector
from fraudstream_simulator.config import SimulationConfig
from fraudstream_simulator.simulation import Simulation, simulate
from fraudstream_simulator.sinks import epoch_seconds


@pytest.fixture(scope="module")
def world() -> Simulation:
    return simulate(SimulationConfig(n_customers=500, n_terminals=1000, nb_days=60))


def events(world: Simulation) -> tuple[list[TransactionEvent], list[LabelEvent]]:
    return transaction_events(world.transactions), label_events(world.labels)


@pytest.fixture(scope="module")
def streamed(world: Simulation) -> pd.DataFrame:
    transactions, labels = events(world)
    rows = {tx.transaction_id: vector for tx, vector in replay(transactions, labels)}
    frame = pd.DataFrame.from_dict(rows, orient="index")[list(FEATURE_NAMES)]
    return frame.loc[world.transactions["transaction_id"]]


def assert_same(actual: pd.DataFrame, expected: pd.DataFrame, names: list[str]) -> None:
    for name, mismatched in mismatches(actual, expected, names).items():
        if len(mismatched):
            first = mismatched[0]
            a, e = actual[name].iloc[first], expected[name].iloc[first]
            raise AssertionError(f"{name}: {len(mismatched)} differ; {actual.index[first]}: {a} != {e}")


def test_enough_history(world: Simulation) -> None:
    assert len(world.transactions) >= 10_000
    assert world.transactions["is_fraud"].sum() > 100


def brute_force(world: Simulation) -> pd.DataFrame:
    """definitions.py read literally: scan each group's earlier rows, no state, no bisect."""
    tx = world.transactions.assign(t=epoch_seconds(world.transactions["event_time"]).astype(float))
    label_known = dict(zip(world.labels["transaction_id"], epoch_seconds(world.labels["label_time"]), strict=True))
    out: dict[str, dict[str, float]] = {}
    for _, group in tx.groupby("customer_id", sort=False):
        times, amounts, terminals = group["t"].to_numpy(), group["amount"].to_numpy(), group["terminal_id"].to_numpy()
        for i, transaction_id in enumerate(group["transaction_id"]):
            t, row = times[i], {}
            upto = np.arange(len(times)) <= i
            for days in (1, 7, 30):
                inside = upto & (times > t - days * DAY) & (times <= t)
                row[f"customer_nb_tx_{days}d"] = float(inside.sum())
                row[f"customer_avg_amount_{days}d"] = float(amounts[inside].sum() / inside.sum())
            row["customer_nb_tx_1h"] = float((upto & (times > t - 3600) & (times <= t)).sum())
            row["customer_nb_terminals_24h"] = float(len(set(terminals[upto & (times > t - DAY) & (times <= t)])))
            earlier = times[(np.arange(len(times)) < i) & (times <= t)]
            since = t - earlier.max() if len(earlier) else SECONDS_SINCE_LAST_CAP
            row["customer_seconds_since_last"] = float(min(since, SECONDS_SINCE_LAST_CAP))
            row["amount_to_customer_avg_30d"] = amounts[i] / row["customer_avg_amount_30d"]
            others = amounts[(np.arange(len(times)) < i) & (times > t - 30 * DAY) & (times <= t)]
            row["amount_to_customer_median_30d"] = amounts[i] / np.median(others) if len(others) else 1.0
            week = amounts[(np.arange(len(times)) < i) & (times > t - 7 * DAY) & (times <= t)]
            row["customer_max_amount_7d_to_median_30d"] = (
                week.max() / np.median(others) if len(week) and np.median(others) else 1.0
            )
            out[transaction_id] = row
    terminal_order = tx.sort_values(["t", "transaction_id"], kind="stable")  # a terminal's ties in id order
    for _, group in terminal_order.groupby("terminal_id", sort=False):
        times, ids = group["t"].to_numpy(), group["transaction_id"].to_numpy()
        known = np.array([label_known[x] if fraud else np.inf for x, fraud in zip(ids, group["is_fraud"], strict=True)])
        for i, transaction_id in enumerate(ids):
            t = times[i]
            cutoff = t - LABEL_DELAY_DAYS * DAY
            for days in (1, 7, 30):
                inside = (np.arange(len(times)) < i) & (times > cutoff - days * DAY) & (times <= cutoff)
                n = int(inside.sum())
                out[transaction_id][f"terminal_nb_tx_{days}d"] = float(n)
                out[transaction_id][f"terminal_risk_{days}d"] = float((known[inside] <= t).sum() / n) if n else 0.0
            matured = np.flatnonzero((times > cutoff - 30 * DAY) & (times <= cutoff))
            for k in (1, 3):
                last = matured[-k:]
                share = float((known[last] <= t).mean()) if len(last) else 0.0
                out[transaction_id][f"terminal_risk_last_{k}tx"] = share
            last_week = (times > t - 7 * DAY) & (times <= t)
            out[transaction_id]["terminal_reported_frauds_7d"] = float((known[last_week] <= t).sum())
    return pd.DataFrame.from_dict(out, orient="index")


def test_state_equals_the_definitions_read_literally(world: Simulation, streamed: pd.DataFrame) -> None:
    expected = brute_force(world).loc[streamed.index]
    assert_same(streamed, expected, [*CUSTOMER_FEATURES, *TERMINAL_FEATURES])


def test_state_equals_the_handbook_formulation(world: Simulation, streamed: pd.DataFrame) -> None:
    """The handbook's chapter 3 feature code (pandas rolling windows over each customer's and
    terminal's rows, terminal windows shifted by the delay, true labels)."""
    tx = world.transactions.set_index("event_time", drop=False)
    expected = pd.DataFrame(index=world.transactions["transaction_id"])
    for days in (1, 7, 30):
        grouped = tx.groupby("customer_id")["amount"]
        counts = grouped.rolling(f"{days}D").count()
        sums = grouped.rolling(f"{days}D").sum()
        ids = tx.groupby("customer_id")["transaction_id"].apply(list).explode()
        expected.loc[ids.to_numpy(), f"customer_nb_tx_{days}d"] = counts.to_numpy()
        expected.loc[ids.to_numpy(), f"customer_avg_amount_{days}d"] = (sums / counts).to_numpy()
    fraud = tx["is_fraud"].astype(float)
    for days in (1, 7, 30):
        grouped = fraud.groupby(tx["terminal_id"])
        delay = f"{LABEL_DELAY_DAYS}D"
        window = f"{LABEL_DELAY_DAYS + days}D"
        nb_tx = grouped.rolling(window).count() - grouped.rolling(delay).count()
        nb_fraud = grouped.rolling(window).sum() - grouped.rolling(delay).sum()
        ids = tx.groupby("terminal_id")["transaction_id"].apply(list).explode()
        expected.loc[ids.to_numpy(), f"terminal_nb_tx_{days}d"] = nb_tx.to_numpy()
        expected.loc[ids.to_numpy(), f"terminal_risk_{days}d"] = (nb_fraud / nb_tx).fillna(0).to_numpy()
    names = [
        n
        for n in FEATURE_NAMES
        if n.startswith(("customer_nb_tx_", "customer_avg", "terminal_nb_tx_", "terminal_risk_"))
        and not n.endswith(("1h", "tx"))
    ]
    assert_same(streamed, expected.loc[streamed.index], names)


def test_request_time_from_stored_state_gives_the_same_vector(world: Simulation, streamed: pd.DataFrame) -> None:
    """What inference will do: read the customer's and terminal's state as stored (JSON, as in
    Feast) and combine it with the transaction, without changing the state."""
    transactions, labels = events(world)
    sample = set(random.Random(3).sample([tx.transaction_id for tx in transactions], 2_000))
    states = FeatureStates()
    checked = 0
    for event in in_event_order(transactions, labels):
        if isinstance(event, LabelEvent):
            states.apply_label(event)
            continue
        if event.transaction_id in sample:
            customer = CustomerState.from_json(states.customers.get(event.customer_id, CustomerState()).to_json())
            terminal = TerminalState.from_json(states.terminals.get(event.terminal_id, TerminalState()).to_json())
            vector = feature_vector(
                customer, terminal, event_time=event.event_time, amount=event.amount, terminal_id=event.terminal_id
            )
            assert vector == streamed.loc[event.transaction_id].to_dict(), event.transaction_id
            checked += 1
        states.apply_transaction(event)
    assert checked == 2_000


def test_transaction_features_follow_the_handbook() -> None:
    sunday_night = datetime(2018, 4, 1, 6, 59, 59, tzinfo=UTC).timestamp()
    monday_morning = datetime(2018, 4, 2, 7, 0, 0, tzinfo=UTC).timestamp()
    assert transaction_features(12.5, sunday_night) == {
        "tx_amount": 12.5,
        "tx_during_weekend": 1.0,
        "tx_during_night": 1.0,
    }
    assert transaction_features(3.0, monday_morning) == {
        "tx_amount": 3.0,
        "tx_during_weekend": 0.0,
        "tx_during_night": 0.0,
    }


def test_late_transaction_sees_only_what_arrived_before_it_and_then_joins_history() -> None:
    customer = CustomerState()
    customer.add(1000.0, 10.0, "t1")
    customer.add(5000.0, 30.0, "t2")
    late = customer.features(3000.0, 20.0, "t3")
    assert late["customer_nb_tx_1d"] == 2.0  # the event at 1000 and itself, not the one at 5000
    assert late["customer_seconds_since_last"] == 2000.0
    customer.add(3000.0, 20.0, "t3")
    assert customer.times == [1000.0, 3000.0, 5000.0]
    customer.add(5000.0 - 31 * DAY, 99.0, "t9")  # older than any open window: not kept
    assert customer.times == [1000.0, 3000.0, 5000.0]


def test_labels_count_only_once_known_and_are_idempotent() -> None:
    terminal = TerminalState()
    terminal.add(0.0, "a")
    terminal.add(10.0, "b")
    terminal.label("a", True, label_time=3 * DAY, transaction_time=0.0)
    terminal.label("a", True, label_time=5 * DAY, transaction_time=0.0)  # a later duplicate report
    terminal.label("b", False, label_time=7 * DAY, transaction_time=10.0)
    at = 7 * DAY + 20.0
    assert terminal.features(at)["terminal_nb_tx_1d"] == 2.0
    assert terminal.features(at)["terminal_risk_1d"] == 0.5
    assert TerminalState.from_json(terminal.to_json()).features(at) == terminal.features(at)
    assert TerminalState().features(at)["terminal_risk_30d"] == 0.0


def test_every_update_gets_a_newer_version_even_within_one_second() -> None:
    customer = CustomerState()
    versions = []
    for _ in range(3):
        customer.add(1000.0, 5.0, "t1")
        versions.append(customer.version_time)
    customer.add(500.0, 5.0, "t1")  # late: its time is older, the state is still newer
    versions.append(customer.version_time)
    assert versions == sorted(set(versions))
    assert CustomerState.from_json(customer.to_json()) == customer
