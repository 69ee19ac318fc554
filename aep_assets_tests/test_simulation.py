"""The simulator: seeded, vectorised, faithful to the CMLE rates with the cascade fixed, and its oracle."""

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from aep_assets.simulation import SimulationConfig, engine, kernels, oracle, simulate
from aep_assets.simulation.behaviour import event_frame
from aep_assets.simulation.continuation import continue_simulation
from aep_assets.simulation.engine import Events, Walk
from aep_assets.simulation.identity import _pad, ecid
from aep_assets.simulation.oracle import oracle_frame, oracle_probability, state_at
from aep_assets.simulation.taxonomy import CODE, CONVERSION_EVENT, DEPENDENCIES, EVENT_TYPES
from aep_assets.simulation.xdm import events_to_xdm, profiles_to_xdm

AS_OF = datetime(2026, 6, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def sim():
    """Adobe's behaviour model: the notebooks' rates, no attribute effects, no decay."""
    return simulate(SimulationConfig(n_profiles=20_000, seed=3, as_of=AS_OF, model="adobe"))


@pytest.fixture(scope="module")
def extended():
    return simulate(SimulationConfig(n_profiles=20_000, seed=4, as_of=AS_OF))


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
    cutoff = AS_OF - timedelta(days=14)
    assert np.array_equal(oracle_probability(a, cutoff, 14, k=4), oracle_probability(b, cutoff, 14, k=4),
                          equal_nan=True)
    assert a.events.equals(b.events) and a.profiles.equals(b.profiles) and a.truth.equals(b.truth)
    c = simulate(SimulationConfig(n_profiles=500, seed=12, as_of=AS_OF))
    assert not a.events.equals(c.events)


def test_events_come_in_the_order_of_a_stable_sort_with_conversions_after_ties():
    """event_frame's linear-time merge equals a stable sort by (profile, time) of the walked events followed by
    the conversions, including sub-millisecond inversions left by Events.sorted and exact ties."""
    rng = np.random.default_rng(5)
    lanes = np.repeat(np.arange(300), rng.integers(0, 40, 300))
    times = 1.7e9 + np.sort(rng.integers(0, 50, lanes.size)).astype(float)
    times = times + rng.choice([0.0, 0.0002, 0.0004], size=lanes.size)  # ties, and gaps under a millisecond
    events = Events(lanes.astype(np.int64), rng.integers(0, 12, lanes.size).astype(np.int8), times).sorted()
    converted_at = np.full(300, np.nan)
    converting = rng.choice(np.unique(lanes), 100, replace=False)
    converted_at[converting] = 1.7e9 + rng.integers(0, 50, converting.size) + rng.choice([0.0, 0.0002], 100)
    done = Walk(rng.random(events.size), converted_at, np.zeros(300), np.zeros(300))
    original = Events(events.lane.copy(), events.code.copy(), events.time.copy())
    after = np.concatenate([done.propensity_after, np.full(converting.size, np.nan)])
    frame = event_frame(events, done, first_profile_index=10)  # consumes events and done

    events, conv = original, np.sort(converting)
    all_lanes = np.concatenate([events.lane, conv])
    all_times = np.concatenate([events.time, converted_at[conv]])
    order = np.lexsort((all_times, all_lanes))
    assert np.array_equal(frame["profile_index"].to_numpy(), all_lanes[order] + 10)
    assert np.array_equal(frame["timestamp"].dt.epoch("us").to_numpy(), (all_times[order] * 1e6).astype(np.int64))
    assert np.array_equal(frame["latent_propensity"].to_numpy(), after[order], equal_nan=True)
    codes = np.concatenate([events.code, np.full(conv.size, CODE[CONVERSION_EVENT], np.int8)])
    assert np.array_equal(frame["event_type"].to_physical().to_numpy(), codes[order])


def test_the_state_at_a_cutoff_is_the_same_read_in_slices_of_profiles(extended, monkeypatch):
    cutoff = AS_OF - timedelta(days=20)
    whole = state_at(extended, cutoff)
    monkeypatch.setattr(oracle, "STATE_SLICE", 97)  # many slices, none aligned with anything
    sliced = state_at(extended, cutoff)
    assert np.array_equal(whole.propensity, sliced.propensity)
    assert np.array_equal(whole.converted, sliced.converted) and whole.converted.any()
    for field in ("lane", "code", "time"):
        assert np.array_equal(getattr(whole.pending, field), getattr(sliced.pending, field))
    assert whole.pending.size


def test_the_oracle_does_not_depend_on_how_many_threads_run_it(extended, monkeypatch):
    monkeypatch.setattr(oracle, "LANES_PER_CHUNK", 50_000)  # a few chunks of futures to share out
    cutoff = AS_OF - timedelta(days=14)
    alone = oracle_probability(extended, cutoff, 14, k=8, workers=1)
    shared = oracle_probability(extended, cutoff, 14, k=8, workers=2)
    assert np.array_equal(alone, shared, equal_nan=True)
    assert np.array_equal(np.isnan(alone), state_at(extended, cutoff).converted)  # NaN only for converters


def test_a_compiled_futures_chance_is_the_realised_walks_draw_for_draw(sim, extended):
    """Along a given path, the oracle's compiled walk keeps the chance of converting that ``walk`` integrates out
    of its draws: the same decay, deltas, clipping, draws (a conversion a minute after its trigger, so none in the
    horizon's last minute) and log-survival summed in time order. Equal up to the last bit's rounding: the
    compiled exp and log1p are the C library's, numpy's are its own vector code."""
    rng = np.random.default_rng(2)
    n, start = 2_000, AS_OF.timestamp()
    end = start + 14 * 86400
    events = engine.base_events(rng, np.full(n, 3.0), start, end)
    events = Events.concat([events, engine.descendants(rng, events, end=end),
                            Events(np.arange(n), np.full(n, CODE["commerce.productViews"], np.int8),
                                   np.full(n, end - 30.0))]).sorted()  # a draw in the last minute, for each
    baseline, propensity = np.full(n, 0.05), np.linspace(0, 0.5, n)
    for model in (extended.config.behaviour, sim.config.behaviour):  # with decay and without
        realised = engine.walk(np.random.default_rng(1), model, events, baseline=baseline, propensity=propensity,
                               start=start, end=end)
        bounds = np.searchsorted(events.lane, np.arange(n + 1))
        compiled = [kernels.chance_along(events.code[lo:hi], events.time[lo:hi], hi - lo, propensity[i], baseline[i],
                                         engine.DELTA, engine.DRAWS, engine.CONVERSION_LAG_S,
                                         (model.decay_days or 0) * 86400.0, model.conversion_scale, start, end)
                    for i, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:], strict=True))]
        assert np.allclose(compiled, realised.conversion_chance, rtol=1e-13, atol=1e-15)
        assert (~np.isnan(realised.converted_at)).any() and realised.conversion_chance.max() > 0


