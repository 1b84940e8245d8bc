"""Customer and terminal profiles, as the handbook draws them (chapter 3, "Simulated dataset").

Customers and terminals sit on a 100 x 100 grid; a customer pays only at terminals within
`radius` of home. Draw order and seeds follow the handbook so that seed 0 gives its world.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from fraudstream_simulator.config import SimulationConfig

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

CUSTOMER_STREAM = 0
TERMINAL_STREAM = 1


@dataclass(frozen=True)
class CustomerProfiles:
    x: FloatArray
    y: FloatArray
    mean_amount: FloatArray
    std_amount: FloatArray
    mean_nb_tx_per_day: FloatArray

    def __len__(self) -> int:
        return len(self.x)


@dataclass(frozen=True)
class TerminalProfiles:
    x: FloatArray
    y: FloatArray

    def __len__(self) -> int:
        return len(self.x)


def customer_profiles(config: SimulationConfig) -> CustomerProfiles:
    rng = np.random.RandomState(config.seed_for(CUSTOMER_STREAM))
    # The handbook draws, per customer in turn, uniform(0,100) twice, uniform(5,100) and
    # uniform(0,4). Each legacy uniform(a, b) is a + (b - a) * next_double(), so one block of
    # doubles in row-major order, scaled per column, is the same stream and the same values.
    u = rng.random_sample((config.n_customers, 4))
    draws = np.empty_like(u)
    draws[:, 0] = 0 + 100 * u[:, 0]
    draws[:, 1] = 0 + 100 * u[:, 1]
    draws[:, 2] = 5 + 95 * u[:, 2]
    draws[:, 3] = 0 + 4 * u[:, 3]
    return CustomerProfiles(
        x=draws[:, 0],
        y=draws[:, 1],
        mean_amount=draws[:, 2],
        std_amount=draws[:, 2] / 2,
        mean_nb_tx_per_day=draws[:, 3],
    )


def terminal_profiles(config: SimulationConfig) -> TerminalProfiles:
    rng = np.random.RandomState(config.seed_for(TERMINAL_STREAM))
    xy = 0 + 100 * rng.random_sample((config.n_terminals, 2))
    return TerminalProfiles(x=xy[:, 0], y=xy[:, 1])


def terminals_within_radius(customers: CustomerProfiles, terminals: TerminalProfiles, radius: float) -> list[list[int]]:
    """For each customer, the ids of the terminals strictly closer than `radius`, ascending."""
    terminal_xy = np.stack([terminals.x, terminals.y], axis=1)
    available: list[list[int]] = []
    for i in range(len(customers)):
        customer_xy = np.array([customers.x[i], customers.y[i]])
        distance = np.sqrt(np.sum(np.square(customer_xy - terminal_xy), axis=1))
        available.append([int(t) for t in np.where(distance < radius)[0]])
    return available
