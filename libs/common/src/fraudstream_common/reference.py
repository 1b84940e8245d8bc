"""The reference distribution of a model version's inputs and score on the data the version was
judged on (the trainer's holdout), stored with the version (`reference.json` of its MLflow run)
for the monitor to compare live traffic with.

Two views of it:

- per subject (each feature, and the score): the deciles, the share of the reference in each of
  the bins they make (what PSI compares a window with), and the range the reference covers;
- jointly, per pair of features: the share of the reference in each cell of a grid whose bins
  are cut at `TAIL_QUANTILES`, fine in the tails. A new pattern (a fraud ring testing cards with
  small payments at night) is a few dozen payments a day, too few to move any one feature's
  distribution, but it fills a cell that the reference left almost empty;
- the same grid over the reference's rows of the quiet hours of the night (`NIGHT_HOURS`, UTC)
  alone: what a night is like, to judge a night against. A whole day's share of a night-time
  cell is diluted by the day's traffic, and a few hours judged against it look unusual by
  their hour alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import combinations
from typing import Any

import numpy as np

from fraudstream_common.features.definitions import FEATURE_NAMES

SCORE = "score"
TAIL_QUANTILES = (0.001, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 0.999)
# Hours of the day [first, end), UTC: the night's quietest, when card testing is least hidden.
NIGHT_HOURS = (1, 5)


@dataclass(frozen=True)
class JointGrid:
    """Every pair of `subjects` cut into cells by each one's `edges`. A row falls in one cell per
    pair; cells are numbered across all pairs, so that one array of counts holds the grid."""

    subjects: tuple[str, ...]
    edges: Mapping[str, np.ndarray]
    pairs: tuple[tuple[str, str], ...] = field(init=False)
    offsets: np.ndarray = field(init=False)  # the first cell of each pair, and the total at the end
    _first: np.ndarray = field(init=False, repr=False)  # per pair, the index of its first subject
    _second: np.ndarray = field(init=False, repr=False)
    _widths: np.ndarray = field(init=False, repr=False)  # per pair, the second subject's bins
    _starts: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        pairs = tuple(combinations(self.subjects, 2))
        sizes = [(len(self.edges[a]) + 1) * (len(self.edges[b]) + 1) for a, b in pairs]
        object.__setattr__(self, "pairs", pairs)
        object.__setattr__(self, "offsets", np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)]))
        object.__setattr__(self, "_starts", self.offsets[:-1].astype(np.int32))
        index = {name: i for i, name in enumerate(self.subjects)}
        object.__setattr__(self, "_first", np.asarray([index[a] for a, _ in pairs], dtype=np.intp))
        object.__setattr__(self, "_second", np.asarray([index[b] for _, b in pairs], dtype=np.intp))
        object.__setattr__(self, "_widths", np.asarray([len(self.edges[b]) + 1 for _, b in pairs], dtype=np.int32))

    @classmethod
    def of(cls, columns: Mapping[str, np.ndarray], subjects: Sequence[str]) -> JointGrid:
        return cls(tuple(subjects), {n: np.unique(np.quantile(columns[n], TAIL_QUANTILES)) for n in subjects})

    @property
    def size(self) -> int:
        return int(self.offsets[-1])

    def cells(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        """(rows, pairs): the cell of each row in each pair."""
        bins = np.column_stack(
            [np.searchsorted(self.edges[n], columns[n], side="right").astype(np.int32) for n in self.subjects]
        )
        cells: np.ndarray = self._starts + bins[:, self._first] * self._widths + bins[:, self._second]
        return cells

    def describe(self, cell: int) -> tuple[str, str]:
        """The pair a cell belongs to ("a & b"), and the region it covers, in the features' units."""
        k = int(np.searchsorted(self.offsets, cell, side="right")) - 1
        a, b = self.pairs[k]
        bin_a, bin_b = divmod(cell - int(self.offsets[k]), len(self.edges[b]) + 1)
        return f"{a} & {b}", f"{_interval(a, self.edges[a], bin_a)} and {_interval(b, self.edges[b], bin_b)}"


def _interval(name: str, edges: np.ndarray, index: int) -> str:
    low = f"{edges[index - 1]:.6g} <= " if index > 0 else ""
    high = f" < {edges[index]:.6g}" if index < len(edges) else ""
    return f"{low}{name}{high}"