def engine_futures(futures: oracle.Futures, copies: int, rng: np.random.Generator) -> np.ndarray:
    """The oracle's futures drawn with the history's own engine, over every lane at once: the base events, the
    cascade (the pending origins' children thinned), and the walk's chance of converting along each (per future
    and profile)."""
    n = futures.profiles
    owner = np.tile(np.arange(n), copies)
    origins = Events(np.repeat(np.arange(copies * n), np.tile(futures.pending_counts, copies)),
                     np.tile(futures.pending.code, copies), np.tile(futures.pending.time, copies))
    fresh = engine.base_events(rng, futures.activity[owner], futures.start, futures.base_end)
    events = Events.concat([engine.descendants(rng, origins, end=futures.end, after=futures.start), fresh,
                            engine.descendants(rng, fresh, end=futures.end)]).sorted()
    walked = engine.walk(rng, futures.model, events, baseline=futures.baseline[owner],
                         propensity=futures.propensity[owner], start=futures.start, end=futures.end)
    return walked.conversion_chance.reshape(copies, n)


@pytest.mark.parametrize("world", ["sim", "extended"])
def test_the_oracles_compiled_futures_follow_the_historys_process(world, request):
    """The oracle draws each future in one compiled pass, the history with numpy over every lane: the two must be
    one process. Per profile, 64 futures each way; the mean chance agrees within four standard errors of the
    differences, overall and where each part of the process matters most (pending children, busy profiles)."""
    simulated = request.getfixturevalue(world)
    cutoff = AS_OF - timedelta(days=14)
    state = state_at(simulated, cutoff)
    _, futures = oracle.futures_from(simulated, state, (cutoff + timedelta(days=14)).timestamp())
    k = 64
    compiled = futures.conversion_chance(k, np.random.SeedSequence(1)) / k
    reference = engine_futures(futures, k, np.random.default_rng(2)).sum(axis=0) / k
    busy = futures.activity >= np.quantile(futures.activity, 0.75)
    groups = {"all": np.ones(futures.profiles, bool), "pending": futures.pending_counts > 0,
              "none pending": futures.pending_counts == 0, "busy": busy}
    for name, rows in groups.items():
        difference = compiled[rows] - reference[rows]
        error = difference.std() / np.sqrt(rows.sum())
        assert abs(difference.mean()) <= 4 * error, (name, compiled[rows].mean(), reference[rows].mean(), error)
    assert np.corrcoef(compiled, reference)[0, 1] > 0.9
    assert futures.pending_counts.any() and compiled.mean() > 0


