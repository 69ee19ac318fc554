"""The oracle's sequential loop, compiled by numba: each lane's propensity along its events.

The oracle runs millions of short lanes (a few events each). numpy walks them a step at a time over every lane,
with a gather and a scatter per event and step; one pass in lane order touches each event once. The kernel
releases the GIL, so the oracle's worker threads run it side by side, and it is cached beside this module after
its first compilation. It does plain IEEE arithmetic in the order ``engine.walk`` does, so the results are the
same to the last bit (tested).
"""

import numpy as np
from numba import njit


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
