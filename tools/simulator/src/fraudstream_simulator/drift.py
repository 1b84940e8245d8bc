"""Drift scenarios, each switched on from a chosen day, with its ground truth written down.

They are applied after the handbook's frauds, so a run without drift is the handbook's data
set unchanged, and a run with drift differs from it only from the drift's start day on.

- new-fraud-pattern (fraud scenario 4, "card testing"): from the start day, every day 8
  customers drawn at random have their card tested: a burst of 3 to 6 small payments
  (0.50 to 3.00) within one hour of night (01:00-05:00), at one terminal far from home. All are
  frauds. What changes: new frauds with low amounts, at night, in bursts, on unusual
  terminals; the handbook's scenarios never produce them.
- amount-shift: from the start day, every amount is multiplied by 1.6 (a price or currency
  change). Labels do not change. What changes: the amount distribution and every amount-based
  feature (covariate shift); the score distribution follows.
- new-terminals: from the start day, a cluster of 150 new terminals opens around one point
  (a new shopping district, normal spread of 1.5 around a seeded centre); customers within the
  radius of the centre make half of their payments there. What changes: unseen terminal ids
  with no history, and the terminal features of the affected payments.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fraudstream_simulator.config import DriftSpec, SimulationConfig
from fraudstream_simulator.profiles import CustomerProfiles, TerminalProfiles
from fraudstream_simulator.transactions import SECONDS_PER_DAY, TransactionTable

SCENARIO_CARD_TESTING = 4
DRIFT_STREAM = 1_000_000  # random streams of drift scenarios start here, apart from the handbook's

CARD_TESTING_CUSTOMERS_PER_DAY = 8
AMOUNT_SHIFT_FACTOR = 1.6
NEW_TERMINALS = 150
NEW_TERMINALS_SPREAD = 1.5
NEW_TERMINALS_SHARE = 0.5


@dataclass(frozen=True)
class DriftGroundTruth:
    name: str
    start_day: int
    start_time: str
    description: str
    affected_transactions: int


def apply_drift(
    table: TransactionTable,
    spec: DriftSpec,
    customers: CustomerProfiles,
    terminals: TerminalProfiles,
    config: SimulationConfig,
) -> tuple[TransactionTable, DriftGroundTruth]:
    if not 0 <= spec.start_day < config.nb_days:
        raise ValueError(f"drift {spec.name} starts on day {spec.start_day}, outside 0..{config.nb_days - 1}")
    start_iso = spec.starts_at(config.start_date).isoformat()
    if spec.name == "new-fraud-pattern":
        table, affected = _card_testing(table, spec, terminals, customers, config)
        description = "card-testing bursts: small night payments on far terminals, all fraud (scenario 4)"
    elif spec.name == "amount-shift":
        affected = _amount_shift(table, spec)
        description = f"every amount x{AMOUNT_SHIFT_FACTOR}; labels unchanged"
    else:
        affected = _new_terminals(table, spec, customers, terminals, config)
        description = f"{NEW_TERMINALS} new terminals in one cluster take half the payments of nearby customers"
    return table, DriftGroundTruth(spec.name, spec.start_day, start_iso, description, affected)


def _card_testing(
    table: TransactionTable,
    spec: DriftSpec,
    terminals: TerminalProfiles,
    customers: CustomerProfiles,
    config: SimulationConfig,
) -> tuple[TransactionTable, int]:
    rng = np.random.RandomState(config.seed_for(DRIFT_STREAM + 4))
    seconds: list[int] = []
    customer_ids: list[int] = []
    terminal_ids: list[int] = []
    amounts: list[float] = []
    terminal_xy = np.stack([terminals.x, terminals.y], axis=1)
    for day in range(spec.start_day, config.nb_days):
        for customer in rng.choice(len(customers), CARD_TESTING_CUSTOMERS_PER_DAY, replace=False):
            home = np.array([customers.x[customer], customers.y[customer]])
            far = np.flatnonzero(np.linalg.norm(terminal_xy - home, axis=1) > 4 * config.radius)
            terminal = int(rng.choice(far))
            burst_start = day * SECONDS_PER_DAY + int(rng.randint(3600, 5 * 3600))
            for _ in range(int(rng.randint(3, 7))):
                seconds.append(burst_start + int(rng.randint(0, 3600)))
                customer_ids.append(int(customer))
                terminal_ids.append(terminal)
                amounts.append(round(float(rng.uniform(0.5, 3.0)), 2))
    added = len(seconds)
    merged = _append(table, seconds, customer_ids, terminal_ids, amounts, SCENARIO_CARD_TESTING)
    return merged, added


def _amount_shift(table: TransactionTable, spec: DriftSpec) -> int:
    shifted = table.days >= spec.start_day
    table.amount[shifted] = np.round(table.amount[shifted] * AMOUNT_SHIFT_FACTOR, 2)
    return int(shifted.sum())


def _new_terminals(
    table: TransactionTable,
    spec: DriftSpec,
    customers: CustomerProfiles,
    terminals: TerminalProfiles,
    config: SimulationConfig,
) -> int:
    rng = np.random.RandomState(config.seed_for(DRIFT_STREAM + 6))
    centre = rng.uniform(20, 80, size=2)
    new_xy = centre + rng.normal(0, NEW_TERMINALS_SPREAD, size=(NEW_TERMINALS, 2))
    first_new_id = len(terminals)
    customer_xy = np.stack([customers.x, customers.y], axis=1)
    nearby = np.flatnonzero(np.linalg.norm(customer_xy - centre, axis=1) < config.radius)
    affected = 0
    after_start = table.days >= spec.start_day
    for customer in nearby:
        reachable = np.flatnonzero(np.linalg.norm(new_xy - customer_xy[customer], axis=1) < config.radius)
        if len(reachable) == 0:
            continue
        rows = np.flatnonzero(after_start & (table.customer_id == customer))
        moved = rows[rng.random_sample(len(rows)) < NEW_TERMINALS_SHARE]
        table.terminal_id[moved] = first_new_id + rng.choice(reachable, size=len(moved))
        affected += len(moved)
    return affected


def _append(
    table: TransactionTable,
    seconds: list[int],
    customer_ids: list[int],
    terminal_ids: list[int],
    amounts: list[float],
    scenario: int,
) -> TransactionTable:
    """Adds fraudulent transactions; they take ids after the existing ones, so the handbook's
    transactions keep theirs, and the table stays chronological."""
    n_new = len(seconds)
    first_id = int(table.transaction_id.max()) + 1 if len(table) else 0
    merged = TransactionTable(
        transaction_id=np.concatenate([table.transaction_id, np.arange(first_id, first_id + n_new)]),
        seconds=np.concatenate([table.seconds, np.asarray(seconds, dtype=np.int64)]),
        customer_id=np.concatenate([table.customer_id, np.asarray(customer_ids, dtype=np.int64)]),
        terminal_id=np.concatenate([table.terminal_id, np.asarray(terminal_ids, dtype=np.int64)]),
        amount=np.concatenate([table.amount, np.asarray(amounts, dtype=np.float64)]),
        fraud=np.concatenate([table.fraud, np.ones(n_new, dtype=np.int64)]),
        fraud_scenario=np.concatenate([table.fraud_scenario, np.full(n_new, scenario, dtype=np.int64)]),
    )
    order = np.argsort(merged.seconds, kind="stable")
    return TransactionTable(
        transaction_id=merged.transaction_id[order],
        seconds=merged.seconds[order],
        customer_id=merged.customer_id[order],
        terminal_id=merged.terminal_id[order],
        amount=merged.amount[order],
        fraud=merged.fraud[order],
        fraud_scenario=merged.fraud_scenario[order],
    )
