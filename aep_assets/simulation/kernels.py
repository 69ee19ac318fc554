"""The oracle's two sequential loops, compiled by numba: ordering a future's events by lane and time, and walking
each lane's propensity along them.

The oracle runs millions of short lanes (a few events each). numpy does these loops a step at a time over every
lane, with a gather and a scatter per event and step; one pass in lane order touches each event once. The kernels
release the GIL, so the oracle's worker threads run them side by side, and they are cached beside this module
after their first compilation. They do plain IEEE arithmetic in the same order as ``engine.walk``, so the
results are the same to the last bit (tested).
"""

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def lane_time_order(lane: np.ndarray, key: np.ndarray, lanes: int) -> np.ndarray:
    """The permutation that sorts events by (lane, key), ties in their original order: the stable argsort of
    ``(lane << 40) | key`` that ``Events.sorted`` computes, by a counting sort on the lanes (the keys are small
    and dense) and then a stable sort of each lane's few keys."""
    starts = np.zeros(lanes + 1, np.int64)
    for i in range(lane.size):
        starts[lane[i] + 1] += 1
    for i in range(lanes):
        starts[i + 1] += starts[i]
    order = np.empty(lane.size, np.int64)
    fill = starts[:-1].copy()
    for i in range(lane.size):
        order[fill[lane[i]]] = i
        fill[lane[i]] += 1
    for u in range(lanes):
        lo, hi = starts[u], starts[u + 1]
        if hi - lo > 32:  # a busy lane: merge sort, stable, instead of an insertion sort's square
            part = order[lo:hi].copy()
            order[lo:hi] = part[np.argsort(key[part], kind="mergesort")]
            continue
        for i in range(lo + 1, hi):  # insertion sort: shifts only past strictly greater keys, so stable
            moving, j = order[i], i - 1
            while j >= lo and key[order[j]] > key[moving]:
                order[j + 1] = order[j]
                j -= 1
            order[j + 1] = moving
    return order


@njit(cache=True, nogil=True)
def propensity_path(lane: np.ndarray, decay: np.ndarray, delta: np.ndarray, baseline: np.ndarray,
                    propensity: np.ndarray) -> np.ndarray:
    """Per event of events sorted by (lane, time): the lane's propensity once the event has happened. It starts at
    ``propensity[lane]``, decays toward ``baseline[lane]`` by the event's ``decay``, moves by its ``delta`` and is
    clipped to [0, 1], as ``engine.walk`` does step by step."""
    after = np.empty(lane.size)
    current, p, b = -1, 0.0, 0.0
    for i in range(lane.size):
        if lane[i] != current:
            current = lane[i]
            p, b = propensity[current], baseline[current]
        p = min(max(b + (p - b) * decay[i] + delta[i], 0.0), 1.0)
        after[i] = p
    return after
