"""What a simulation run is made of. The defaults are the handbook's default run."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

# The scenarios fraudstream_simulator.drift makes.
DRIFT_NAMES = ("new-fraud-pattern", "amount-shift", "new-terminals")


@dataclass(frozen=True)
class DriftSpec:
    """One drift scenario switched on from `start_day` (days after the start date)."""

    name: str
    start_day: int

    def __post_init__(self) -> None:
        if self.name not in DRIFT_NAMES:
            raise ValueError(f"unknown drift scenario {self.name!r}; choose from {', '.join(DRIFT_NAMES)}")

    @classmethod
    def parse(cls, text: str) -> DriftSpec:
        """`NAME:DAY`, e.g. `amount-shift:120`; ValueError says what is wrong."""
        name, _, day = text.partition(":")
        if day.isdigit():
            try:
                return cls(name, int(day))
            except ValueError:
                pass  # an unknown name: said below with the format
        raise ValueError(f"drift {text!r}: write NAME:DAY with a scenario of {', '.join(DRIFT_NAMES)}")

    def starts_at(self, start_date: datetime) -> datetime:
        """When it begins, for a world that begins at `start_date`."""
        return start_date + timedelta(days=self.start_day)


@dataclass(frozen=True)
class SimulationConfig:
    n_customers: int = 5000
    n_terminals: int = 10000
    nb_days: int = 183
    start_date: datetime = datetime(2018, 4, 1, tzinfo=UTC)
    radius: float = 5.0
    # 0 reproduces the handbook's seeding exactly; any other value gives another, equally
    # deterministic, world.
    seed: int = 0
    # A fraud becomes known between these many days after the transaction (uniformly);
    # a genuine transaction is confirmed genuine after the longest delay.
    fraud_label_delay_days: tuple[float, float] = (1.0, 7.0)
    drifts: tuple[DriftSpec, ...] = field(default_factory=tuple)

    def seed_for(self, stream: int) -> int:
        """Seed of one random stream; with seed 0 this is the handbook's own seed value."""
        return stream if self.seed == 0 else (self.seed * 1_000_003 + stream) % (2**32)

    @property
    def label_maturity_days(self) -> float:
        return self.fraud_label_delay_days[1]
