"""Reason codes: the features that pushed each profile's score up most.

Two attributions of the raw score (log-odds), per row and feature:

* ``shap`` (default): LightGBM's exact TreeSHAP (``pred_contrib``), with the consistency of Shapley
  values, computed once per distinct decision path of each tree rather than per row (ml/treeshap.py).
* ``path``: each split on a row's path through a tree credits its feature with the change in the
  expected output (over the training rows reaching each node), as XGBoost's ``approx_contribs`` and
  treeinterpreter do. Per tree, the credits of every leaf are tabulated once; a row then needs only
  its leaf indices (``pred_leaf``). Credits plus the root values add up to the raw score exactly, and
  for trees of one split they equal SHAP; for deeper trees they favour splits near the leaves, so the
  top reason can differ from SHAP's.
"""

from collections.abc import Callable
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np

from .treeshap import TreeShap

REASONS = 3
REASON_COLUMNS = tuple(f"reason_{k + 1}" for k in range(REASONS))
CHUNK_ROWS = 200_000  # attributions are a dense (rows x features) matrix; keep it small
METHODS = ("path", "shap")


@dataclass(frozen=True)
class LeafCredits:
    """One tree: for each leaf, the credit of each feature its path splits on."""

    features: np.ndarray  # the feature indices the tree splits on
    credits: np.ndarray  # (leaves, len(features))
    root_value: float


def _expected_values(node: dict, out: dict) -> tuple[float, float]:
    """Each node's expected output over the training rows that reach it (by count, as TreeSHAP weighs)."""
    if "split_feature" not in node:
        value, count = node["leaf_value"], float(node.get("leaf_count", 1))
    else:
        lv, lc = _expected_values(node["left_child"], out)
        rv, rc = _expected_values(node["right_child"], out)
        count = lc + rc
        value = (lv * lc + rv * rc) / count if count else node["internal_value"]
    out[id(node)] = value
    return value, count


def leaf_credits(booster: lgb.Booster) -> list[LeafCredits]:
    n_features = booster.num_feature()
    out = []
    for tree in booster.dump_model()["tree_info"]:
        table = np.zeros((tree["num_leaves"], n_features))
        root = tree["tree_structure"]
        expected: dict[int, float] = {}
        _expected_values(root, expected)
        stack = [(root, np.zeros(n_features))]
        while stack:
            node, path = stack.pop()
            if "split_feature" not in node:
                table[node.get("leaf_index", 0)] = path
                continue
            for child in (node["left_child"], node["right_child"]):
                credit = path.copy()
                credit[node["split_feature"]] += expected[id(child)] - expected[id(node)]
                stack.append((child, credit))
        used = np.nonzero(np.abs(table).sum(axis=0))[0]
        out.append(LeafCredits(used, table[:, used], expected[id(root)]))
    return out


def path_contributions(booster: lgb.Booster, x: np.ndarray, credits: list[LeafCredits] | None = None) -> np.ndarray:
    """(rows x features) path credits of the raw score."""
    credits = credits if credits is not None else leaf_credits(booster)
    leaves = booster.predict(x, pred_leaf=True).reshape(len(x), -1)
    out = np.zeros((len(x), booster.num_feature()))
    for t, tree in enumerate(credits):
        if tree.features.size:
            out[:, tree.features] += tree.credits[leaves[:, t]]
    return out


def contributions(booster: lgb.Booster, method: str = "shap") -> Callable[[np.ndarray], np.ndarray]:
    """A function from a chunk of rows to their (rows x features) contributions; the model's trees are read
    once, here, not per chunk."""
    if method not in METHODS:
        raise ValueError(f"reason_method = {method!r} is not one of {METHODS}.")
    if method == "path":
        credits = leaf_credits(booster)
        return lambda x: path_contributions(booster, x, credits)
    return TreeShap(booster)


def reason_codes(booster: lgb.Booster, x: np.ndarray, features: tuple[str, ...], top: int = REASONS,
                 method: str = "shap", contribute: Callable[[np.ndarray], np.ndarray] | None = None
                 ) -> list[np.ndarray]:
    """``top`` arrays of feature names: per row, the features with the largest contributions to the
    raw score, largest first."""
    names = np.asarray(features, dtype=object)
    return [names[k] for k in reason_indices(booster, x, top, method, contribute)]


def reason_indices(booster: lgb.Booster, x: np.ndarray, top: int = REASONS, method: str = "shap",
                   contribute: Callable[[np.ndarray], np.ndarray] | None = None) -> list[np.ndarray]:
    """As ``reason_codes``, the features' column indices."""
    contribute = contribute or contributions(booster, method)
    picks = [np.empty(len(x), dtype=np.int64) for _ in range(top)]
    for lo in range(0, len(x), CHUNK_ROWS):
        order = np.argsort(-contribute(x[lo:lo + CHUNK_ROWS]), axis=1, kind="stable")[:, :top]
        for k in range(top):
            picks[k][lo:lo + CHUNK_ROWS] = order[:, k]
    return picks
