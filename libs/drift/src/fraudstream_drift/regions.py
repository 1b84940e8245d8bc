"""New patterns in the joint distribution of the inputs: a region of a feature pair that the
reference left almost empty and that many different cards and terminals now fill.

A fraud ring testing stolen cards makes a few dozen small night payments a day among tens of
thousands: no single feature's distribution moves, but cells like "night and an amount a
hundredth of the card's usual" fill up. Each pair of features is cut by the reference's
`JointGrid` (bins fine in the tails); cells whose reference share is below `rare_share` are
watched. A watched cell is evidence when, over the window, it holds

- at least `min_entities` distinct cards and as many distinct terminals (its entity count is the
  smaller of the two), and at least `ratio` times the rows the reference expects there: one busy
  card or one busy terminal fills cells of its own features on its own, which is no new pattern;
- so many that a Poisson count with the reference's expectation reaches it with probability
  below `p_value` (thousands of cells are judged every hour). The expectation adds
  `prior_rows` to each cell's reference count: a week of reference leaves many rare cells
  empty or nearly so by chance, and taking their share as exact raised most false alarms.

A card-testing ring is active at night and small: over a whole day's window it stays below the
threshold until its second night. `NightRegions` judges each night's quiet hours on their own,
against the reference's rows of the same hours, and over corner regions rather than cells: the
watched cells of a pair in the one to three most extreme bins of each feature (a ring spreads
over the neighbouring cells of its corner, a single cell holds a share of it).

Memory is bounded: per watched cell and hour, the distinct cards and terminals seen, up to
`max_entities` each (as 64-bit hashes); a cell that had that many in an hour is no longer
clustered on a few entities, and its rows count instead. Counting is vectorized: the only
per-prediction Python is hashing the card and terminal of a row in a watched cell.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import gammainc

from fraudstream_common.reference import JointGrid

_MIX = np.uint64(0x9E3779B97F4A7C15)  # spreads an entity's hash before a cell is added to it


@dataclass(frozen=True)
class RegionPolicy:
    rare_share: float = 5e-4
    min_entities: int = 6
    ratio: float = 5.0
    p_value: float = 1e-8
    max_entities: int = 64
    # Rows added to every cell's reference count: a cell a sample of N rows left empty may
    # still hold some of the traffic.
    prior_rows: float = 3.0


@dataclass(frozen=True)
class RegionFinding:
    pair: str
    region: str
    entities: int
    rows: int
    expected: float
    p_value: float


@dataclass(frozen=True)
class Sightings:
    """The distinct entities (cards, or terminals) an hour put in watched cells: one row per
    (cell, entity), at most `max_entities` per cell, and the cells that had more."""

    cells: np.ndarray
    entities: np.ndarray
    saturated: np.ndarray  # bool per cell of the grid

    def to_json(self) -> dict[str, Any]:
        return {
            "cells": self.cells.tolist(),
            "entities": self.entities.tolist(),
            "size": len(self.saturated),
            "saturated": np.flatnonzero(self.saturated).tolist(),
        }

    @staticmethod
    def from_json(document: Mapping[str, Any]) -> Sightings:
        saturated = np.zeros(document["size"], dtype=bool)
        saturated[np.asarray(document["saturated"], dtype=np.int64)] = True
        return Sightings(
            np.asarray(document["cells"], dtype=np.int64), np.asarray(document["entities"], dtype=np.int64), saturated
        )


@dataclass(frozen=True)
class HourSightings:
    cards: Sightings
    terminals: Sightings

    def to_json(self) -> dict[str, Any]:
        return {"cards": self.cards.to_json(), "terminals": self.terminals.to_json()}

    @staticmethod
    def from_json(document: Mapping[str, Any]) -> HourSightings:
        return HourSightings(Sightings.from_json(document["cards"]), Sightings.from_json(document["terminals"]))


class JointRegions:
    """Counts one model version's predictions in the watched cells, hour by hour of event time,
    and judges a window of hours."""

    def __init__(
        self, grid: JointGrid, reference_shares: np.ndarray, policy: RegionPolicy, reference_rows: int
    ) -> None:
        self.grid = grid
        self.policy = policy
        self._shares = reference_shares + policy.prior_rows / max(reference_rows, 1)
        self._watched = reference_shares < policy.rare_share
        # Per open hour (by its start): the watched cells hit, and each hit's card and terminal.
        self._open: dict[float, tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]] = {}

    def count(
        self, start: float, columns: Mapping[str, np.ndarray], cards: Sequence[str], terminals: Sequence[str]
    ) -> np.ndarray | None:
        """Rows of the open hour beginning at `start`. Returns their count per cell (the caller
        keeps it with the hour), or None when a subject of the grid is missing from `columns`."""
        if any(name not in columns for name in self.grid.subjects):
            return None
        cells = self.grid.cells(columns)
        rows, pairs = np.nonzero(self._watched[cells])
        hits = cells[rows, pairs]
        hour_cells, hour_cards, hour_terminals = self._open.setdefault(start, ([], [], []))
        hour_cells.append(hits)
        # A row in several watched cells is hashed once.
        seen, where = np.unique(rows, return_inverse=True)
        hour_cards.append(_hashes([cards[i] for i in seen.tolist()])[where])
        hour_terminals.append(_hashes([terminals[i] for i in seen.tolist()])[where])
        return np.bincount(hits, minlength=self.grid.size)

    def close_hour(self, start: float) -> HourSightings:
        """The distinct cards and terminals per watched cell of the hour beginning at `start`."""
        hour_cells, hour_cards, hour_terminals = self._open.pop(start, ([], [], []))
        empty = np.empty(0, dtype=np.int64)
        cells = np.concatenate(hour_cells) if hour_cells else empty
        cards = np.concatenate(hour_cards) if hour_cards else empty
        terminals = np.concatenate(hour_terminals) if hour_terminals else empty
        return HourSightings(self._distinct(cells, cards), self._distinct(cells, terminals))

    def judge(self, window_rows: int, cell_rows: np.ndarray, hours: Sequence[HourSightings]) -> RegionFinding | None:
        """The window holds `window_rows` predictions, `cell_rows` per cell, and the sightings of
        its `hours`. Returns the most significant region, if any."""
        policy = self.policy
        expected = self._shares * window_rows
        candidates = np.flatnonzero(
            self._watched & (cell_rows >= policy.min_entities) & (cell_rows >= policy.ratio * expected)
        )
        if not len(candidates):
            return None
        entities = np.minimum(
            self._window_distinct(candidates, cell_rows, [h.cards for h in hours]),
            self._window_distinct(candidates, cell_rows, [h.terminals for h in hours]),
        )
        # P(X >= entities) for X ~ Poisson(expected): the regularized lower incomplete gamma.
        p_values = gammainc(np.maximum(entities, 1), expected[candidates])
        significant = (
            (entities >= policy.min_entities)
            & (entities >= policy.ratio * expected[candidates])
            & (p_values < policy.p_value)
        )
        if not significant.any():
            return None
        best = int(np.argmin(np.where(significant, p_values, np.inf)))
        cell = int(candidates[best])
        pair, region = self.grid.describe(cell)
        return RegionFinding(
            pair, region, int(entities[best]), int(cell_rows[cell]), float(expected[cell]), float(p_values[best])
        )

    def _distinct(self, cells: np.ndarray, entities: np.ndarray) -> Sightings:
        _, first = np.unique(_pair_keys(cells, entities), return_index=True)
        order = first[np.argsort(cells[first], kind="stable")]
        cells, entities = cells[order], entities[order]
        rank = np.arange(len(cells)) - np.searchsorted(cells, cells, side="left")
        kept = rank < self.policy.max_entities
        saturated = np.zeros(self.grid.size, dtype=bool)
        saturated[cells[~kept]] = True
        return Sightings(cells[kept], entities[kept], saturated)

    def _window_distinct(self, candidates: np.ndarray, cell_rows: np.ndarray, hours: Sequence[Sightings]) -> np.ndarray:
        cells, entities = _sighted(hours)
        mine = np.isin(cells, candidates)
        distinct = _distinct_per(cells[mine], entities[mine], self.grid.size)[candidates]
        saturated = np.any([h.saturated[candidates] for h in hours], axis=0)
        counted: np.ndarray = np.where(saturated, cell_rows[candidates], distinct)
        return counted


@dataclass(frozen=True)
class _Corner:
    """A corner of a pair's grid: per feature, how many of its highest bins (> 0) or of its
    lowest (< 0)."""

    pair: int
    first: int
    second: int


class NightRegions:
    """Judges the hours of one night against the reference's rows of the same hours, over the
    corner regions of each pair: the watched cells (by the whole day's reference, as counted)
    in the `CORNER_DEPTHS` most extreme bins of each feature."""

    CORNER_DEPTHS = (1, 2, 3)

    def __init__(
        self,
        grid: JointGrid,
        reference_shares: np.ndarray,
        night_counts: np.ndarray,
        night_rows: int,
        policy: RegionPolicy,
    ) -> None:
        self.grid = grid
        self.policy = policy
        watched = reference_shares < policy.rare_share
        corners: list[_Corner] = []
        members: list[np.ndarray] = []
        for k, (a, b) in enumerate(grid.pairs):
            width_a, width_b = len(grid.edges[a]) + 1, len(grid.edges[b]) + 1
            for bins_a in _tails(width_a, self.CORNER_DEPTHS):
                for bins_b in _tails(width_b, self.CORNER_DEPTHS):
                    cells = int(grid.offsets[k]) + (bins_a[:, None] * width_b + bins_b[None, :]).ravel()
                    cells = cells[watched[cells]]
                    if len(cells):
                        corners.append(_Corner(k, _signed(bins_a), _signed(bins_b)))
                        members.append(cells)
        sizes = np.asarray([len(m) for m in members], dtype=np.int64)
        cells = np.concatenate(members) if members else np.empty(0, dtype=np.int64)
        regions = np.repeat(np.arange(len(members)), sizes)
        order = np.argsort(cells, kind="stable")
        self._corners = corners
        self._member_cells, self._member_regions = cells[order], regions[order]
        reference_rows = np.bincount(regions, weights=night_counts[cells], minlength=len(corners))
        self._shares = (reference_rows + policy.prior_rows) / max(night_rows, 1)

    def __len__(self) -> int:
        return len(self._corners)

    def judge(self, night_rows: int, cell_rows: np.ndarray, hours: Sequence[HourSightings]) -> RegionFinding | None:
        """The night holds `night_rows` predictions, `cell_rows` per cell, and the sightings of
        its `hours`. Returns the most significant corner region, if any."""
        policy = self.policy
        n = len(self._corners)
        expected = self._shares * night_rows
        rows = np.bincount(self._member_regions, weights=cell_rows[self._member_cells], minlength=n)
        candidates = (rows >= policy.min_entities) & (rows >= policy.ratio * expected)
        if not candidates.any():
            return None
        entities = np.minimum(
            self._distinct([h.cards for h in hours], rows), self._distinct([h.terminals for h in hours], rows)
        )
        p_values = gammainc(np.maximum(entities, 1), expected)
        significant = (
            candidates
            & (entities >= policy.min_entities)
            & (entities >= policy.ratio * expected)
            & (p_values < policy.p_value)
        )
        if not significant.any():
            return None
        best = int(np.argmin(np.where(significant, p_values, np.inf)))
        corner = self._corners[best]
        a, b = self.grid.pairs[corner.pair]
        region = f"{self._describe(a, corner.first)} and {self._describe(b, corner.second)}"
        return RegionFinding(
            f"{a} & {b}", region, int(entities[best]), int(rows[best]), float(expected[best]), float(p_values[best])
        )

    def _distinct(self, hours: Sequence[Sightings], rows: np.ndarray) -> np.ndarray:
        """Distinct entities per corner region over `hours`; its rows where a cell of it saw
        more entities in an hour than were kept."""
        n = len(self._corners)
        cells, entities = _sighted(hours)
        first = np.searchsorted(self._member_cells, cells, side="left")
        last = np.searchsorted(self._member_cells, cells, side="right")
        distinct = _distinct_per(*_expand(self._member_regions, first, last, entities), n)
        saturated_cells = np.flatnonzero(np.any([h.saturated for h in hours], axis=0)) if hours else np.empty(0, int)
        saturated = np.zeros(n, dtype=bool)
        if len(saturated_cells):
            first = np.searchsorted(self._member_cells, saturated_cells, side="left")
            last = np.searchsorted(self._member_cells, saturated_cells, side="right")
            saturated[_expand(self._member_regions, first, last, saturated_cells)[0]] = True
        counted: np.ndarray = np.where(saturated, rows, distinct)
        return counted

    def _describe(self, name: str, bins: int) -> str:
        """`bins` > 0: the feature's `bins` highest bins; < 0: its lowest."""
        edges = self.grid.edges[name]
        if bins < 0:
            return f"{name} < {edges[-bins - 1]:.6g}"
        return f"{name} >= {edges[len(edges) - bins]:.6g}"


def _tails(width: int, depths: Sequence[int]) -> list[np.ndarray]:
    """The bin ranges of each tail of a feature cut into `width` bins, at each depth that leaves
    some bins out (a deeper one would be the whole feature)."""
    ranges = []
    for depth in depths:
        if depth >= width:
            break
        ranges += [np.arange(depth), np.arange(width - depth, width)]
    return ranges


def _signed(bins: np.ndarray) -> int:
    return -len(bins) if bins[0] == 0 else len(bins)


def _sighted(hours: Sequence[Sightings]) -> tuple[np.ndarray, np.ndarray]:
    """Every (cell, entity) the hours kept, as two arrays."""
    if not hours:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    return np.concatenate([h.cells for h in hours]), np.concatenate([h.entities for h in hours])


def _distinct_per(groups: np.ndarray, entities: np.ndarray, size: int) -> np.ndarray:
    """How many distinct entities each group (0 to `size` - 1) holds."""
    _, first = np.unique(_pair_keys(groups, entities), return_index=True)
    counted: np.ndarray = np.bincount(groups[first], minlength=size)
    return counted


def _expand(
    regions: np.ndarray, first: np.ndarray, last: np.ndarray, values: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """For each i, the regions[first[i]:last[i]], each with values[i]."""
    counts = last - first
    starts = np.repeat(first - np.cumsum(counts) + counts, counts)
    index = starts + np.arange(int(counts.sum()))
    return regions[index], np.repeat(values, counts)


def _hashes(names: Sequence[str]) -> np.ndarray:
    """Hashes that every process gives alike (Python's own `hash` of a string is salted per
    process), so that replicas' sightings of one card are one entity."""
    return np.fromiter(
        (
            int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "little", signed=True)
            for name in names
        ),
        dtype=np.int64,
        count=len(names),
    )


def _pair_keys(cells: np.ndarray, entities: np.ndarray) -> np.ndarray:
    """One 64-bit key per (cell, entity); collisions are as unlikely as between 64-bit hashes."""
    return entities.astype(np.uint64) * _MIX + cells.astype(np.uint64)
