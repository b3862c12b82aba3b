"""The one retry policy: full-jitter exponential backoff, Retry-After hints, bounded attempts."""

from __future__ import annotations

import math
import random
from fractions import Fraction

import attrs
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from publisher_core import RetryPolicy

seconds = st.floats(min_value=0, max_value=1e6, allow_nan=False)
policies = st.builds(
    RetryPolicy,
    attempts=st.integers(min_value=1, max_value=100),
    base=seconds,
    cap=seconds,
    retry_after_cap=seconds,
)
failures = st.integers(min_value=1, max_value=10_000)


@given(policies, failures)
@example(RetryPolicy(), 1)
@example(RetryPolicy(), 5000)  # far past the point where 2**n overflows a float
def test_a_wait_is_never_negative_nor_over_the_cap(policy, failed):
    """Backoff after any number of failures lies in [0, min(cap, base * 2**(n-1))]."""
    wait = policy.delay(failed)
    assert 0 <= wait <= policy.cap
    assert Fraction(wait) <= Fraction(policy.base) * 2 ** (failed - 1)


@given(policies, failures, st.floats(min_value=0, allow_infinity=True, allow_nan=False))
def test_retry_after_is_honoured_up_to_its_limit(policy, failed, hint):
    """A server's hint replaces the backoff, but never exceeds retry_after_cap."""
    assert policy.delay(failed, hint) == min(hint, policy.retry_after_cap)


@given(policies, failures, st.one_of(st.just(math.nan), st.floats(max_value=-1e-9)))
def test_a_hint_that_is_not_a_wait_is_ignored(policy, failed, hint):
    """A negative or NaN hint falls back to the backoff and its bounds."""
    wait = policy.delay(failed, hint)
    assert 0 <= wait <= policy.cap
    assert Fraction(wait) <= Fraction(policy.base) * 2 ** (failed - 1)


def test_the_jitter_is_full(monkeypatch):
    """The wait is drawn uniformly from zero to the ceiling, which doubles per failure."""
    draws: list[tuple[float, float]] = []

    def uniform(low: float, high: float) -> float:
        draws.append((low, high))
        return high

    monkeypatch.setattr(random, "uniform", uniform)
    policy = RetryPolicy(base=0.25, cap=5.0)
    assert [policy.delay(n) for n in range(1, 7)] == [0.25, 0.5, 1.0, 2.0, 4.0, 5.0]
    assert {low for low, _ in draws} == {0}


def test_the_defaults_are_gets():
    """5 attempts, 0.25 s doubling up to 20 s, Retry-After up to 20 s."""
    assert attrs.asdict(RetryPolicy()) == {
        "attempts": 5,
        "base": 0.25,
        "cap": 20.0,
        "retry_after_cap": 20.0,
    }


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"attempts": 0}, "'attempts' must be >= 1: 0"),
        ({"base": -1.0}, "base must be a finite number of seconds >= 0, not -1.0"),
        ({"cap": math.inf}, "cap must be a finite number of seconds >= 0, not inf"),
        ({"retry_after_cap": math.nan}, "retry_after_cap must be a finite number"),
    ],
)
def test_a_policy_out_of_range_is_refused(options, message):
    """No attempts at all, or a negative, infinite or NaN time, is a ValueError."""
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        RetryPolicy(**options)


class Flaky(Exception):
    """A failure worth another attempt."""

    def __init__(self, hint: float | None = None) -> None:
        super().__init__("flaky")
        self.hint = hint


def test_run_retries_until_an_attempt_succeeds():
    """Failures are retried after a wait; the attempt number is passed; the result returned."""
    calls: list[int] = []
    waits: list[float] = []
    noted: list[tuple[str, int, float]] = []

    def attempt(number: int) -> str:
        calls.append(number)
        if number < 3:
            raise Flaky(hint=1.5 if number == 2 else None)
        return "done"

    result = RetryPolicy(attempts=5).run(
        attempt,
        retry_on=Flaky,
        retry_after=lambda error: error.hint,
        on_retry=lambda error, failed, wait: noted.append((str(error), failed, wait)),
        sleep=waits.append,
    )
    assert (result, calls) == ("done", [1, 2, 3])
    assert len(waits) == 2 and 0 <= waits[0] <= 0.25 and waits[1] == 1.5
    assert noted == [("flaky", 1, waits[0]), ("flaky", 2, 1.5)]


def test_run_raises_the_last_failure_after_the_last_attempt():
    """When every attempt fails, the last one's exception comes out as it is."""
    errors = [Flaky(), Flaky(), Flaky()]
    waits: list[float] = []

    def attempt(number: int) -> None:
        raise errors[number - 1]

    with pytest.raises(Flaky) as raised:
        RetryPolicy(attempts=3).run(attempt, retry_on=Flaky, sleep=waits.append)
    assert raised.value is errors[-1]
    assert len(waits) == 2


def test_run_does_not_retry_other_errors():
    """An exception outside retry_on is raised from the first attempt, without a wait."""
    waits: list[float] = []

    def attempt(number: int) -> None:
        raise KeyError(number)

    with pytest.raises(KeyError):
        RetryPolicy().run(attempt, retry_on=(Flaky, OSError), sleep=waits.append)
    assert waits == []


def test_run_with_one_attempt_never_waits():
    """attempts=1 is a single try, e.g. for a local file."""
    waits: list[float] = []

    def attempt(number: int) -> None:
        raise Flaky

    with pytest.raises(Flaky):
        RetryPolicy(attempts=1).run(attempt, retry_on=Flaky, sleep=waits.append)
    assert waits == []
