"""The forward process of the history and of continuations of a simulation (the oracle's futures follow it in
compiled form: kernels.py).

A *lane* is one independent timeline of one profile: the history runs one lane per profile. Events are parallel
arrays of lane, type code and time (epoch seconds), so every step is a numpy operation over all lanes at once.
"""

from dataclasses import dataclass

import numpy as np

from .model import BehaviourModel
from .taxonomy import BASE_TYPES, CODE, DEPENDENCIES, EVENT_TYPES, EventType, triggers_conversion_draw

CHILD_WEEKS = 10  # the notebooks draw Poisson(rate * N_WEEKS) children per origin event, with N_WEEKS = 10
CONVERSION_LAG_S = 60.0  # the conversion event follows its triggering event by a minute
CHILDREN = {CODE[origin]: tuple(CODE[c] for c in children) for origin, children in DEPENDENCIES}
DELTA = np.array([e.propensity_delta for e in EVENT_TYPES])
DRAWS = np.array([triggers_conversion_draw(e.name) for e in EVENT_TYPES])
WEEK_S = 7 * 86400.0


@dataclass
class Events:
    lane: np.ndarray  # int64
    code: np.ndarray  # int8, index into EVENT_TYPES
    time: np.ndarray  # float64 epoch seconds

    @property
    def size(self) -> int:
        return self.lane.size

    @staticmethod
    def empty() -> "Events":
        return Events(np.empty(0, np.int64), np.empty(0, np.int8), np.empty(0))

    @staticmethod
    def concat(parts: list["Events"]) -> "Events":
        if not parts:
            return Events.empty()
        return Events(np.concatenate([p.lane for p in parts]), np.concatenate([p.code for p in parts]),
                      np.concatenate([p.time for p in parts]))

    def take(self, idx: np.ndarray) -> "Events":
        return Events(self.lane[idx], self.code[idx], self.time[idx])

    def sorted(self) -> "Events":
        """By (lane, time). One int64 key (lane in the high bits, milliseconds in the low 40) sorts
        several times faster than a two-key lexsort. Events come as pieces each in lane order (a type's base
        events, a generation's children of one type): a stable sort, which merges runs, takes half the time of
        numpy's default on them."""
        if not self.size:
            return self
        ms = np.rint((self.time - self.time.min()) * 1e3).astype(np.int64)
        if self.lane.max() >= 1 << 23 or ms.max() >= 1 << 40:
            return self.take(np.lexsort((self.time, self.lane)))
        return self.take(np.argsort((self.lane << 40) | ms, kind="stable"))


def base_events(rng: np.random.Generator, activity: np.ndarray, lo: float, hi: float) -> Events:
    """Poisson counts of each base type in [lo, hi) per lane, at uniform whole-second times."""
    if hi <= lo:
        return Events.empty()
    parts = []
    for name in BASE_TYPES:
        counts = rng.poisson(EVENT_TYPES[CODE[name]].weekly_rate * (hi - lo) / WEEK_S * activity)
        lanes = np.repeat(np.arange(activity.size, dtype=np.int64), counts)
        times = np.minimum(lo + np.floor(rng.uniform(0, hi - lo, size=lanes.size)), np.nextafter(hi, lo))
        parts.append(Events(lanes, np.full(lanes.size, CODE[name], np.int8), times))
    return Events.concat(parts)


def descendants(rng: np.random.Generator, origins: Events, end: float, after: float | None = None) -> Events:
    """Every event caused, directly or not, by ``origins`` before ``end``.

    With ``after``, the origins are events already realised before ``after``, whose children before it
    are realised too: only children landing after it are drawn. Poisson thinning makes that exact, and
    the exponential delay's lack of memory places them at ``after`` plus a fresh delay.
    """
    found, frontier, thinned = [], origins, after is not None
    while frontier.size:
        generation = []
        # Each origin type's events as one slice, in their order: one stable sort of the codes instead of a mask
        # over the whole frontier per type.
        by_code = np.argsort(frontier.code, kind="stable")
        bounds = np.searchsorted(frontier.code[by_code], np.arange(len(EVENT_TYPES) + 1))
        for origin, children in CHILDREN.items():
            picked = by_code[bounds[origin]:bounds[origin + 1]]
            if not picked.size:
                continue
            o_lane, o_time = frontier.lane[picked], frontier.time[picked]
            for child in children:
                spec = EVENT_TYPES[child]
                mean, delay = spec.weekly_rate * CHILD_WEEKS, spec.delay_hours * 3600.0
                if thinned:
                    if not delay:
                        continue
                    counts = rng.poisson(_children_after(spec, o_time, after))
                    lanes = np.repeat(o_lane, counts)
                    times = after + rng.exponential(delay, size=lanes.size)
                else:
                    counts = rng.poisson(mean, size=o_lane.size)
                    lanes = np.repeat(o_lane, counts)
                    times = np.repeat(o_time, counts)
                    if delay:
                        times = times + rng.exponential(delay, size=lanes.size)
                keep = times < end
                generation.append(Events(lanes[keep], np.full(int(keep.sum()), child, np.int8), times[keep]))
        frontier, thinned = Events.concat(generation), False
        found.append(frontier)
    return Events.concat(found)


