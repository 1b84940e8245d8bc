"""Rollable per-customer and per-terminal state, and the one function that turns it and a
transaction into the feature vector. See definitions.py for the semantics.

The state is small (a customer's last 30 days, a terminal's last 37 days), serialises to
JSON for Faust tables and Feast, and is rolled forward one event at a time. The stream updates
it as transactions and labels arrive; the backfill replays a history through it; a request
reads it from Feast and calls `feature_vector` without changing it.
"""

from __future__ import annotations

import bisect
import math
import statistics
from dataclasses import dataclass, field

import orjson

from fraudstream_common.features.definitions import (
    CUSTOMER_HORIZON,
    CUSTOMER_PEAK_FEATURE,
    CUSTOMER_PEAK_WINDOW_DAYS,
    CUSTOMER_WINDOWS_DAYS,
    DAY,
    HOUR,
    LABEL_DELAY_DAYS,
    REPORTED_FRAUDS_WINDOW_DAYS,
    SECONDS_SINCE_LAST_CAP,
    TERMINAL_HORIZON,
    TERMINAL_LAST_MATURED,
    TERMINAL_WINDOWS_DAYS,
    transaction_features,
)


@dataclass(frozen=True)
class Snapshot:
    """A state as it was at one moment, serialised once for every store it goes to."""

    json: str
    as_of: float
    version_time: float


@dataclass
class Versioned:
    """How far a state has been rolled: the latest event time it has seen and how many events
    it has taken. `version_time` increases strictly with every event (one microsecond per
    event on top of the event time), so a store that keeps the newest write per key (Feast's
    online store does) keeps the newest state, and writing an older version again is a no-op."""

    as_of: float = 0.0
    updates: int = 0

    def _advance(self, event_time: float) -> None:
        self.as_of = max(self.as_of, event_time)
        self.updates += 1

    @property
    def version_time(self) -> float:
        return self.as_of + (self.updates % 1_000_000) / 1e6

    def to_json(self) -> str:
        raise NotImplementedError

    def snapshot(self) -> Snapshot:
        return Snapshot(self.to_json(), self.as_of, self.version_time)


@dataclass
class CustomerState(Versioned):
    """The customer's transactions of the last 30 days, in time order (arrival order on ties)."""

    times: list[float] = field(default_factory=list)
    amounts: list[float] = field(default_factory=list)
    terminals: list[str] = field(default_factory=list)

    def features(self, event_time: float, amount: float, terminal_id: str) -> dict[str, float]:
        """The customer features of a transaction, against this state (which it is not yet in)."""
        t = event_time
        end = bisect.bisect_right(self.times, t)  # events at or before t
        out: dict[str, float] = {}
        starts: dict[int, int] = {}
        for days in CUSTOMER_WINDOWS_DAYS:
            start = starts[days] = bisect.bisect_right(self.times, t - days * DAY, 0, end)
            count = end - start + 1
            total = sum(self.amounts[start:end]) + amount
            out[f"customer_nb_tx_{days}d"] = float(count)
            out[f"customer_avg_amount_{days}d"] = total / count
        hour_start = bisect.bisect_right(self.times, t - HOUR, 0, end)
        out["customer_nb_tx_1h"] = float(end - hour_start + 1)
        day_start = bisect.bisect_right(self.times, t - DAY, 0, end)
        out["customer_nb_terminals_24h"] = float(len({*self.terminals[day_start:end], terminal_id}))
        since = t - self.times[end - 1] if end else SECONDS_SINCE_LAST_CAP
        out["customer_seconds_since_last"] = float(min(since, SECONDS_SINCE_LAST_CAP))
        mean_30d = out[f"customer_avg_amount_{max(CUSTOMER_WINDOWS_DAYS)}d"]
        out["amount_to_customer_avg_30d"] = amount / mean_30d if mean_30d else 1.0
        month = self.amounts[starts[max(CUSTOMER_WINDOWS_DAYS)] : end]
        median_30d = statistics.median(month) if month else 0.0
        out["amount_to_customer_median_30d"] = amount / median_30d if median_30d else 1.0
        week = self.amounts[starts[CUSTOMER_PEAK_WINDOW_DAYS] : end]
        out[CUSTOMER_PEAK_FEATURE] = max(week) / median_30d if week and median_30d else 1.0
        return out

    def add(self, event_time: float, amount: float, terminal_id: str) -> None:
        self._advance(event_time)
        newest = self.times[-1] if self.times else event_time
        if event_time <= newest - CUSTOMER_HORIZON:
            return  # too late to fall in any window that is still open
        position = bisect.bisect_right(self.times, event_time)
        self.times.insert(position, event_time)
        self.amounts.insert(position, amount)
        self.terminals.insert(position, terminal_id)
        cut = bisect.bisect_right(self.times, self.times[-1] - CUSTOMER_HORIZON)
        if cut:
            del self.times[:cut], self.amounts[:cut], self.terminals[:cut]

    def to_json(self) -> str:
        return orjson.dumps([self.as_of, self.updates, self.times, self.amounts, self.terminals]).decode()

    @classmethod
    def from_json(cls, text: str | None) -> CustomerState:
        if not text:
            return cls()
        as_of, updates, times, amounts, terminals = orjson.loads(text)
        return cls(as_of, updates, times, amounts, terminals)


