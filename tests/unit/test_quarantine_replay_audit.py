"""Format-3 audit records (a replayed quarantine record's): encoding, hash, chains and verification
beside the router's format-2 chains, and the replay chains read back (tail and links)."""

from __future__ import annotations

import hashlib
import random

import pytest

from router.audit.chain import AuditChain, verify_chain
from router.audit.record import FORMAT_VERSION as ROUTER_FORMAT
from router.audit.record import (
    HASH_OFFSET,
    HASH_SIZE,
    REPLAY_FORMAT_VERSION,
    ZERO_HASH,
    AuditDecodeError,
    AuditFields,
    ReplayLink,
    chain_partition,
    decode_audit,
    encode_audit,
    encode_audit_fastavro,
)
from router.quarantine.replay import ReplayChain, replay_chains_from

pytestmark = pytest.mark.unit


def _fields(topic: str = "quarantine.eu", partition: int = 1, offset: int = 7) -> AuditFields:
    return AuditFields(
        decision="route", reason="ROUTED", classification_level="confidential", categories=("PII",),
        field_names=("Email",), jurisdictions=("eu",), destination_topic="crm.eu.contact", destination_partition=2,
        placement_verdict="ok@1", payload_sha256="hmac-sha256:eu:00", sealed_sha256="ab" * 32, source_topic=topic,
        source_partition=partition, source_offset=offset, source_timestamp_ms=1_700_000_000_000,
        event_id="eid:0011", policy_version="v2:abc", router_version="1.0", instance_id="replay-eu@h",
        processed_at_ms=1_700_000_000_001,
    )


def _link(offset: int = 7, partition: int = 1) -> ReplayLink:
    return ReplayLink("quarantine.eu", partition, offset, "UNRESOLVED_JURISDICTION", "v1:def", 1_699_999_999_000,
                      "crm.ingress", 0, 4211)


def test_a_replay_record_is_format_3_round_trips_and_keeps_its_link() -> None:
    data, digest = encode_audit(0, ZERO_HASH, _fields(), 3, _link())
    assert data[0] == 0x06  # zig-zag 3
    rec = decode_audit(data)
    assert (rec.format_version, rec.seq, rec.hash, rec.audit_partitions) == (REPLAY_FORMAT_VERSION, 0, digest, 3)
    assert rec.fields == _fields() and rec.replay == _link()
    zeroed = data[:HASH_OFFSET] + bytes(HASH_SIZE) + data[HASH_OFFSET + HASH_SIZE:]
    assert digest == hashlib.sha256(ZERO_HASH + zeroed).digest()


def test_without_a_link_the_encoding_stays_format_2() -> None:
    data, _ = encode_audit(0, ZERO_HASH, _fields(), 3)
    rec = decode_audit(data)
    assert (data[0], rec.format_version, rec.replay) == (0x04, ROUTER_FORMAT, None)


def test_format_3_is_the_bytes_fastavro_writes_for_its_schema() -> None:
    rng = random.Random(5)
    for i in range(200):
        link = ReplayLink(rng.choice(["q", "quarantine.eu.x", "ü" * 40]), rng.randrange(0, 2**31),
                          rng.choice([0, 63, 64, 2**40, 2**63 - 1]), rng.choice(["GAP_EVENT", "", "x" * 300]),
                          rng.choice(["v1", "prod:" + "f" * 64]), rng.randrange(-(2**40), 2**40),
                          rng.choice(["crm.ingress", "i"]), rng.randrange(0, 1000), rng.randrange(0, 2**50))
        prev = ZERO_HASH if i == 0 else hashlib.sha256(bytes([i])).digest()
        seq = 0 if i == 0 else i
        fixed = encode_audit(seq, prev, _fields(), 1 + i, link)
        assert fixed == encode_audit_fastavro(seq, prev, _fields(), 1 + i, link)


def test_format_2_bytes_labelled_format_3_do_not_decode() -> None:
    data, _ = encode_audit(0, ZERO_HASH, _fields())
    with pytest.raises(AuditDecodeError):
        decode_audit(b"\x06" + data[1:])


def test_replay_chains_verify_beside_the_routers_chains_and_breaks_in_them_are_found() -> None:
    router, replay = AuditChain(audit_partitions=1), AuditChain(audit_partitions=1)
    trail = []
    for i in range(4):
        trail.append(router.append(("crm.ingress", 0), _fields("crm.ingress", 0, i)))
        trail.append(replay.append(("quarantine.eu", 1), _fields("quarantine.eu", 1, i), _link(i)))
    report = verify_chain((0, offset, v) for offset, v in enumerate(trail))
    assert report.ok
    assert {c.chain: (c.records, c.format_version) for c in report.sorted_chains()} == {
        ("crm.ingress", 0): (4, ROUTER_FORMAT), ("quarantine.eu", 1): (4, REPLAY_FORMAT_VERSION)}

    edited = bytearray(trail[3])
    edited[-1] ^= 1  # the link's last byte (ingress offset)
    broken = verify_chain((0, offset, bytes(edited) if offset == 3 else v) for offset, v in enumerate(trail))
    (b,) = broken.breaks
    assert (b.offset, b.kind.value, b.chain) == (3, "edited", ("quarantine.eu", 1))


def test_replay_chains_from_gives_each_chains_tail_links_and_whether_its_head_was_found() -> None:
    chain = AuditChain(audit_partitions=4)
    a, b = ("quarantine.eu", 0), ("quarantine.eu", 3)
    records = []
    for offset, (source, q_offset) in enumerate([(a, 5), (b, 9), (a, 6), (b, 11)]):
        data = chain.append(source, _fields(*source, q_offset), _link(q_offset, source[1]))
        records.append((offset, decode_audit(data), data))
    found = replay_chains_from(records, [a, b, ("quarantine.eu", 1)])
    assert found[a].linked == {5, 6} and found[b].linked == {9, 11}
    assert found[a].tail == chain.tail(a) and found[a].complete
    assert found[("quarantine.eu", 1)] == ReplayChain(None)
    without_head = replay_chains_from(records[2:], [a])
    assert without_head[a].linked == {6} and not without_head[a].complete


def test_a_replay_chain_tail_that_fails_its_own_hash_is_not_extended() -> None:
    chain = AuditChain(audit_partitions=4)
    source = ("quarantine.eu", 0)
    data = bytearray(chain.append(source, _fields(*source, 1), _link(1, 0)))
    data[-2] ^= 1
    with pytest.raises(AuditDecodeError, match="own hash"):
        replay_chains_from([(0, decode_audit(bytes(data)), bytes(data))], [source])


def test_replay_records_sit_where_their_quarantine_partition_chain_is_placed() -> None:
    chain = AuditChain(audit_partitions=6)
    data = chain.append(("quarantine.eu", 2), _fields("quarantine.eu", 2, 0), _link(0, 2))
    assert decode_audit(data).placed_in() == chain_partition("quarantine.eu", 2, 6)
