"""Wait for AEP's asynchronous operations, with a deadline and every terminal state named."""

import math
from collections.abc import Callable
from time import monotonic, sleep
from typing import TypeVar

from .errors import AEPTimeout

T = TypeVar("T")


def poll(fetch: Callable[[float], T], done: Callable[[T], bool], *, what: str, timeout_s: float,
         interval_s: float = 0.02, max_interval_s: float = 5.0) -> T:
    """Call ``fetch`` until ``done`` says so (``done`` raises on failed states), or the deadline passes.

    The first polls come quickly (fast operations finish in well under a second), then back off
    geometrically to ``max_interval_s``, so a long job costs few calls. ``fetch`` gets the seconds until
    the next call, which it may offer the server as ``Prefer: wait`` (see ``prefer_wait``): a server that
    holds the answer until the state changes (the local sandbox does) answers the moment the job ends, and
    the time it held counts towards the pause before the next call."""
    deadline = monotonic() + timeout_s
    delay = interval_s
    while True:
        asked = monotonic()
        value = fetch(delay)
        if done(value):
            return value
        if monotonic() + delay > deadline:
            raise AEPTimeout(f"{what} did not finish within {timeout_s:.0f}s; raise the timeout or check it in AEP.")
        sleep(max(0.0, delay - (monotonic() - asked)))
        delay = min(max_interval_s, delay * 1.15)


def prefer_wait(wait_s: float) -> dict[str, str]:
    """RFC 7240's ``Prefer: wait`` for a status read: hold the answer up to ``wait_s`` (whole seconds, at least
    one) until the state changes. Servers that do not support it ignore it, as the RFC requires."""
    return {"Prefer": f"wait={max(1, math.ceil(wait_s))}"} if wait_s > 0 else {}
