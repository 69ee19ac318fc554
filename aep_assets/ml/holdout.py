"""Randomised control groups for audiences: who is held out, how large the group must be, and the uplift
it measures.

A member's group is a stable hash of its identity salted per audience, so the same profile lands in the
same group on every rescore while it stays in that audience, and the groups of two audiences are
independent. The hash never sees the score, so the control group is a random sample of the audience.
"""

import hashlib
import math
from dataclasses import dataclass

import numpy as np
import polars as pl

from .scoring import BANDS

CONTROL, TREATMENT = "control", "treatment"
HASH_SCALE = float(1 << 64)


def unit_hash(identity: str, salt: str) -> float:
    """A number in [0, 1) fixed by (salt, identity): the first 8 bytes of SHA-256, scaled."""
    digest = hashlib.sha256(f"{salt}\x1f{identity}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / HASH_SCALE


# unit_hash of every row at once, by DuckDB's SHA-256 of the same UTF-8 bytes: a million rows in about 0.2 s
# against a second row by row. The salt and the identities come as a parameter and a table, never as SQL text.
UNIT_HASHES = """SELECT CAST('0x' || left(sha256($salt || coalesce(audience, '') || chr(31) || identity), 16)
                   AS UBIGINT)
FROM members"""


def unit_hashes(identities, salt: str, audiences=None) -> np.ndarray:
    """Per row, ``unit_hash(identity, salt + audience)`` (no audience: ``salt`` alone); NaN where the identity is
    None. ``identities`` and ``audiences``: Series, lists or arrays of strings."""
    import duckdb

    identities = _strings(identities)
    members = pl.DataFrame({"identity": identities, "audience": _strings(audiences if audiences is not None
                                                                          else [None] * len(identities))})
    with duckdb.connect() as con:
        con.register("members", members.to_arrow())
        (column,) = con.execute(UNIT_HASHES, {"salt": salt}).fetchnumpy().values()
    return np.ma.filled(np.ma.asarray(column).astype(float), np.nan) / HASH_SCALE


def _strings(values) -> pl.Series:
    return pl.Series(values, dtype=pl.Utf8)


def assign_groups(identities, audiences, share: float, salt: str) -> np.ndarray:
    """Per member: 'control' with probability ``share`` (independently per audience), else 'treatment';
    None where a row belongs to no audience. ``identities`` and ``audiences``: Series, lists or arrays."""
    if not 0 <= share < 1:
        raise ValueError(f"holdout.share = {share} must be in [0, 1), e.g. 0.1 to hold out 10 % of each audience.")
    identities, audiences = _strings(identities), _strings(audiences)
    member = (identities.is_not_null() & audiences.is_not_null()).to_numpy()
    control = unit_hashes(identities, f"{salt}/", audiences) < share if share else np.zeros(len(member), bool)
    return np.where(member, np.where(control, CONTROL, TREATMENT), None)


def band_groups(identities, bands, share: float, salt: str) -> np.ndarray:
    """Per scored row: its group in its band's audience, None for rows in no audience (converted markers)."""
    bands = _strings(bands)
    return assign_groups(identities, bands.set(~bands.is_in(BANDS), None), share, salt)


@dataclass(frozen=True)
class HoldoutGroups:
    """How a model's scores split each band audience into treatment and control: ``share`` held out by a hash
    salted with ``salt`` and the band. One value per model (``ModelSpec.holdout_groups``), which the scoring job
    and an incremental merge both apply."""

    share: float = 0.0
    salt: str = ""

    def of(self, identities, bands) -> np.ndarray:
        return band_groups(identities, bands, self.share, self.salt)


def _normal():
    # Imported on first use: scoring jobs import this module for band_groups and start faster without SciPy.
    from scipy.stats import norm

    return norm


def two_sided_z(alpha: float, power: float) -> float:
    """z of a two-sided test at ``alpha`` plus z of ``power``: a detectable effect is this many standard errors."""
    norm = _normal()
    return float(norm.ppf(1 - alpha / 2) + norm.ppf(power))


def detectable_uplift(size: int, rate: float, share: float, *, power: float = 0.8, alpha: float = 0.05) -> float:
    """The smallest absolute uplift a two-sided test at ``alpha`` detects with ``power``, when ``share`` of an
    audience of ``size`` with base conversion ``rate`` is held out (normal approximation)."""
    control, treated = size * share, size * (1 - share)
    if control < 1 or treated < 1:
        return math.inf
    p = min(max(rate, 1e-6), 1 - 1e-6)
    return two_sided_z(alpha, power) * math.sqrt(p * (1 - p) * (1 / control + 1 / treated))


def control_share_needed(size: int, rate: float, uplift: float, *, power: float = 0.8,
                         alpha: float = 0.05) -> float | None:
    """The smallest control share whose test detects ``uplift`` (absolute) with ``power`` at ``alpha``; None
    when no split of ``size`` members can (even half and half is too small)."""
    if uplift <= 0:
        raise ValueError(f"uplift = {uplift} must be positive, e.g. 0.02 for two points of conversion rate.")
    p = min(max(rate, 1e-6), 1 - 1e-6)
    # 1/(sN) + 1/((1-s)N) <= k  <=>  k N s^2 - k N s + 1 <= 0
    k = (uplift / two_sided_z(alpha, power)) ** 2 / (p * (1 - p))
    disc = 1 - 4 / (k * size) if size > 0 else -1.0
    if disc < 0:
        return None
    return (1 - math.sqrt(disc)) / 2


@dataclass(frozen=True)
class Sizing:
    """What a control group of ``share`` can detect in an audience, and the share a target uplift needs."""

    audience: int
    rate: float
    share: float
    detectable_uplift: float  # inf when the audience is too small to split
    target_uplift: float
    share_needed: float | None  # None: not even half and half detects the target


def size_control_group(audience: int, rate: float, share: float, target_uplift: float, *, power: float = 0.8,
                       alpha: float = 0.05) -> Sizing:
    return Sizing(audience, rate, share, detectable_uplift(audience, rate, share, power=power, alpha=alpha),
                  target_uplift, control_share_needed(audience, rate, target_uplift, power=power, alpha=alpha))


@dataclass(frozen=True)
class Uplift:
    """Treated versus control conversion of one audience over one outcome window."""

    treated: int
    treated_conversions: int
    control: int
    control_conversions: int
    absolute: float  # treated rate - control rate
    ci_low: float
    ci_high: float
    relative: float  # absolute / control rate
    relative_ci_low: float
    relative_ci_high: float
    p_value: float  # two-sided, two-proportion z-test with pooled variance

    @property
    def treated_rate(self) -> float:
        return self.treated_conversions / self.treated if self.treated else math.nan

    @property
    def control_rate(self) -> float:
        return self.control_conversions / self.control if self.control else math.nan

    def to_json(self) -> dict:
        return {**self.__dict__, "treated_rate": self.treated_rate, "control_rate": self.control_rate}


def measure_uplift(treated: int, treated_conversions: int, control: int, control_conversions: int,
                   confidence: float = 0.95) -> Uplift:
    """Absolute uplift with a Wald interval, relative uplift with a log-ratio (Katz) interval, and the
    p-value of 'no difference'."""
    if treated < 1 or control < 1:
        raise ValueError(f"Uplift needs members in both groups; got {treated} treated and {control} control. "
                         "Set holdout.share above 0 and let the outcome window close.")
    norm = _normal()
    z = float(norm.ppf(0.5 + confidence / 2))
    pt, pc = treated_conversions / treated, control_conversions / control
    diff = pt - pc
    se = math.sqrt(pt * (1 - pt) / treated + pc * (1 - pc) / control)
    pooled = (treated_conversions + control_conversions) / (treated + control)
    se0 = math.sqrt(pooled * (1 - pooled) * (1 / treated + 1 / control))
    p_value = float(2 * norm.sf(abs(diff) / se0)) if se0 > 0 else 1.0
    if treated_conversions and control_conversions:
        log_ratio = math.log(pt / pc)
        se_log = math.sqrt(1 / treated_conversions - 1 / treated + 1 / control_conversions - 1 / control)
        rel, rel_lo, rel_hi = pt / pc - 1, math.exp(log_ratio - z * se_log) - 1, math.exp(log_ratio + z * se_log) - 1
    else:
        rel = rel_lo = rel_hi = math.nan
    return Uplift(treated, treated_conversions, control, control_conversions, diff, diff - z * se, diff + z * se,
                  rel, rel_lo, rel_hi, p_value)
