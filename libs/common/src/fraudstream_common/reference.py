"""The reference distribution of a model version's inputs and score: the deciles of each on
the data the version was judged on (the trainer's holdout), stored with the version
(`reference.json` of its MLflow run) for the monitor to compare live traffic with."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Reference:
    """Per subject: the inner decile edges of its reference distribution, the share of the
    reference in each of the bins they make (what PSI compares a window with), and the range
    the reference covers (values outside it are ones the version never saw)."""

    edges: Mapping[str, np.ndarray]
    shares: Mapping[str, np.ndarray]
    lows: Mapping[str, float]
    highs: Mapping[str, float]

    @classmethod
    def of(cls, columns: Mapping[str, np.ndarray], bins: int = 10) -> Reference:
        edges, shares, lows, highs = {}, {}, {}, {}
        for name, values in columns.items():
            inner = np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1]))
            counts = np.bincount(np.searchsorted(inner, values, side="right"), minlength=len(inner) + 1)
            edges[name], shares[name] = inner, counts / max(len(values), 1)
            lows[name], highs[name] = float(np.min(values)), float(np.max(values))
        return cls(edges, shares, lows, highs)

    def as_json(self) -> dict[str, dict[str, float | list[float]]]:
        return {
            n: {
                "edges": self.edges[n].tolist(),
                "shares": self.shares[n].tolist(),
                "min": self.lows[n],
                "max": self.highs[n],
            }
            for n in self.edges
        }

    @classmethod
    def from_json(cls, document: Mapping[str, Mapping[str, Any]]) -> Reference:
        return cls(
            {n: np.asarray(d["edges"], dtype=np.float64) for n, d in document.items()},
            {n: np.asarray(d["shares"], dtype=np.float64) for n, d in document.items()},
            {n: float(d.get("min", -np.inf)) for n, d in document.items()},
            {n: float(d.get("max", np.inf)) for n, d in document.items()},
        )
