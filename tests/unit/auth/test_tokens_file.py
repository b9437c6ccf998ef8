"""A token file as the OAUTHBEARER source: read at every refresh, its failures kept and named.

Tokens are crafted here (base64url JSON, unsigned): a client reads only the claims; brokers verify.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from router.auth.tokens import FileTokens, TokenUnavailable, jwt_claims

pytestmark = pytest.mark.unit

SETTING = "clusters.default.security.sasl.token_file"


def jwt(exp: float, **claims: Any) -> str:
    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")
    return f"{part({'alg': 'none'})}.{part({'exp': exp, 'sub': 'router', **claims})}.c2ln"


def _write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


def _fails(source: FileTokens) -> TokenUnavailable:
    with pytest.raises(TokenUnavailable) as caught:
        source()
    assert source.last_error is caught.value
    return caught.value


def test_a_valid_token_is_served_with_its_expiry_and_principal(tmp_path: Path) -> None:
    exp = time.time() + 300
    token = jwt(exp, kafka_principal="router-eu")
    source = FileTokens(_write(tmp_path / "token", token + "\n"), setting=SETTING, principal_claim="kafka_principal")
    assert source() == (token, exp, "router-eu")


def test_the_file_is_read_at_every_refresh(tmp_path: Path) -> None:
    path = _write(tmp_path / "token", jwt(time.time() + 300))
    source = FileTokens(path, setting=SETTING)
    source()
    renewed = jwt(time.time() + 600)
    _write(path, renewed)
    assert source()[0] == renewed


def test_an_expired_token_is_retriable_and_says_so(tmp_path: Path) -> None:
    source = FileTokens(_write(tmp_path / "token", jwt(time.time() - 60)), setting=SETTING)
    err = _fails(source)
    assert err.retriable
    assert str(err).startswith(f"{SETTING}: the token obtained has expired")


@pytest.mark.parametrize("text", ["not a token", "a.b.c", "é.é.é", f"x.{base64.urlsafe_b64encode(b'[1]').decode()}.y"])
def test_a_malformed_file_is_not_retriable(tmp_path: Path, text: str) -> None:
    source = FileTokens(_write(tmp_path / "token", text), setting=SETTING)
    err = _fails(source)
    assert not err.retriable
    assert str(err).startswith(f"{SETTING}: ")
    assert text not in str(err), "the file's content is not echoed"


def test_a_token_without_exp_is_not_retriable(tmp_path: Path) -> None:
    payload = base64.urlsafe_b64encode(b'{"sub": "router"}').decode().rstrip("=")
    source = FileTokens(_write(tmp_path / "token", f"eyJhbGciOiJub25lIn0.{payload}.c2ln"), setting=SETTING)
    err = _fails(source)
    assert not err.retriable and "'exp' claim" in str(err)


def test_a_missing_or_empty_file_is_retriable(tmp_path: Path) -> None:
    missing = FileTokens(tmp_path / "token", setting=SETTING)
    err = _fails(missing)
    assert err.retriable and str(err).startswith(f"{SETTING}: file {tmp_path / 'token'} does not exist")
    empty = FileTokens(_write(tmp_path / "empty", ""), setting=SETTING)
    assert _fails(empty).retriable


def test_a_file_others_can_read_is_not_retriable(tmp_path: Path) -> None:
    source = FileTokens(_write(tmp_path / "token", jwt(time.time() + 300), mode=0o644), setting=SETTING)
    err = _fails(source)
    assert not err.retriable and "chmod 600" in str(err)


def test_a_failure_is_logged_once_and_the_recovery_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="router.auth.tokens")
    path = tmp_path / "token"
    source = FileTokens(path, setting=SETTING)
    for _ in range(3):
        _fails(source)
    _write(path, jwt(time.time() + 300))
    source()
    source()
    messages = [r.getMessage() for r in caplog.records if r.name == "router.auth.tokens"]
    assert len(messages) == 2
    assert messages[0].startswith("no OAUTHBEARER token (retried about every 10 s): " + SETTING)
    assert "obtained again after a failure" in messages[1]
    assert source.last_error is None


def test_while_the_current_token_is_valid_a_failed_refresh_still_serves_it(tmp_path: Path) -> None:
    path = _write(tmp_path / "token", jwt(time.time() + 300))
    source = FileTokens(path, setting=SETTING)
    current = source()
    path.unlink()
    assert source() == current
    assert source.last_error is not None and source.last_error.retriable


def test_jwt_claims_reads_the_payload_unverified() -> None:
    assert jwt_claims(jwt(123.0, aud="kafka")) == {"exp": 123.0, "sub": "router", "aud": "kafka"}
    with pytest.raises(ValueError, match="three dot-separated parts"):
        jwt_claims("only.two")
