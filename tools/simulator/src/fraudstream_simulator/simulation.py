"""A whole simulation run: profiles, transactions, frauds, drift, and the labels that reveal
the frauds later. Output is columnar (pandas), ready for parquet or for a Kafka replay."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from fraudstream_simulator.config import SimulationConfig
from fraudstream_simulator.drift import DriftGroundTruth, apply_drift
from fraudstream_simulator.frauds import FraudCounts, add_frauds
from fraudstream_simulator.profiles import customer_profiles, terminal_profiles
from fraudstream_simulator.transactions import SECONDS_PER_DAY, generate_transactions

LABEL_STREAM = 2_000_000
CURRENCY = "EUR"


def transaction_key(n: int) -> str:
    return f"tx{n}"


def customer_key(n: int) -> str:
    return f"c{n}"


def terminal_key(n: int) -> str:
    return f"t{n}"


@dataclass
class Simulation:
    config: SimulationConfig
    # One row per transaction, chronological: transaction_id, customer_id, terminal_id (the
    # platform's string ids), amount, currency, event_time (UTC), tx_time_seconds, tx_time_days
    # (the handbook's columns), is_fraud, fraud_scenario (ground truth).
    transactions: pd.DataFrame
    # One row per transaction, in label_time order: when its truth became known.
    labels: pd.DataFrame
    customers: pd.DataFrame
    terminals: pd.DataFrame
    fraud_counts: FraudCounts
    drifts: list[DriftGroundTruth]

    def ground_truth(self) -> dict[str, object]:
        return {
            "start_date": self.config.start_date.isoformat(),
            "nb_days": self.config.nb_days,
            "seed": self.config.seed,
            "transactions": len(self.transactions),
            "frauds": int(self.transactions["is_fraud"].sum()),
            "frauds_by_scenario_as_added": asdict(self.fraud_counts),
            "fraud_label_delay_days": list(self.config.fraud_label_delay_days),
            "drifts": [asdict(d) for d in self.drifts],
        }


def simulate(config: SimulationConfig) -> Simulation:
    customers = customer_profiles(config)
    terminals = terminal_profiles(config)
    table = generate_transactions(config, customers, terminals)
    counts = add_frauds(table, len(customers), len(terminals), config)
    truths: list[DriftGroundTruth] = []
    for spec in config.drifts:
        table, truth = apply_drift(table, spec, customers, terminals, config)
        truths.append(truth)

    start = pd.Timestamp(config.start_date)
    event_time = start + pd.to_timedelta(table.seconds, unit="s")
    transactions = pd.DataFrame(
        {
            "transaction_id": [transaction_key(int(n)) for n in table.transaction_id],
            "customer_id": [customer_key(int(n)) for n in table.customer_id],
            "terminal_id": [terminal_key(int(n)) for n in table.terminal_id],
            "amount": table.amount,
            "currency": CURRENCY,
            "event_time": event_time,
            "tx_time_seconds": table.seconds,
            "tx_time_days": table.days,
            "is_fraud": table.fraud.astype(bool),
            "fraud_scenario": table.fraud_scenario.astype(np.int32),
        }
    )
    labels = _labels(transactions, config)
    return Simulation(
        config=config,
        transactions=transactions,
        labels=labels,
        customers=pd.DataFrame(
            {
                "customer_id": [customer_key(i) for i in range(len(customers))],
                "x": customers.x,
                "y": customers.y,
                "mean_amount": customers.mean_amount,
                "std_amount": customers.std_amount,
                "mean_nb_tx_per_day": customers.mean_nb_tx_per_day,
            }
        ),
        terminals=pd.DataFrame(
            {
                "terminal_id": [terminal_key(i) for i in range(len(terminals))],
                "x": terminals.x,
                "y": terminals.y,
            }
        ),
        fraud_counts=counts,
        drifts=truths,
    )


def _labels(transactions: pd.DataFrame, config: SimulationConfig) -> pd.DataFrame:
    """A fraud is reported between the configured delays (uniformly, to the second); a genuine
    transaction is confirmed once the longest delay has passed without a report."""
    rng = np.random.RandomState(config.seed_for(LABEL_STREAM))
    low, high = config.fraud_label_delay_days
    fraud = transactions["is_fraud"].to_numpy()
    delay_seconds = np.full(len(transactions), int(high * SECONDS_PER_DAY), dtype=np.int64)
    delay_seconds[fraud] = (rng.uniform(low, high, size=int(fraud.sum())) * SECONDS_PER_DAY).astype(np.int64)
    labels = pd.DataFrame(
        {
            "transaction_id": transactions["transaction_id"],
            "customer_id": transactions["customer_id"],
            "terminal_id": transactions["terminal_id"],
            "transaction_time": transactions["event_time"],
            "is_fraud": transactions["is_fraud"],
            "label_time": transactions["event_time"] + pd.to_timedelta(delay_seconds, unit="s"),
            "fraud_scenario": transactions["fraud_scenario"],
        }
    )
    return labels.sort_values("label_time", kind="stable").reset_index(drop=True)
