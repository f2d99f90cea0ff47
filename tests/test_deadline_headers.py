"""Parsing the budgets callers send: pure functions, fuzzed."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gracekit.deadlines._headers import (
    ENVOY,
    GRACEKIT,
    GRPC,
    MAX_BUDGET,
    inbound_budget,
    parse_grpc_timeout,
    parse_ms,
)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(b"1500", 1.5), (b"0", 0.0), (b" 250 ", 0.25), (b"86400000", 86400.0)],
)
def test_milliseconds(value: bytes, seconds: float) -> None:
    assert parse_ms(value) == seconds


@pytest.mark.parametrize(
    "value",
    [b"", b"-5", b"1.5", b"1e3", b"nan", b"NaN", b"inf", b"0x10", b"+5", b"12 34",
     b"86400001", b"9" * 13, "\u00b2".encode(), "\u0663".encode()],
)  # fmt: skip
def test_bad_milliseconds_are_ignored(value: bytes) -> None:
    assert parse_ms(value) is None


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(b"250m", 0.25), (b"1S", 1.0), (b"2M", 120.0), (b"1H", 3600.0), (b"500u", 0.0005),
     (b"99999999n", 0.099999999), (b"24H", 86400.0)],
)  # fmt: skip
def test_grpc_timeouts(value: bytes, seconds: float) -> None:
    result = parse_grpc_timeout(value)
    assert result is not None
    assert math.isclose(result, seconds)


@pytest.mark.parametrize(
    "value",
    [b"", b"S", b"10", b"10s", b"10x", b"-1S", b"1.5S", b"123456789S", b"25H", b"1 S", b"nanS"],
)
def test_bad_grpc_timeouts_are_ignored(value: bytes) -> None:
    assert parse_grpc_timeout(value) is None


def test_the_shortest_valid_budget_wins() -> None:
    headers = [(b"host", b"x"), (ENVOY, b"2000"), (GRPC, b"500m"), (GRACEKIT, b"nonsense")]
    assert inbound_budget(headers) == 0.5
    assert inbound_budget([(b"host", b"x")]) is None


def test_a_duplicated_header_is_ignored_entirely() -> None:
    assert inbound_budget([(ENVOY, b"100"), (ENVOY, b"5000")]) is None
    assert inbound_budget([(ENVOY, b"100"), (ENVOY, b"100"), (GRACEKIT, b"3000")]) == 3.0


header_names = st.sampled_from([ENVOY, GRPC, GRACEKIT, b"host", b"x-other"])


@given(st.lists(st.tuples(header_names, st.binary(max_size=40)), max_size=8))
def test_any_headers_give_none_or_a_sane_budget(headers: list[tuple[bytes, bytes]]) -> None:
    budget = inbound_budget(headers)
    if budget is not None:
        assert 0 <= budget <= MAX_BUDGET
        assert not math.isnan(budget)


@given(st.integers(min_value=0, max_value=int(MAX_BUDGET * 1000)))
def test_every_valid_millisecond_value_round_trips(ms: int) -> None:
    assert parse_ms(str(ms).encode()) == ms / 1000
