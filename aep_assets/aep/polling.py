"""Wait for AEP's asynchronous operations, with a deadline and every terminal state named."""

import time
from collections.abc import Callable
from typing import TypeVar

from .errors import AEPTimeout

T = TypeVar("T")


def poll(fetch: Callable[[], T], done: Callable[[T], bool], *, what: str, timeout_s: float,
         interval_s: float = 0.02, max_interval_s: float = 5.0) -> T:
    """Call ``fetch`` until ``done`` says so (``done`` raises on failed states), or the deadline passes.

    The first polls come quickly (fast operations finish in well under a second), then back off
    geometrically to ``max_interval_s``, so a long job costs few calls."""
    deadline = time.monotonic() + timeout_s
    delay = interval_s
    while True:
        value = fetch()
        if done(value):
            return value
        if time.monotonic() + delay > deadline:
            raise AEPTimeout(f"{what} did not finish within {timeout_s:.0f}s; raise the timeout or check it in AEP.")
        time.sleep(delay)
        delay = min(max_interval_s, delay * 1.15)
