"""Whether to retry a response, and how long to wait first. Pure functions, tested as a table."""

import random
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


def should_retry(status: int | None, attempt: int, max_retries: int) -> bool:
    """``status`` None means the connection failed before a response arrived."""
    if attempt >= max_retries:
        return False
    return status is None or status in RETRY_STATUSES


def retry_delay(attempt: int, retry_after: str | None = None, *, base_s: float = 0.5, cap_s: float = 30.0,
                rng: random.Random | None = None) -> float:
    """Retry-After wins when the server sends one; otherwise exponential backoff with full jitter."""
    if retry_after:
        parsed = _parse_retry_after(retry_after)
        if parsed is not None:
            return min(parsed, cap_s * 4)
    ceiling = min(cap_s, base_s * (2 ** attempt))
    return (rng or random).uniform(ceiling / 2, ceiling)


def _parse_retry_after(value: str) -> float | None:
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None
