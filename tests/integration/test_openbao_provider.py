"""The OpenBao transit provider against a real ``bao server -dev -dev-tls`` (verified TLS)."""

from __future__ import annotations

import dataclasses
import socket
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

import hvac
import pytest

from router.envelope import Opener, SealContext, Sealer, UnknownKey, frame
from router.keys.dek import CachingDekManager, DekPolicy, JurisdictionKeys
from router.keys.errors import KeyUnavailable
from router.keys.local import LocalKeyring, LocalPublicKeys, LocalSigner
from router.keys.openbao import OpenBaoTransitProvider
from router.keys.protocol import KeyRef
from router.keys.wrappers import InstrumentedProvider, RetryingProvider
from tests.integration.conftest_openbao import OpenBaoEndpoint, OpenBaoServer

pytestmark = pytest.mark.integration

PAYLOAD = b'{"FirstName":"Grace","Email":"grace@example.org"}' * 20


def _ctx(i: int = 0, jurisdiction: str = "eu") -> SealContext:
    return SealContext(
        f"evt-{i}", "crm.ingress", 0, i, f"crm.{jurisdiction}.contact", 0, jurisdiction, "restricted",
        ("pii.name", "pii.email"), "Contact", "update", 11,
    )  # fmt: skip


class Stack:
    def __init__(
        self, url: str, token: str, ring: LocalKeyring, keks: dict[str, str], policy: DekPolicy, ca_file: str
    ) -> None:
        self.provider = OpenBaoTransitProvider(url, token, timeout_s=2.0, verify=ca_file)
        wrapped = InstrumentedProvider(RetryingProvider(self.provider, attempts=2, initial_backoff_s=0.01))
        self.keys = JurisdictionKeys({j: (wrapped, k) for j, k in keks.items()})
        self.deks = CachingDekManager(self.keys, policy)
        self.sealer = Sealer(self.deks, LocalSigner(ring))
        self.ring = ring

    def opener(self) -> Opener:
        return Opener(self.keys, LocalPublicKeys(self.ring))


def _open(opener: Opener, value: bytes, headers: list[tuple[str, bytes]], ctx: SealContext) -> bytes:
    return opener.open(
        value, headers, topic=ctx.dest_topic, partition=ctx.dest_partition, expected_jurisdiction=ctx.jurisdiction
    ).plaintext


@pytest.fixture
def ring(tmp_path: Path) -> LocalKeyring:
    return LocalKeyring.create(tmp_path / "signing.json", ["unused"])


@pytest.fixture
def transit_keys(openbao: OpenBaoEndpoint) -> dict[str, str]:
    """Fresh uuid-named transit keys for eu and us."""
    url, token = openbao
    client = hvac.Client(url=url, token=token, timeout=2, verify=openbao.ca_file)
    names = {j: f"rr-{j}-{uuid.uuid4().hex[:8]}" for j in ("eu", "us")}
    for name in names.values():
        client.secrets.transit.create_key(name)
    return names


def _stack(openbao: OpenBaoEndpoint, ring: LocalKeyring, keks: dict[str, str], **policy: float) -> Stack:
    return Stack(openbao[0], openbao[1], ring, keks, DekPolicy(**policy), openbao.ca_file)  # type: ignore[arg-type]


def _admin(openbao: OpenBaoEndpoint) -> hvac.Client:
    return hvac.Client(url=openbao[0], token=openbao[1], timeout=2, verify=openbao.ca_file)


def test_records_sealed_with_transit_deks_open(
    openbao: OpenBaoEndpoint, ring: LocalKeyring, transit_keys: dict[str, str]
) -> None:
    s = _stack(openbao, ring, transit_keys)
    records = [(s.sealer.seal(PAYLOAD, _ctx(i)), _ctx(i)) for i in range(5)]
    opener = s.opener()
    for rec, ctx in records:
        assert _open(opener, rec.value, rec.headers, ctx) == PAYLOAD
    f = frame.decode(records[0][0].value)
    assert f.kek == KeyRef(transit_keys["eu"], 1)
    assert f.wrapped_dek.startswith(b"vault:v1:")