def test_the_compiled_futures_of_a_very_busy_profile_outgrow_their_buffer_and_lose_nothing(extended):
    """A chunk's futures start with room for 64 events, and the room grows as a future needs it. A profile so busy
    that it has about 200 base events in the hour ahead (the horizon here, so the chance does not saturate) makes
    the first future of every chunk grow it twice: 400 chunks of one future each must follow the history's
    process."""
    start = AS_OF.timestamp()
    end = start + 3600.0
    futures = oracle.Futures(extended.config.behaviour, np.array([50_000.0]), np.array([0.01]), np.array([0.1]),
                             np.zeros(1, np.int64), Events.empty(), start, end, end)
    events = engine.base_events(np.random.default_rng(3), np.full(1_000, 50_000.0), start, end)
    assert np.bincount(events.lane).min() > 128  # past the room twice, before any cascade
    compiled = np.array([futures.conversion_chance(1, np.random.SeedSequence(i))[0] for i in range(400)])
    reference = engine_futures(futures, 400, np.random.default_rng(2))[:, 0]
    error = np.sqrt(compiled.var() / compiled.size + reference.var() / reference.size)
    assert abs(compiled.mean() - reference.mean()) <= 4 * error, (compiled.mean(), reference.mean(), error)
    assert 0.05 < compiled.mean() < 0.95


def test_an_origin_is_live_while_its_children_may_still_come():
    """An email opened an hour before the cutoff may still be clicked (a 30-minute mean delay); a page view of a
    day before, whose children come within minutes, and an email sent a year before, can change no future."""
    at = AS_OF.timestamp()
    opened, viewed, sent = (CODE[n] for n in ("directMarketing.emailOpened", "web.webpagedetails.pageViews",
                                                "directMarketing.emailSent"))
    origins = Events(np.arange(4), np.array([opened, viewed, sent, sent], np.int8),
                     np.array([at - 3600, at - 86400, at - 86400, at - 365 * 86400]))
    assert engine.live(origins, at).tolist() == [True, False, True, False]


def test_the_futures_split_into_whole_rounds_of_chunks_that_fit_the_lane_budget():
    for k, profiles in ((64, 97_000), (64, 400_000), (64, 970_000), (64, 10), (3, 1_000_000), (1, 5)):
        sizes = oracle._chunk_sizes(k, profiles)
        assert sum(sizes) == k and max(sizes) - min(sizes) <= 1
        assert len(sizes) % oracle.CHUNKS_MULTIPLE == 0 or len(sizes) == k  # no worker waits on a last chunk
        assert max(sizes) == 1 or max(sizes) * profiles <= oracle.LANES_PER_CHUNK * 1.5


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


