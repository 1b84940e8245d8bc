"""The handbook's three fraud scenarios, applied in its order and with its seeds.

1. Any amount above 220 is fraud (a baseline a model must learn).
2. Each day, 2 terminals drawn at random are compromised: every transaction on them over the
   next 28 days is fraud (learnable from the terminal's delayed fraud rate).
3. Each day, 3 customers drawn at random have their credentials leaked: over the next 14 days
   a third of their transactions are frauds with 5 times the amount (learnable from the
   customer's spending history).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from fraudstream_simulator.config import SimulationConfig
from fraudstream_simulator.profiles import IntArray
from fraudstream_simulator.transactions import TransactionTable

SCENARIO_AMOUNT = 1
SCENARIO_COMPROMISED_TERMINAL = 2
SCENARIO_LEAKED_CREDENTIALS = 3

AMOUNT_THRESHOLD = 220.0
TERMINAL_COMPROMISED_DAYS = 28
CUSTOMER_COMPROMISED_DAYS = 14


def _pandas_sample(population: int, n: int, seed: int) -> IntArray:
    """Positions pandas' `Series.sample(n, random_state=seed)` picks: a legacy permutation."""
    return np.random.RandomState(seed).choice(population, size=n, replace=False)


def add_frauds(table: TransactionTable, n_customers: int, n_terminals: int, config: SimulationConfig) -> FraudCounts:
    """Labels `table` in place; returns the handbook's per-scenario counts (as it prints them)."""
    days = table.days
    last_day = int(days.max()) if len(table) else 0
    # The table is chronological, so the rows of days [a, b) are one contiguous slice.
    day_starts = np.searchsorted(days, np.arange(last_day + TERMINAL_COMPROMISED_DAYS + 1))

    def rows_of_days(first: int, count: int) -> slice:
        return slice(int(day_starts[first]), int(day_starts[min(first + count, len(day_starts) - 1)]))

    above = table.amount > AMOUNT_THRESHOLD
    table.fraud[above] = 1
    table.fraud_scenario[above] = SCENARIO_AMOUNT
    after_scenario_1 = int(table.fraud.sum())

    for day in range(last_day):
        compromised = _pandas_sample(n_terminals, 2, config.seed_for(day))
        window = rows_of_days(day, TERMINAL_COMPROMISED_DAYS)
        hit = window.start + np.flatnonzero(np.isin(table.terminal_id[window], compromised))
        table.fraud[hit] = 1
        table.fraud_scenario[hit] = SCENARIO_COMPROMISED_TERMINAL
    after_scenario_2 = int(table.fraud.sum())

    for day in range(last_day):
        compromised = _pandas_sample(n_customers, 3, config.seed_for(day))
        window = rows_of_days(day, CUSTOMER_COMPROMISED_DAYS)
        candidates = window.start + np.flatnonzero(np.isin(table.customer_id[window], compromised))
        chooser = random.Random(config.seed_for(day))
        chosen = np.asarray(chooser.sample(candidates.tolist(), k=int(len(candidates) / 3)), dtype=np.int64)
        table.amount[chosen] = table.amount[chosen] * 5
        table.fraud[chosen] = 1
        table.fraud_scenario[chosen] = SCENARIO_LEAKED_CREDENTIALS
    after_scenario_3 = int(table.fraud.sum())
    return FraudCounts(
        scenario_1=after_scenario_1,
        scenario_2=after_scenario_2 - after_scenario_1,
        scenario_3=after_scenario_3 - after_scenario_2,
    )


@dataclass(frozen=True)
class FraudCounts:
    """Frauds each scenario added, counted as the handbook prints them (a later scenario may
    relabel an earlier one's fraud; the final `fraud_scenario` column shows the last word)."""

    scenario_1: int
    scenario_2: int
    scenario_3: int
