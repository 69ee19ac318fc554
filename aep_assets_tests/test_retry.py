"""The retry decision and the backoff, as tables."""

import random

import pytest

from aep_assets.aep.retry import retry_delay, should_retry


@pytest.mark.parametrize(("status", "attempt", "expected"), [
    (429, 0, True), (500, 0, True), (502, 1, True), (503, 2, True), (504, 0, True), (None, 0, True),
    (400, 0, False), (401, 0, False), (403, 0, False), (404, 0, False), (412, 0, False),
    (503, 6, False), (429, 6, False),
])
def test_should_retry_only_transient_statuses_within_budget(status, attempt, expected):
    assert should_retry(status, attempt, max_retries=6) is expected


def test_retry_after_seconds_wins_over_backoff():
    assert retry_delay(5, "2") == 2.0
    assert retry_delay(0, "0") == 0.0


def test_retry_after_http_date_in_the_past_means_now():
    assert retry_delay(3, "Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


@pytest.mark.parametrize("attempt", [0, 1, 2, 3, 8])
def test_backoff_grows_exponentially_with_jitter_and_a_cap(attempt):
    rng = random.Random(1)
    ceiling = min(30.0, 0.5 * 2 ** attempt)
    delays = [retry_delay(attempt, None, rng=rng) for _ in range(50)]
    assert all(ceiling / 2 <= d <= ceiling for d in delays)
    assert len(set(delays)) > 1


def test_unparseable_retry_after_falls_back_to_backoff():
    assert 0.25 <= retry_delay(0, "soon", rng=random.Random(0)) <= 0.5
