"""Genuine transactions, drawn customer by customer as the handbook does.

Per customer (seeded with its id, numpy and Python's `random` both), per day: a Poisson
number of transactions; each gets a time of day ~ N(12h, 20000 s), dropped outside the day,
an amount ~ N(mean, std) (uniform(0, 2 mean) when negative, rounded to cents), and a terminal
drawn uniformly among those within the radius. The calls are made in the handbook's order so
that seed 0 reproduces its data set, transaction for transaction.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from fraudstream_simulator.config import SimulationConfig
from fraudstream_simulator.profiles import (
    CustomerProfiles,
    FloatArray,
    IntArray,
    TerminalProfiles,
    terminals_within_radius,
)

SECONDS_PER_DAY = 86400


@dataclass
class TransactionTable:
    """Columns of the transaction table, one row per transaction, in chronological order."""

    transaction_id: IntArray
    seconds: IntArray  # seconds since the start date
    customer_id: IntArray
    terminal_id: IntArray
    amount: FloatArray
    fraud: IntArray
    fraud_scenario: IntArray

    def __len__(self) -> int:
        return len(self.seconds)

    @property
    def days(self) -> IntArray:
        return self.seconds // SECONDS_PER_DAY


def _customer_transactions(
    customer: int,
    profiles: CustomerProfiles,
    terminals: list[int],
    config: SimulationConfig,
) -> tuple[list[int], list[int], list[float]]:
    seed = config.seed_for(customer)
    rng = np.random.RandomState(seed)
    py_rng = random.Random(seed)
    poisson, normal, uniform, choice = rng.poisson, rng.normal, rng.uniform, py_rng.choice
    mean_nb_tx = float(profiles.mean_nb_tx_per_day[customer])
    mean_amount = float(profiles.mean_amount[customer])
    std_amount = float(profiles.std_amount[customer])
    times: list[int] = []
    terminal_ids: list[int] = []
    amounts: list[float] = []
    for day in range(config.nb_days):
        for _ in range(poisson(mean_nb_tx)):
            time_tx = int(normal(SECONDS_PER_DAY / 2, 20000))
            if 0 < time_tx < SECONDS_PER_DAY:
                amount = normal(mean_amount, std_amount)
                if amount < 0:
                    amount = uniform(0, mean_amount * 2)
                if terminals:
                    times.append(time_tx + day * SECONDS_PER_DAY)
                    terminal_ids.append(choice(terminals))
                    amounts.append(amount)
    return times, terminal_ids, amounts


def generate_transactions(
    config: SimulationConfig, customers: CustomerProfiles, terminals: TerminalProfiles
) -> TransactionTable:
    available = terminals_within_radius(customers, terminals, config.radius)
    all_times: list[int] = []
    all_customers: list[int] = []
    all_terminals: list[int] = []
    all_amounts: list[float] = []
    for customer in range(len(customers)):
        times, terminal_ids, amounts = _customer_transactions(customer, customers, available[customer], config)
        all_times.extend(times)
        all_customers.extend([customer] * len(times))
        all_terminals.extend(terminal_ids)
        all_amounts.extend(amounts)
    seconds = np.asarray(all_times, dtype=np.int64)
    # Chronological order; ties keep generation order (customer, then draw), which is stable
    # across machines, unlike the handbook's default quicksort.
    order = np.argsort(seconds, kind="stable")
    n = len(seconds)
    return TransactionTable(
        transaction_id=np.arange(n, dtype=np.int64),
        seconds=seconds[order],
        customer_id=np.asarray(all_customers, dtype=np.int64)[order],
        terminal_id=np.asarray(all_terminals, dtype=np.int64)[order],
        # np.round as the handbook rounds (half to even after scaling), not Python's round.
        amount=np.asarray(np.round(np.asarray(all_amounts, dtype=np.float64), decimals=2), dtype=np.float64)[order],
        fraud=np.zeros(n, dtype=np.int64),
        fraud_scenario=np.zeros(n, dtype=np.int64),
    )