@dataclass(frozen=True)
class Reference:
    """Per subject: the inner decile edges of its reference distribution, the share of the
    reference in each of the bins they make, and the range the reference covers (values outside
    it are ones the version never saw). Jointly (optional; references written before it have
    none): the grid of feature pairs and the reference's share in each of its cells.
    `period_end` (optional): the end of the period the reference describes (Unix seconds); a
    version's predictions of earlier transactions are its own history, not traffic to judge.
    `night_counts` (optional, with the grid): the reference rows per cell among those of the
    hours `night_hours`."""

    edges: Mapping[str, np.ndarray]
    shares: Mapping[str, np.ndarray]
    lows: Mapping[str, float]
    highs: Mapping[str, float]
    joint: JointGrid | None = None
    joint_counts: np.ndarray | None = None  # reference rows per cell
    joint_rows: int = 0
    period_end: float | None = None
    night_hours: tuple[int, int] = NIGHT_HOURS
    night_counts: np.ndarray | None = None
    night_rows: int = 0

    @property
    def joint_shares(self) -> np.ndarray | None:
        return None if self.joint_counts is None else self.joint_counts / max(self.joint_rows, 1)

    @classmethod
    def of(
        cls,
        columns: Mapping[str, np.ndarray],
        bins: int = 10,
        joint: Sequence[str] = (),
        hours: np.ndarray | None = None,
    ) -> Reference:
        """`joint`: the subjects whose pairs the joint grid covers (none: no grid). `hours`: each
        row's hour of the day (UTC), for the grid's night counts (none: no night counts)."""
        edges, shares, lows, highs = {}, {}, {}, {}
        for name, values in columns.items():
            inner = np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1]))
            counts = np.bincount(np.searchsorted(inner, values, side="right"), minlength=len(inner) + 1)
            edges[name], shares[name] = inner, counts / max(len(values), 1)
            lows[name], highs[name] = float(np.min(values)), float(np.max(values))
        if not joint:
            return cls(edges, shares, lows, highs)
        grid = JointGrid.of(columns, joint)
        cells = grid.cells(columns)
        cell_counts = np.bincount(cells.ravel(), minlength=grid.size)
        reference = cls(edges, shares, lows, highs, grid, cell_counts, len(columns[joint[0]]))
        if hours is None:
            return reference
        first, end = NIGHT_HOURS
        night = (hours >= first) & (hours < end)
        night_counts = np.bincount(cells[night].ravel(), minlength=grid.size)
        return replace(reference, night_counts=night_counts, night_rows=int(night.sum()))

    def as_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "subjects": {
                n: {
                    "edges": self.edges[n].tolist(),
                    "shares": self.shares[n].tolist(),
                    "min": self.lows[n],
                    "max": self.highs[n],
                }
                for n in self.edges
            }
        }
        if self.joint is not None and self.joint_counts is not None:
            document["joint"] = {
                "subjects": list(self.joint.subjects),
                "edges": {n: self.joint.edges[n].tolist() for n in self.joint.subjects},
                "rows": self.joint_rows,
                "counts": self.joint_counts.astype(np.int64).tolist(),
            }
            if self.night_counts is not None:
                document["joint"]["night"] = {
                    "hours": list(self.night_hours),
                    "rows": self.night_rows,
                    "counts": self.night_counts.astype(np.int64).tolist(),
                }
        if self.period_end is not None:
            document["period_end"] = self.period_end
        return document

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> Reference:
        # The first references were the per-subject mapping alone, with no joint grid.
        subjects: Mapping[str, Mapping[str, Any]] = document.get("subjects", document)
        joint, joint_counts, joint_rows = None, None, 0
        night_hours, night_counts, night_rows = NIGHT_HOURS, None, 0
        if "joint" in document:
            stored = document["joint"]
            joint = JointGrid(
                tuple(stored["subjects"]), {n: np.asarray(e, dtype=np.float64) for n, e in stored["edges"].items()}
            )
            joint_counts, joint_rows = np.asarray(stored["counts"], dtype=np.int64), int(stored["rows"])
            if len(joint_counts) != joint.size:
                raise ValueError(f"the joint reference has {len(joint_counts)} counts for {joint.size} cells")
            if (night := stored.get("night")) is not None:
                first, end = night["hours"]
                night_hours, night_rows = (int(first), int(end)), int(night["rows"])
                night_counts = np.asarray(night["counts"], dtype=np.int64)
                if len(night_counts) != joint.size:
                    raise ValueError(f"the night reference has {len(night_counts)} counts for {joint.size} cells")
        return cls(
            {n: np.asarray(d["edges"], dtype=np.float64) for n, d in subjects.items()},
            {n: np.asarray(d["shares"], dtype=np.float64) for n, d in subjects.items()},
            {n: float(d.get("min", -np.inf)) for n, d in subjects.items()},
            {n: float(d.get("max", np.inf)) for n, d in subjects.items()},
            joint,
            joint_counts,
            joint_rows,
            None if document.get("period_end") is None else float(document["period_end"]),
            night_hours,
            night_counts,
            night_rows,
        )


# The weekend flag is left out of the pairs: a day is all weekend or none of it, so a day's
# window would hold twice or none of the reference's weekend cells.
JOINT_SUBJECTS = tuple(name for name in FEATURE_NAMES if name != "tx_during_weekend")


def version_reference(
    features: Mapping[str, np.ndarray],
    scores: np.ndarray,
    period_end: float | None = None,
    hours: np.ndarray | None = None,
) -> Reference:
    """The reference stored with a model version: each feature and the score, and the pairs of
    `JOINT_SUBJECTS` (over the whole day, and over the night's hours where each row's hour of
    the day, UTC, is given), of the period that ends at `period_end`."""
    reference = Reference.of({**features, SCORE: scores}, joint=JOINT_SUBJECTS, hours=hours)
    return replace(reference, period_end=period_end)
