"""Exact TreeSHAP, computed once per distinct path instead of once per row.

LightGBM's ``pred_contrib`` is path-dependent TreeSHAP: a row's SHAP values in one tree depend on the
row only through its decision (left or right) at each of the tree's splits, since that is all the
recursion reads. Rows with the same decisions get the same values. A tree of 15 leaves has 14 splits,
so a million profiles fall into a few thousand decision patterns per tree; ``TreeShap`` asks
LightGBM for one representative row of each pattern, tree by tree (``start_iteration``), spreads
the result to the rest, and keeps it for the patterns of the job's later chunks of rows. The values
are LightGBM's own, summed over trees in the same order; only the floating-point rounding of that
sum can differ from one ``pred_contrib`` call, in the last bits.

A split's decision follows LightGBM's numerical rule: with ``missing_type`` NaN a NaN goes the default
way; with Zero, a NaN counts as 0 and 0 goes the default way; with None, a NaN counts as 0; otherwise
left when ``value <= threshold``. Trees with categorical splits are left to ``pred_contrib`` whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    import lightgbm as lgb

ZERO = 1e-35  # LightGBM's kZeroThreshold: |x| at most this is zero


@dataclass(frozen=True)
class Splits:
    """One tree's splits, in any fixed order."""

    features: np.ndarray  # feature index per split
    thresholds: np.ndarray
    default_left: np.ndarray
    missing: np.ndarray  # "None", "Zero" or "NaN" per split
    used: np.ndarray  # the features the tree splits on
    categorical: bool

    def patterns(self, columns: Columns) -> np.ndarray:
        """Per row, a code of its decisions at every split (equal codes, equal decisions)."""
        n, bits = columns.rows, len(self.features)
        if bits > 63:
            left = np.empty((n, bits), dtype=bool)
            for k in range(bits):
                left[:, k] = self._left(columns, k)
            return np.unique(np.packbits(left, axis=1), axis=0, return_inverse=True)[1].ravel().astype(np.uint64)
        code = np.zeros(n, dtype=np.uint64)
        for k in range(bits):
            code |= self._left(columns, k).astype(np.uint64) << np.uint64(k)
        return code

    def _left(self, columns: Columns, k: int) -> np.ndarray:
        """Whether each row goes left at split ``k``, by LightGBM's numerical rule."""
        f, threshold, default_left = self.features[k], self.thresholds[k], self.default_left[k]
        missing, left = self.missing[k], columns.values[f] <= threshold  # NaN compares False
        if missing == "NaN":
            return left | columns.nan(f) if default_left else left
        if missing == "None":  # a NaN counts as 0
            return left | columns.nan(f) if threshold >= 0 else left
        zero = columns.zero(f)  # "Zero": a NaN counts as 0, and 0 goes the default way
        return left | zero if default_left else left & ~zero


class Columns:
    """A chunk of rows feature by feature (contiguous), with each feature's NaN and zero masks made once."""

    def __init__(self, x: np.ndarray) -> None:
        self.values, self.rows = np.ascontiguousarray(x.T), len(x)
        self._nan: dict[int, np.ndarray] = {}
        self._zero: dict[int, np.ndarray] = {}

    def nan(self, f: int) -> np.ndarray:
        if f not in self._nan:
            self._nan[f] = np.isnan(self.values[f])
        return self._nan[f]

    def zero(self, f: int) -> np.ndarray:
        if f not in self._zero:
            self._zero[f] = self.nan(f) | (np.abs(self.values[f]) <= ZERO)
        return self._zero[f]


def tree_splits(booster: lgb.Booster) -> list[Splits]:
    out = []
    for tree in booster.dump_model()["tree_info"]:
        nodes, stack = [], [tree["tree_structure"]]
        while stack:
            node = stack.pop()
            if "split_feature" in node:
                nodes.append(node)
                stack += [node["left_child"], node["right_child"]]
        features = np.array([n["split_feature"] for n in nodes], dtype=np.int64)
        out.append(Splits(features, np.array([float(n["threshold"]) if n["decision_type"] == "<=" else np.nan
                                              for n in nodes]),
                          np.array([bool(n["default_left"]) for n in nodes]),
                          np.array([n["missing_type"] for n in nodes], dtype=object), np.unique(features),
                          any(n["decision_type"] != "<=" for n in nodes)))
    return out


