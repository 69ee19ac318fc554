"""Exact TreeSHAP, computed once per distinct path instead of once per row.

LightGBM's ``pred_contrib`` is path-dependent TreeSHAP: a row's SHAP values in one tree depend on the
row only through its decision (left or right) at each of the tree's splits, since that is all the
recursion reads. Rows with the same decisions get the same values. A tree of 15 leaves has 14 splits,
so a million profiles fall into a few thousand decision patterns per tree; ``shap_values`` asks
LightGBM for one representative row of each pattern, tree by tree (``start_iteration``), and spreads
the result to the rest. The values are LightGBM's own, summed over trees in the same order; only the
floating-point rounding of that sum can differ from one ``pred_contrib`` call, in the last bits.

A split's decision follows LightGBM's numerical rule: with ``missing_type`` NaN a NaN goes the default
way; with Zero, a NaN counts as 0 and 0 goes the default way; with None, a NaN counts as 0; otherwise
left when ``value <= threshold``. Trees with categorical splits are left to ``pred_contrib`` whole.
"""

from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import pandas as pd

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

    def patterns(self, x: np.ndarray) -> np.ndarray:
        """Per row, a code of its decisions at every split (equal codes, equal decisions)."""
        left = np.empty((len(x), len(self.features)), dtype=bool)
        for k, (f, threshold, default_left, missing) in enumerate(
                zip(self.features, self.thresholds, self.default_left, self.missing, strict=True)):
            v = x[:, f]
            nan = np.isnan(v)
            if missing == "NaN":
                left[:, k] = np.where(nan, default_left, v <= threshold)
            else:
                v = np.where(nan, 0.0, v)
                by_value = v <= threshold
                left[:, k] = np.where(np.abs(v) <= ZERO, default_left, by_value) if missing == "Zero" else by_value
        if left.shape[1] <= 63:
            return left.astype(np.int64) @ (np.int64(1) << np.arange(left.shape[1], dtype=np.int64))
        packed = np.packbits(left, axis=1)
        return np.unique(packed, axis=0, return_inverse=True)[1].ravel()


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


def shap_values(booster: lgb.Booster, x: np.ndarray, splits: list[Splits] | None = None) -> np.ndarray:
    """(rows x features) exact TreeSHAP of the raw score, without the bias column."""
    splits = splits if splits is not None else tree_splits(booster)
    trees = booster.best_iteration if booster.best_iteration > 0 else booster.current_iteration()
    out = np.zeros((booster.num_feature(), len(x)))  # feature-major: each feature's sum is contiguous
    for t in range(trees):
        tree = splits[t]
        if not tree.features.size:
            continue  # a single leaf: all of it is bias
        if tree.categorical:
            out += booster.predict(x, pred_contrib=True, start_iteration=t, num_iteration=1)[:, :-1].T
            continue
        pattern_of_row, patterns = pd.factorize(tree.patterns(x))  # hashing: no sort
        representative = np.empty(len(patterns), dtype=np.int64)
        representative[pattern_of_row] = np.arange(len(x))  # any row of a pattern stands for all of it
        per_pattern = booster.predict(x[representative], pred_contrib=True, start_iteration=t, num_iteration=1)
        for f in tree.used:
            out[f] += per_pattern[:, f][pattern_of_row]
    return out.T