@dataclass
class TerminalState(Versioned):
    """The terminal's transactions of the last 37 days, and the frauds reported among them."""

    times: list[float] = field(default_factory=list)
    transaction_ids: list[str] = field(default_factory=list)
    # transaction id -> (time the fraud became known, the transaction's time). Only frauds are
    # kept: a genuine label changes nothing. A report may come before its transaction.
    frauds: dict[str, tuple[float, float]] = field(default_factory=dict)

    def features(self, event_time: float) -> dict[str, float]:
        cutoff = event_time - LABEL_DELAY_DAYS * DAY
        end = bisect.bisect_right(self.times, cutoff)
        out: dict[str, float] = {}
        month_start = end
        for days in TERMINAL_WINDOWS_DAYS:
            start = bisect.bisect_right(self.times, cutoff - days * DAY, 0, end)
            month_start = min(month_start, start)
            count = end - start
            out[f"terminal_nb_tx_{days}d"] = float(count)
            out[f"terminal_risk_{days}d"] = self._known_frauds(start, end, event_time) / count if count else 0.0
        for last in TERMINAL_LAST_MATURED:
            start = max(end - last, month_start)
            count = end - start
            out[f"terminal_risk_last_{last}tx"] = self._known_frauds(start, end, event_time) / count if count else 0.0
        week_start = event_time - REPORTED_FRAUDS_WINDOW_DAYS * DAY
        out[f"terminal_reported_frauds_{REPORTED_FRAUDS_WINDOW_DAYS}d"] = float(
            sum(
                1
                for label_time, transaction_time in self.frauds.values()
                if label_time <= event_time and week_start < transaction_time <= event_time
            )
        )
        return out

    def _known_frauds(self, start: int, end: int, event_time: float) -> int:
        """How many of the transactions at positions [start, end) are frauds known at `event_time`."""
        return sum(
            1
            for transaction_id in self.transaction_ids[start:end]
            if (report := self.frauds.get(transaction_id)) is not None and report[0] <= event_time
        )

    def add(self, event_time: float, transaction_id: str) -> None:
        self._advance(event_time)
        newest = self.times[-1] if self.times else event_time
        if event_time <= newest - TERMINAL_HORIZON:
            return
        position = bisect.bisect_right(self.times, event_time)
        # Same-time transactions in id order: they come from different customers, so from
        # different partitions in any order, and the state must not depend on it.
        while (
            position and self.times[position - 1] == event_time and self.transaction_ids[position - 1] > transaction_id
        ):
            position -= 1
        self.times.insert(position, event_time)
        self.transaction_ids.insert(position, transaction_id)
        self._trim()

    def has(self, transaction_id: str, event_time: float) -> bool:
        """Whether the transaction has been added (and is still within the horizon)."""
        position = bisect.bisect_left(self.times, event_time)
        while position < len(self.times) and self.times[position] == event_time:
            if self.transaction_ids[position] == transaction_id:
                return True
            position += 1
        return False

    def label(self, transaction_id: str, is_fraud: bool, label_time: float, transaction_time: float) -> bool:
        """Record a label; returns whether the state changed (a genuine label, a repeated report
        or one too old for any window changes nothing). Order-free: the earliest report wins."""
        if not is_fraud or (self.times and transaction_time <= self.times[-1] - TERMINAL_HORIZON):
            return False
        known = self.frauds.get(transaction_id)
        if known is not None and known[0] <= label_time:
            return False
        self._advance(label_time)
        self.frauds[transaction_id] = (label_time, transaction_time)
        return True

    def counting(self, label_time: float, transaction_time: float, before: float = math.inf) -> int:
        """How many of the transactions added so far, earlier than `before`, a fraud reported at
        `label_time` counts in: those from its report (and its transaction) to the horizon."""
        start = bisect.bisect_left(self.times, max(label_time, transaction_time))
        end = bisect.bisect_left(self.times, min(transaction_time + TERMINAL_HORIZON, before))
        return max(0, end - start)

    def _trim(self) -> None:
        horizon = self.times[-1] - TERMINAL_HORIZON
        cut = bisect.bisect_right(self.times, horizon)
        if cut:
            del self.times[:cut], self.transaction_ids[:cut]
        stale = [t for t, (_, transaction_time) in self.frauds.items() if transaction_time <= horizon]
        for transaction_id in stale:
            del self.frauds[transaction_id]

    def to_json(self) -> str:
        return orjson.dumps([self.as_of, self.updates, self.times, self.transaction_ids, self.frauds]).decode()

    @classmethod
    def from_json(cls, text: str | None) -> TerminalState:
        if not text:
            return cls()
        as_of, updates, times, transaction_ids, frauds = orjson.loads(text)
        return cls(as_of, updates, times, transaction_ids, {k: (v[0], v[1]) for k, v in frauds.items()})


def feature_vector(
    customer: CustomerState,
    terminal: TerminalState,
    *,
    event_time: float,
    amount: float,
    terminal_id: str,
) -> dict[str, float]:
    """The feature vector of one transaction from the state of its customer and terminal:
    the one function the stream, the backfill and request-time scoring all call."""
    return {
        **transaction_features(amount, event_time),
        **customer.features(event_time, amount, terminal_id),
        **terminal.features(event_time),
    }
