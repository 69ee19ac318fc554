"""The simulator: seeded, vectorised, and faithful to the CMLE rates with the cascade fixed."""

from datetime import UTC, datetime

import numpy as np
import polars as pl
import pytest

from aep_assets.simulation import SimulationConfig, simulate
from aep_assets.simulation.identity import _pad, ecid
from aep_assets.simulation.taxonomy import CONVERSION_EVENT, DEPENDENCIES, EVENT_TYPES
from aep_assets.simulation.xdm import events_to_xdm, profiles_to_xdm

AS_OF = datetime(2026, 6, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def sim():
    return simulate(SimulationConfig(n_profiles=20_000, seed=3, as_of=AS_OF))


def expected_per_profile(weeks: int = 10) -> dict[str, float]:
    """Mean events per profile implied by the appended cascade: each child ~ Poisson(rate * weeks) per origin."""
    rate = {e.name: e.weekly_rate * weeks for e in EVENT_TYPES}
    mean = {name: 0.0 for name in rate}
    for base in ("advertising.impressions", "web.webpagedetails.pageViews", "directMarketing.emailSent"):
        mean[base] = rate[base]
    for origin, children in DEPENDENCIES:
        for child in children:
            mean[child] += mean[origin] * rate[child]
    return mean


def test_same_seed_same_frames():
    a = simulate(SimulationConfig(n_profiles=500, seed=11, as_of=AS_OF))
    b = simulate(SimulationConfig(n_profiles=500, seed=11, as_of=AS_OF))
    assert a.events.equals(b.events) and a.profiles.equals(b.profiles) and a.truth.equals(b.truth)
    c = simulate(SimulationConfig(n_profiles=500, seed=12, as_of=AS_OF))
    assert not a.events.equals(c.events)


def test_event_rates_match_the_cascade_within_tolerance(sim):
    observed = dict(sim.events.group_by("event_type").len().iter_rows())
    for name, mean in expected_per_profile().items():
        if name == CONVERSION_EVENT:
            continue
        got = observed.get(name, 0) / sim.config.n_profiles
        assert got == pytest.approx(mean, rel=0.05, abs=0.01), name


def test_children_are_appended_not_overwritten(sim):
    # The notebooks kept only the last origin's children: about 2 opens per profile instead of 10.
    opens = sim.events.filter(pl.col("event_type") == "directMarketing.emailOpened").height
    assert opens / sim.config.n_profiles > 9


def test_at_most_one_conversion_per_profile_and_truth_agrees(sim):
    conv = sim.events.filter(pl.col("event_type") == CONVERSION_EVENT)
    assert conv["profile_index"].n_unique() == conv.height
    assert conv.height == int(sim.truth["converted"].sum())
    joined = conv.join(sim.truth, on="profile_index")
    assert (joined["timestamp"] == joined["conversion_time"]).all()


def test_observed_conversion_tracks_latent_propensity(sim):
    n = sim.truth.height
    t = sim.truth.with_columns((pl.col("latent_propensity").rank("ordinal") * 5 // (n + 1)).alias("q"))
    rates = t.group_by("q").agg(pl.col("converted").mean()).sort("q")["converted"].to_numpy()
    assert np.all(np.diff(rates) >= -0.02) and rates[-1] > rates[0] + 0.3


def test_timestamps_are_utc_and_inside_the_window(sim):
    assert sim.events["timestamp"].dtype == pl.Datetime("us", "UTC")
    base = sim.events.filter(pl.col("event_type").is_in(["directMarketing.emailSent", "advertising.impressions"]))
    assert base["timestamp"].min() >= sim.config.start and base["timestamp"].max() <= sim.config.end


def test_ecid_matches_adobes_algorithm():
    value = ecid("synthetic-user-0@adobe.com")
    assert value.isdigit() and len(value) >= 38
    assert value == ecid("synthetic-user-0@adobe.com") != ecid("synthetic-user-1@adobe.com")
    # Each half is |int64| as 19 digits, left-padded with "0123..." rather than zeros (reference/cmle.md §1.4).
    assert _pad(-1234567890123456789) == "1234567890123456789"
    assert _pad(99) == "01234567891011121314151699"


def test_xdm_records_carry_the_tenant_identity(sim):
    events = events_to_xdm(sim.events.head(1000), sim.profiles, "acme", 3)
    assert {"_id", "timestamp", "eventType", "_acme", "web", "directMarketing"} <= set(events.column_names)
    first = events.slice(0, 1).to_pylist()[0]
    assert first["_acme"]["userid"] == sim.profiles.filter(
        pl.col("profile_index") == sim.events["profile_index"][0])["userid"][0]
    email = [r for r in events.to_pylist() if r["eventType"].startswith("directMarketing")][0]
    assert email["web"] is None and email["directMarketing"] is not None
    profiles = profiles_to_xdm(sim.profiles, "acme")
    assert profiles.num_rows == sim.config.n_profiles


def test_invalid_config_names_the_field():
    with pytest.raises(ValueError, match="n_profiles"):
        SimulationConfig(n_profiles=0)
    with pytest.raises(ValueError, match="timezone"):
        SimulationConfig(as_of=datetime(2026, 1, 1))
