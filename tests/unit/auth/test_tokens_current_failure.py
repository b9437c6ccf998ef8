"""Why clients may hold no valid token: a source's failure, or an expired token not yet replaced.

A frozen issuer makes a fetch hang until its timeout; meanwhile the broker refuses the expired
token. That refusal must read as a token outage (the router waits), not as a broker refusing a
token the source vouches for (the router stops).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from router.auth.tokens import FileTokens, TokenUnavailable
from tests.unit.auth.test_tokens_file import _write, jwt

pytestmark = pytest.mark.unit

SETTING = "clusters.default.security.sasl.token_file"


class _Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_fresh_token_is_no_failure_and_an_expired_one_not_yet_replaced_is_a_retriable_one(tmp_path: Path) -> None:
    clock = _Clock(1_000.0)
    path = _write(tmp_path / "token", jwt(1_012.0))
    source = FileTokens(path, setting=SETTING, clock=clock)
    source()
    assert source.current_failure() is None
    clock.now = 1_013.0  # expired; no refresh asked for yet
    failure = source.current_failure()
    assert failure is not None and failure.retriable
    assert SETTING in str(failure) and "expired" in str(failure)
    assert source.last_error is None  # nothing failed: the token simply ran out


def test_a_fetch_under_way_counts_as_an_outage_until_it_ends(tmp_path: Path) -> None:
    seen: list[TokenUnavailable | None] = []

    class Slow(FileTokens):
        def _fetch(self) -> str:
            seen.append(self.current_failure())  # what an error callback sees meanwhile
            return super()._fetch()

    clock = _Clock(2_000.0)
    source = Slow(_write(tmp_path / "token", jwt(2_060.0)), setting=SETTING, clock=clock)
    source()
    assert seen and seen[0] is not None and seen[0].retriable
    assert source.current_failure() is None


def test_a_failed_fetch_is_the_failure_reported(tmp_path: Path) -> None:
    clock = _Clock(3_000.0)
    path = _write(tmp_path / "token", jwt(3_010.0))
    source = FileTokens(path, setting=SETTING, clock=clock)
    source()
    path.unlink()
    clock.now = 3_020.0
    with pytest.raises(TokenUnavailable):
        source()
    assert source.current_failure() is source.last_error


def test_right_after_tokens_come_back_a_refusal_still_counts_as_the_outage(tmp_path: Path) -> None:
    clock = _Clock(4_000.0)
    path = _write(tmp_path / "token", jwt(4_010.0))
    source = FileTokens(path, setting=SETTING, clock=clock)
    source()
    path.unlink()
    clock.now = 4_011.0
    with pytest.raises(TokenUnavailable):
        source()
    _write(path, jwt(4_060.0))
    clock.now = 4_012.0
    source()  # tokens are back; clients that failed to refresh still hold the expired one
    failure = source.current_failure()
    assert failure is not None and failure.retriable and source.last_error is None
    clock.now = 4_012.0 + 31
    assert source.current_failure() is None