class PatternValues:
    """One tree's values of the decision patterns seen so far (codes sorted): the SHAP value of each feature the
    tree uses, then the tree's output (its leaf's value), so that a scoring job asks LightGBM once per pattern,
    not once per pattern and chunk of rows. A tree with more than 63 splits has no stable codes across chunks and
    keeps nothing."""

    def __init__(self, columns: int) -> None:
        self.codes = np.empty(0, dtype=np.uint64)
        self.values = np.empty((0, columns))

    def lookup(self, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Where each of ``codes`` (unique) is in the table, and which are not there yet."""
        at = np.minimum(np.searchsorted(self.codes, codes), max(self.codes.size - 1, 0))
        known = self.codes[at] == codes if self.codes.size else np.zeros(codes.size, dtype=bool)
        return at, ~known

    def add(self, codes: np.ndarray, values: np.ndarray) -> None:
        merged = np.concatenate([self.codes, codes])
        order = np.argsort(merged, kind="stable")
        self.codes, self.values = merged[order], np.concatenate([self.values, values])[order]


class TreeShap:
    """(rows x features) exact TreeSHAP of the raw score, without the bias column, chunk after chunk of one
    model's rows: the trees are read once, and each tree's pattern values are kept between chunks.

    ``explain`` also gives each row's raw score, LightGBM's to the bit: the trees' outputs summed in tree order
    from zero, as LightGBM's prediction sums them, each tree's output being its pattern's leaf. So scoring needs no
    second pass of every row through every tree."""

    def __init__(self, booster: lgb.Booster, splits: list[Splits] | None = None) -> None:
        self.booster, self.splits = booster, splits if splits is not None else tree_splits(booster)
        self.trees = booster.best_iteration if booster.best_iteration > 0 else booster.current_iteration()
        self.tables = [PatternValues(s.used.size + 1) if len(s.features) <= 63 else None for s in self.splits]
        self._single_leaf: dict[int, float] = {}

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.explain(x)[0]

    def explain(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The (rows x features) SHAP values and each row's raw score."""
        booster, columns = self.booster, Columns(x)
        out = np.zeros((booster.num_feature(), len(x)))  # feature-major: each feature's sum is contiguous
        raw = np.zeros(len(x))
        for t in range(self.trees):
            tree = self.splits[t]
            if not tree.features.size:  # a single leaf: all of it is bias
                raw += self._leaf_of_single_leaf_tree(t, x)
                continue
            if tree.categorical:
                out += booster.predict(x, pred_contrib=True, start_iteration=t, num_iteration=1)[:, :-1].T
                raw += booster.predict(x, raw_score=True, start_iteration=t, num_iteration=1)
                continue
            pattern_of_row, codes = pd.factorize(tree.patterns(columns))  # hashing: no sort
            values = self._pattern_values(t, x, pattern_of_row, np.asarray(codes, dtype=np.uint64))
            for k, f in enumerate(tree.used):
                out[f] += values[:, k][pattern_of_row]
            raw += values[:, -1][pattern_of_row]
        return out.T, raw

    def _leaf_of_single_leaf_tree(self, t: int, x: np.ndarray) -> float:
        if t not in self._single_leaf:
            self._single_leaf[t] = float(self.booster.predict(x[:1], raw_score=True, start_iteration=t,
                                                              num_iteration=1)[0])
        return self._single_leaf[t]

    def _pattern_values(self, t: int, x: np.ndarray, pattern_of_row: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """(patterns x (used features + 1)): the tree's SHAP values of each pattern and its output, asked of LightGBM
        for the new ones with one row of each standing for all of its rows."""
        table, used = self.tables[t], self.splits[t].used
        at, new = table.lookup(codes) if table is not None else (None, np.ones(codes.size, dtype=bool))
        if new.any():
            representative = np.empty(codes.size, dtype=np.int64)
            representative[pattern_of_row] = np.arange(len(x))  # any row of a pattern stands for all of it
            rows = x[representative[new]]
            contrib = self.booster.predict(rows, pred_contrib=True, start_iteration=t, num_iteration=1)[:, used]
            leaf = self.booster.predict(rows, raw_score=True, start_iteration=t, num_iteration=1)
            fresh = np.column_stack([contrib, leaf])
            if table is None:
                return fresh
            table.add(codes[new], fresh)
            at, _ = table.lookup(codes)
        return table.values[at]


def shap_values(booster: lgb.Booster, x: np.ndarray, splits: list[Splits] | None = None) -> np.ndarray:
    """(rows x features) exact TreeSHAP of the raw score, without the bias column."""
    return TreeShap(booster, splits)(x)