def _children_after(child: EventType, origin_time: np.ndarray, after: float) -> np.ndarray:
    """The expected count of ``child`` events landing after ``after`` from origins realised at ``origin_time``:
    Poisson thinning by the chance that an exponential delay outlasts the time since the origin."""
    return child.weekly_rate * CHILD_WEEKS * np.exp(-(after - origin_time) / (child.delay_hours * 3600.0))


def live(origins: Events, after: float, epsilon: float = 1e-12) -> np.ndarray:
    """Per origin realised before ``after``: whether any of its children may still land after it, that is whether
    the expected count of some child type after ``after`` (``descendants``' thinned mean) is at least ``epsilon``.
    The others change a future with a chance below ``epsilon``: leaving them out saves drawing for them in every
    future (an email opened a month ago, a page view of yesterday)."""
    most = np.zeros(origins.size)
    for origin, children in CHILDREN.items():
        picked = origins.code == origin
        for child in children:
            spec = EVENT_TYPES[child]
            if spec.delay_hours:
                most[picked] = np.maximum(most[picked], _children_after(spec, origins.time[picked], after))
    return most >= epsilon


@dataclass
class Walk:
    propensity_after: np.ndarray  # per event: the latent propensity once the event has happened
    converted_at: np.ndarray  # per lane: conversion time, NaN if none
    propensity_end: np.ndarray  # per lane: propensity at ``end``
    conversion_chance: np.ndarray  # per lane: P(converting before ``end`` | this path), draws integrated out


def walk(rng: np.random.Generator, model: BehaviourModel, events: Events, *, baseline: np.ndarray,
         propensity: np.ndarray, start: float, end: float, converted: np.ndarray | None = None) -> Walk:
    """Walk each lane's events in time order: decay toward the baseline, add the event's delta (clipped
    to [0, 1]), then maybe convert. ``events`` must be sorted by (lane, time)."""
    n = baseline.size
    p = propensity.astype(float).copy()
    last = np.full(n, start)
    converted_at = np.full(n, np.nan)
    if converted is not None:
        converted_at[converted] = -np.inf  # converted before ``start``: no more draws
    after = np.empty(events.size)
    log_survival = np.zeros(n)
    lane, code, time = events.lane, events.code, events.time
    first = np.searchsorted(lane, np.arange(n))
    pos = np.arange(events.size) - first[lane]
    # A stable sort is unique, and on 16-bit keys numpy makes it a radix sort.
    by_pos = np.argsort(pos.astype(np.uint16) if pos.size and pos.max() < 1 << 16 else pos, kind="stable")
    bounds = np.searchsorted(pos[by_pos], np.arange(pos.max() + 2 if pos.size else 1))
    for k in range(len(bounds) - 1):
        idx = by_pos[bounds[k]:bounds[k + 1]]
        u, t = lane[idx], time[idx]
        b = baseline[u]
        p[u] = np.clip(b + (p[u] - b) * model.decay(t - last[u]) + DELTA[code[idx]], 0.0, 1.0)
        last[u] = t
        draw = DRAWS[code[idx]] & (t + CONVERSION_LAG_S <= end)
        chance = np.minimum(1.0, model.conversion_scale * p[u])
        # The path of p never depends on the draws, so the chance of converting along it is exact.
        log_survival[u[draw]] += np.log1p(-np.minimum(chance[draw], 1 - 1e-12))  # one event per lane per step
        after[idx] = p[u]
        eligible = draw & np.isnan(converted_at[u])
        hit = eligible.copy()
        hit[eligible] = rng.random(int(eligible.sum())) < chance[eligible]
        converted_at[u[hit]] = t[hit] + CONVERSION_LAG_S
    already = np.isneginf(converted_at)
    converted_at[already] = np.nan
    p_end = baseline + (p - baseline) * model.decay(end - last)
    return Walk(after, converted_at, p_end, np.where(already, 0.0, -np.expm1(log_survival)))
