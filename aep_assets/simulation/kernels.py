"""The oracle's futures, compiled by numba: one lane at a time, from its first draw to its chance of converting.

A future of a profile is a handful of events (about four at the demo's rates). Drawn with numpy over millions
of lanes at once, each step of the cascade and the walk made arrays of every lane's events, and then all of
them had to be sorted by lane and time. Here each lane's events are drawn into a small buffer, put in time
order there, and walked at once, so nothing the size of the chunk is ever made or sorted.

It is the process of ``engine``, which makes the history: the same base events, the same cascade (the children
of events still pending at the cutoff thinned as ``descendants(after=...)`` thins them) and the same walk of the
propensity with its chance of converting (``walk``'s ``conversion_chance``). The draws come in another order,
so the futures are other samples of the same distribution; a test compares the two statistically. The kernel
releases the GIL, so the oracle's worker threads run it side by side, each with its own generator, and it is
cached beside this module after its first compilation.
"""

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def future_chances(rng: np.random.Generator, copies: int, activity: np.ndarray, baseline: np.ndarray,
                   propensity: np.ndarray, pending_offsets: np.ndarray, pending_code: np.ndarray,
                   pending_time: np.ndarray, base_codes: np.ndarray, base_rate_s: np.ndarray,
                   child_offsets: np.ndarray, child_codes: np.ndarray, child_mean: np.ndarray, delay_s: np.ndarray,
                   delta: np.ndarray, draws: np.ndarray, lag_s: float, decay_s: float, conversion_scale: float,
                   start: float, base_end: float, last_base: float, end: float) -> np.ndarray:
    """Per profile: the sum over ``copies`` futures of the chance of converting in (start, end) along each.

    Profile i's pending origins are ``pending_*[pending_offsets[i]:pending_offsets[i + 1]]``; a type's children
    are ``child_codes[child_offsets[t]:child_offsets[t + 1]]``; a base type's events come at ``base_rate_s`` per
    second of activity 1. A conversion follows its draw by ``lag_s``. ``decay_s`` 0 means the propensity never
    decays. Base events stop at ``base_end`` (``last_base``, the last time before it, is their latest)."""
    n = activity.size
    out = np.zeros(n)
    codes, times = np.empty(64, np.int8), np.empty(64)
    base_span = base_end - start
    for i in range(n):
        for _ in range(copies):
            m = 0
            # Children still to come of the events pending at the cutoff: Poisson thinning by the chance that
            # an exponential delay outlasts the time since their origin, placed at the cutoff plus a fresh delay.
            for j in range(pending_offsets[i], pending_offsets[i + 1]):
                origin = pending_code[j]
                for k in range(child_offsets[origin], child_offsets[origin + 1]):
                    child = child_codes[k]
                    if delay_s[child] == 0.0:
                        continue
                    count = rng.poisson(child_mean[child] * np.exp(-(start - pending_time[j]) / delay_s[child]))
                    for _ in range(count):
                        t = start + rng.exponential(delay_s[child])
                        if t < end:
                            if m == codes.size:
                                codes, times = _grown(codes, times)
                            codes[m], times[m] = child, t
                            m += 1
            if base_span > 0.0:
                for b in range(base_codes.size):
                    count = rng.poisson(base_rate_s[b] * base_span * activity[i])
                    for _ in range(count):
                        if m == codes.size:
                            codes, times = _grown(codes, times)
                        codes[m], times[m] = base_codes[b], min(start + np.floor(rng.uniform(0.0, base_span)),
                                                                last_base)
                        m += 1
            # The cascade: every event in the buffer, drawn or pending-born, may cause more.
            q = 0
            while q < m:
                origin, at = codes[q], times[q]
                q += 1
                for k in range(child_offsets[origin], child_offsets[origin + 1]):
                    child = child_codes[k]
                    for _ in range(rng.poisson(child_mean[child])):
                        t = at + rng.exponential(delay_s[child]) if delay_s[child] > 0.0 else at
                        if t < end:
                            if m == codes.size:
                                codes, times = _grown(codes, times)
                            codes[m], times[m] = child, t
                            m += 1
            _sort_by_time(codes, times, m)
            out[i] += chance_along(codes, times, m, propensity[i], baseline[i], delta, draws, lag_s, decay_s,
                                   conversion_scale, start, end)
    return out


@njit(cache=True, nogil=True)
def _grown(codes: np.ndarray, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The full buffer, copied into one twice as large."""
    more_codes, more_times = np.empty(2 * codes.size, np.int8), np.empty(2 * codes.size)
    more_codes[:codes.size], more_times[:codes.size] = codes, times
    return more_codes, more_times


@njit(cache=True, nogil=True)
def _sort_by_time(codes: np.ndarray, times: np.ndarray, m: int) -> None:
    """Insertion sort of the first ``m`` events, stable: a future holds a few events, mostly drawn in order."""
    for i in range(1, m):
        code, t = codes[i], times[i]
        j = i - 1
        while j >= 0 and times[j] > t:
            codes[j + 1], times[j + 1] = codes[j], times[j]
            j -= 1
        codes[j + 1], times[j + 1] = code, t


@njit(cache=True, nogil=True)
def chance_along(codes: np.ndarray, times: np.ndarray, m: int, p: float, b: float, delta: np.ndarray,
                 draws: np.ndarray, lag_s: float, decay_s: float, conversion_scale: float, start: float,
                 end: float) -> float:
    """``engine.walk``'s step for each event in time order (decay toward the baseline, the event's delta, clipped
    to [0, 1]) and the chance that no draw along the way converts, its log-survival summed in time order."""
    last, log_survival = start, 0.0
    for e in range(m):
        code, t = codes[e], times[e]
        decay = np.exp(-(t - last) / decay_s) if decay_s > 0.0 else 1.0
        p = min(max(b + (p - b) * decay + delta[code], 0.0), 1.0)
        last = t
        if draws[code] and t + lag_s <= end:
            log_survival += np.log1p(-min(min(1.0, conversion_scale * p), 1.0 - 1e-12))
    return -np.expm1(log_survival)