def test_unknown_behaviour_model_is_a_clear_error():
    with pytest.raises(ValueError, match="'adobe', 'extended'"):
        SimulationConfig(model="notebook")


def test_extended_model_makes_attributes_matter(extended):
    per_profile = extended.truth.join(extended.profiles.select("profile_index", "loyalty_tier_rank"),
                                      on="profile_index").group_by("loyalty_tier_rank").agg(
        pl.col("n_events").mean(), pl.col("converted").mean()).sort("loyalty_tier_rank")
    assert (per_profile["n_events"].diff().drop_nulls() > 0).all()  # higher tiers are more active
    assert per_profile["converted"][-1] > 2 * per_profile["converted"][0]


def test_extended_events_run_up_to_as_of(extended):
    assert extended.events["timestamp"].max() <= AS_OF
    assert extended.events["timestamp"].max() > AS_OF - timedelta(days=1)


def test_propensity_decays_back_to_the_baseline(extended):
    # Twenty days without events take (p - baseline) down by a factor e.
    cutoff = AS_OF - timedelta(days=30)
    state = state_at(extended, cutoff)
    later = state_at(extended, AS_OF)
    quiet = extended.events.filter(pl.col("timestamp") >= cutoff)["profile_index"].unique()
    idle = np.setdiff1d(np.arange(extended.truth.height), quiet.to_numpy() - extended.profiles["profile_index"][0])
    base = extended.traits.baseline
    assert idle.size > 0
    np.testing.assert_allclose(later.propensity[idle] - base[idle],
                               (state.propensity[idle] - base[idle]) * np.exp(-30 / 20), rtol=1e-9, atol=1e-12)


def test_oracle_is_calibrated_against_realised_outcomes(extended):
    frame = oracle_frame(extended, AS_OF - timedelta(days=14), 14, k=16)
    eligible = frame.filter(~pl.col("converted_before_cutoff"))
    assert frame.filter(pl.col("converted_before_cutoff"))["oracle_probability"].is_nan().all()
    realised, predicted = eligible["converted_in_horizon"].mean(), eligible["oracle_probability"].mean()
    assert predicted == pytest.approx(realised, rel=0.15)
    top = eligible.filter(pl.col("oracle_probability") >= eligible["oracle_probability"].quantile(0.9))
    assert top["converted_in_horizon"].mean() > 3 * realised  # the oracle ranks, not just averages


def test_oracle_needs_at_least_one_future(extended):
    with pytest.raises(ValueError, match="at least 1"):
        oracle_probability(extended, AS_OF, 14, k=0)


def test_a_continuation_picks_up_where_the_history_stopped(extended):
    cont = continue_simulation(extended, timedelta(days=1), seed=3)
    new, sim = cont.new_events, cont.simulation
    assert sim.until == AS_OF + timedelta(days=1) and extended.until == AS_OF
    assert new["timestamp"].min() > AS_OF and new["timestamp"].max() <= sim.until
    # the same daily volume as the history's last week, where the extended model's base rates also apply
    last_week = extended.events.filter(pl.col("timestamp") >= AS_OF - timedelta(days=7)).height / 7
    assert new.height == pytest.approx(last_week, rel=0.1)
    assert sim.events.height == extended.events.height + new.height
    assert sim.events.select(pl.col("profile_index").diff().min())[0, 0] >= 0  # still sorted by profile
    assert int(sim.truth["n_events"].sum()) == sim.events.height
    conversions = sim.events.filter(pl.col("event_type") == CONVERSION_EVENT)
    assert conversions["profile_index"].is_unique().all()  # nobody converts twice
    assert sim.truth["converted"].sum() == conversions.height >= extended.truth["converted"].sum()


def test_a_continuation_share_keeps_the_other_profiles_quiet(extended):
    cont = continue_simulation(extended, timedelta(days=1), share=0.1, seed=3)
    everyone = continue_simulation(extended, timedelta(days=1), seed=3)
    assert 0 < cont.changed_profiles < everyone.changed_profiles * 0.2
    with pytest.raises(ValueError, match="share"):
        continue_simulation(extended, timedelta(days=1), share=0)
