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

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .treeshap import TreeShap

if TYPE_CHECKING:
    import lightgbm as lgb

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
        _top_features(contribute(x[lo:lo + CHUNK_ROWS]), picks, lo)
    return picks


def predict_with_reasons(booster: lgb.Booster, x: np.ndarray, contribute: Callable[[np.ndarray], np.ndarray],
                         sigmoid: Callable[[np.ndarray], np.ndarray] | None = None, top: int = REASONS
                         ) -> tuple[np.ndarray, list[np.ndarray]]:
    """Each row's probability, equal to ``booster.predict``'s, and its ``top`` reasons as column indices. With
    TreeSHAP and a binary model's ``sigmoid`` (``binary_sigmoid``), the raw scores come with the attributions
    (``TreeShap.explain``); otherwise LightGBM predicts every row."""
    sigmoid = sigmoid if isinstance(contribute, TreeShap) else None
    picks = [np.empty(len(x), dtype=np.int64) for _ in range(top)]
    probability = np.empty(len(x))
    for lo in range(0, len(x), CHUNK_ROWS):
        part = x[lo:lo + CHUNK_ROWS]
        if sigmoid is not None:
            attributions, raw = contribute.explain(part)
            probability[lo:lo + len(part)] = sigmoid(raw)
        else:
            attributions, probability[lo:lo + len(part)] = contribute(part), booster.predict(part)
        _top_features(attributions, picks, lo)
    return probability, picks


def _top_features(attributions: np.ndarray, picks: list[np.ndarray], lo: int) -> None:
    order = np.argsort(-attributions, axis=1, kind="stable")[:, :len(picks)]
    for k, pick in enumerate(picks):
        pick[lo:lo + len(order)] = order[:, k]


def binary_sigmoid(booster: lgb.Booster) -> Callable[[np.ndarray], np.ndarray] | None:
    """LightGBM's transform of a binary model's raw score, 1 / (1 + exp(-sigmoid * raw)), with the C library's exp
    that LightGBM's own transform calls (numpy's vectorised exp differs in the last bit for a few rows in a
    hundred); None for any other objective."""
    header = booster.model_to_string(num_iteration=1).split("\n", 40)  # the header, and one tree at most
    objective = next((line.split("=", 1)[1] for line in header if line.startswith("objective=")), "").split()
    if not objective or objective[0] != "binary":
        return None
    scale = next((float(a.split(":", 1)[1]) for a in objective[1:] if a.startswith("sigmoid:")), 1.0)
    return lambda raw: np.fromiter((1.0 / (1.0 + math.exp(-scale * r)) for r in raw.tolist()), float, raw.size)