def test_kek_rotation_is_picked_up_while_running_and_in_flight_records_still_open(
    openbao: OpenBaoEndpoint, ring: LocalKeyring, transit_keys: dict[str, str]
) -> None:
    s = _stack(openbao, ring, transit_keys, max_records=2)
    before = [s.sealer.seal(PAYLOAD + bytes([i]), _ctx(i)) for i in range(3)]
    _admin(openbao).secrets.transit.rotate_key(transit_keys["eu"])
    after = [s.sealer.seal(PAYLOAD + bytes([i]), _ctx(i)) for i in range(3, 6)]
    versions = [frame.decode(r.value).kek.version for r in before + after]
    assert versions[0] == 1
    assert versions[-1] == 2  # the same Sealer, no restart
    opener = Opener(s.keys, LocalPublicKeys(ring))
    for i, rec in enumerate(before + after):
        assert _open(opener, rec.value, rec.headers, _ctx(i)) == PAYLOAD + bytes([i])


def test_a_version_below_min_decryption_version_is_unavailable_not_retriable(
    openbao: OpenBaoEndpoint, ring: LocalKeyring, transit_keys: dict[str, str]
) -> None:
    s = _stack(openbao, ring, transit_keys)
    old = s.sealer.seal(PAYLOAD, _ctx())
    transit = _admin(openbao).secrets.transit
    transit.rotate_key(transit_keys["eu"])
    transit.update_key_configuration(transit_keys["eu"], min_decryption_version=2)
    with pytest.raises(KeyUnavailable) as err:
        _open(s.opener(), old.value, old.headers, _ctx())
    assert err.value.retriable is False
    assert isinstance(err.value, UnknownKey)


def test_an_unknown_transit_key_version_is_unknown_key(
    openbao: OpenBaoEndpoint, ring: LocalKeyring, transit_keys: dict[str, str]
) -> None:
    s = _stack(openbao, ring, transit_keys)
    rec = s.sealer.seal(PAYLOAD, _ctx())
    f = frame.decode(rec.value)
    forged_wrapped = f.wrapped_dek.replace(b"vault:v1:", b"vault:v9:", 1)
    header = frame.encode_header(f.ctx, KeyRef(f.kek.key_id, 9), forged_wrapped, f.signing_key)
    body = frame.encode_body(header, f.nonce, f.ciphertext)
    value = body + LocalSigner(ring).sign(frame.SIGNING_DOMAIN + body)
    with pytest.raises(UnknownKey) as err:
        _open(s.opener(), value, rec.headers, _ctx())
    assert err.value.version == 9


def test_a_deleted_transit_key_is_unknown_key(
    openbao: OpenBaoEndpoint, ring: LocalKeyring, transit_keys: dict[str, str]
) -> None:
    s = _stack(openbao, ring, transit_keys)
    rec = s.sealer.seal(PAYLOAD, _ctx())
    transit = _admin(openbao).secrets.transit
    transit.update_key_configuration(transit_keys["eu"], deletion_allowed=True)
    transit.delete_key(transit_keys["eu"])
    with pytest.raises(UnknownKey):
        _open(s.opener(), rec.value, rec.headers, _ctx())
    s.deks.invalidate()
    with pytest.raises(UnknownKey):
        s.sealer.seal(PAYLOAD, _ctx())


def test_an_eu_record_cannot_be_unwrapped_with_the_us_transit_key(
    openbao: OpenBaoEndpoint, ring: LocalKeyring, transit_keys: dict[str, str]
) -> None:
    s = _stack(openbao, ring, transit_keys)
    rec = s.sealer.seal(PAYLOAD, _ctx())
    f = frame.decode(rec.value)
    with pytest.raises(KeyUnavailable) as err:
        s.provider.unwrap(KeyRef(transit_keys["us"], 1), f.wrapped_dek)
    assert not err.value.retriable


