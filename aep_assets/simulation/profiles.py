"""Profile attributes, generated column by column."""

from datetime import datetime

import numpy as np
import polars as pl

STATES = np.array(["CA", "TX", "FL", "NY", "PA", "IL", "OH", "GA", "NC", "MI", "NJ", "VA", "WA", "AZ", "MA"])
TIERS = np.array(["member", "silver", "gold", "platinum", "diamond"])
TIER_P = np.array([0.55, 0.25, 0.12, 0.06, 0.02])
GENDERS = np.array(["male", "female", "not_specified"])


def make_profiles(rng: np.random.Generator, index: np.ndarray, ecids: list[str], as_of: datetime) -> pl.DataFrame:
    n = index.size
    tier_rank = rng.choice(len(TIERS), size=n, p=TIER_P)
    join_days = rng.integers(30, 3650, size=n)
    return pl.DataFrame({
        "profile_index": index,
        "userid": ecids,
        "email": [f"synthetic-user-{i}@adobe.com" for i in index],
        "gender": rng.choice(GENDERS, size=n, p=[0.48, 0.48, 0.04]),
        "birth_year": rng.integers(as_of.year - 80, as_of.year - 18, size=n),
        "state": rng.choice(STATES, size=n),
        "loyalty_tier": TIERS[tier_rank],
        "loyalty_tier_rank": tier_rank,
        "loyalty_points": np.round(rng.gamma(2.0, 800.0, size=n) * (1 + tier_rank), 0),
        "loyalty_join_date": pl.Series((as_of.timestamp() - join_days * 86400.0) * 1e6).cast(pl.Int64)
        .cast(pl.Datetime("us", "UTC")),
    })
