"""The reference distribution of a model version's inputs and score: the deciles of each on
the data the version was judged on (the trainer's holdout), stored with the version
(`reference.json` of its MLflow run) for the monitor to compare live traffic with."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Reference:
    """Per subject: the inner decile edges of its reference distribution, and the share of the
    reference in each of the bins they make (what PSI compares a window with)."""

    edges: Mapping[str, np.ndarray]
    shares: Mapping[str, np.ndarray]

    @classmethod
    def of(cls, columns: Mapping[str, np.ndarray], bins: int = 10) -> Reference:
        edges, shares = {}, {}
        for name, values in columns.items():
            inner = np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1]))
            counts = np.bincount(np.searchsorted(inner, values, side="right"), minlength=len(inner) + 1)
            edges[name], shares[name] = inner, counts / max(len(values), 1)
        return cls(edges, shares)

    def as_json(self) -> dict[str, dict[str, list[float]]]:
        return {n: {"edges": self.edges[n].tolist(), "shares": self.shares[n].tolist()} for n in self.edges}

    @classmethod
    def from_json(cls, document: Mapping[str, Mapping[str, Sequence[float]]]) -> Reference:
        return cls(
            {n: np.asarray(d["edges"], dtype=np.float64) for n, d in document.items()},
            {n: np.asarray(d["shares"], dtype=np.float64) for n, d in document.items()},
        )