def test_a_bad_token_is_unavailable_not_retriable(openbao: OpenBaoEndpoint, transit_keys: dict[str, str]) -> None:
    provider = OpenBaoTransitProvider(openbao[0], "not-a-token", verify=openbao.ca_file)
    with pytest.raises(KeyUnavailable) as err:
        provider.new_data_key(transit_keys["eu"])
    assert not err.value.retriable
    assert "not-a-token" not in str(err.value)


def test_openbao_stopped_mid_stream_stalls_with_retriable_errors_and_no_plaintext(
    openbao_factory: Callable[[], OpenBaoServer], ring: LocalKeyring
) -> None:
    server = openbao_factory()
    server.client().secrets.transit.create_key("rr-eu")
    s = Stack(server.url, server.token, ring, {"eu": "rr-eu"}, DekPolicy(max_records=1), server.ca_file)
    sealed = [s.sealer.seal(PAYLOAD, _ctx(i)) for i in range(3)]
    reader = s.opener()
    assert _open(reader, sealed[0].value, sealed[0].headers, _ctx(0)) == PAYLOAD  # DEK 0 now cached

    server.stop()

    with pytest.raises(KeyUnavailable) as seal_err:
        s.sealer.seal(PAYLOAD, _ctx(3))
    assert seal_err.value.retriable
    with pytest.raises(KeyUnavailable) as open_err:
        _open(reader, sealed[1].value, sealed[1].headers, _ctx(1))
    assert open_err.value.retriable
    assert not isinstance(open_err.value, UnknownKey)
    for err in (seal_err.value, open_err.value):
        assert "Grace" not in str(err)
        assert server.token not in str(err)
    # A DEK already unwrapped keeps serving records sealed under it.
    assert _open(reader, sealed[0].value, sealed[0].headers, _ctx(0)) == PAYLOAD


def test_a_provider_that_does_not_answer_times_out_as_retriable() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        provider = OpenBaoTransitProvider(f"http://127.0.0.1:{port}", "t", timeout_s=0.3)
        with pytest.raises(KeyUnavailable) as err:
            provider.new_data_key("rr-eu")
        assert err.value.retriable
        assert "slow" in str(err.value)
    finally:
        stop.set()
        t.join()
        for c in accepted:
            c.close()
        listener.close()


def test_context_fields_survive_the_transit_round_trip(
    openbao: OpenBaoEndpoint, ring: LocalKeyring, transit_keys: dict[str, str]
) -> None:
    s = _stack(openbao, ring, transit_keys)
    ctx = dataclasses.replace(_ctx(7, "us"), schema_id=None, categories=())
    rec = s.sealer.seal(b"", ctx)
    opened = s.opener().open(rec.value, rec.headers, topic=ctx.dest_topic, partition=0, expected_jurisdiction="us")
    assert opened.ctx == ctx


def test_a_manifest_batch_sealed_with_transit_deks_opens(
    openbao: OpenBaoEndpoint, ring: LocalKeyring, transit_keys: dict[str, str]
) -> None:
    s = _stack(openbao, ring, transit_keys)
    records = s.sealer.seal_batch([(PAYLOAD + bytes([i]), _ctx(i)) for i in range(10)])
    opener = s.opener()
    for i, rec in enumerate(records):
        assert _open(opener, rec.value, rec.headers, _ctx(i)) == PAYLOAD + bytes([i])


def test_the_transit_digest_key_is_stable_across_rotation_and_differs_per_key(
    openbao: OpenBaoEndpoint, transit_keys: dict[str, str]
) -> None:
    url, token = openbao
    provider = OpenBaoTransitProvider(url, token, verify=openbao.ca_file)
    eu = provider.digest_key(transit_keys["eu"])
    assert len(eu) == 32 and eu != provider.digest_key(transit_keys["us"])
    _admin(openbao).secrets.transit.rotate_key(transit_keys["eu"])
    assert provider.digest_key(transit_keys["eu"]) == eu


def test_a_digest_key_of_a_missing_transit_key_is_unknown_key(openbao: OpenBaoEndpoint) -> None:
    url, token = openbao
    with pytest.raises(UnknownKey):
        OpenBaoTransitProvider(url, token, verify=openbao.ca_file).digest_key(f"rr-missing-{uuid.uuid4().hex[:8]}")
