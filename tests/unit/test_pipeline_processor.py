"""The router processor: one sealed output and one chained audit record per input, placement
checked before anything is written, stalls instead of unsafe writes. No broker: Kafka messages are
stand-ins with the same accessors."""

from __future__ import annotations

import os
import zlib
from typing import Any

import pytest

from router.audit.chain import AuditChain, verify_chain
from router.audit.record import chain_partition, decode_audit
from router.envelope import Opener, Sealer
from router.errors import ReasonCode
from router.keys.dek import CachingDekManager, DekPolicy, JurisdictionKeys
from router.keys.digest import DigestKeys
from router.keys.errors import KeyUnavailable
from router.keys.local import LocalKeyProvider, LocalKeyring, LocalPublicKeys, LocalSigner
from router.pipeline.engine import StallError
from router.pipeline.processor import RouterProcessor, RouterSettings
from router.quarantine.record import decode_quarantine
from router.routing import Evaluation
from tests.unit.fake_kafka import FakeMessage

pytestmark = pytest.mark.unit




class FakePlacement:
    def __init__(self, placed: dict[str, str], partitions: int = 3) -> None:
        self.placed = placed
        self.n = partitions

    def permitted(self, topic: str, jurisdiction: str) -> bool:
        return self.placed.get(topic) == jurisdiction

    def partitions(self, topic: str) -> int:
        return self.n

    def verdict(self) -> str:
        return "ok@1"

    def configured(self, topic: str) -> bool:
        return topic in self.placed


def _keys() -> tuple[Sealer, Opener, Opener]:
    ring = LocalKeyring.from_keys(
        {"eu": {1: os.urandom(32)}, "us": {1: os.urandom(32)}}, {"router-signing": {1: os.urandom(32)}}
    )
    provider = LocalKeyProvider(ring)
    jk = JurisdictionKeys({"eu": (provider, "eu"), "us": (provider, "us")})
    sealer = Sealer(CachingDekManager(jk, DekPolicy(1000, 60)), LocalSigner(ring, "router-signing"))
    eu_only = JurisdictionKeys({"eu": (provider, "eu")})
    us_only = JurisdictionKeys({"us": (provider, "us")})
    public = LocalPublicKeys(ring)
    DIGESTS[0] = DigestKeys(jk)
    return sealer, Opener(eu_only, public), Opener(us_only, public)


DIGESTS: list[DigestKeys] = [None]  # type: ignore[list-item]  # set by _keys()


def _route(topic: str = "crm.eu.contact", j: str = "eu") -> Any:
    def evaluate(_t: str, value: bytes | None, _k: bytes | None, _h: Any) -> Evaluation:
        return Evaluation(
            route_topic=topic,
            jurisdiction=j,
            reason=ReasonCode.ROUTED,
            event_id=f"e-{zlib.crc32(value or b'')}",
            entity="Contact",
            operation="update",
            level="confidential",
            categories=("PII",),
            field_names=("Email",),
            jurisdictions=(j,),
            policy_version="p1",
        )

    return evaluate


PLACED = {"crm.eu.contact": "eu", "quarantine.eu": "eu", "quarantine.us": "us", "audit": "eu", "ingress": "eu"}


def settings(**overrides: Any) -> RouterSettings:
    base: dict[str, Any] = {
        "quarantine_topic": lambda j: f"quarantine.{j}",
        "audit_topic": "audit",
        "instance_id": "t",
        "origin_jurisdiction": lambda _topic: "eu",
        "audit_jurisdiction": "eu",
    }
    return RouterSettings(**{**base, **overrides})


def _processor(
    evaluate: Any, placed: dict[str, str] = PLACED, sealer: Any = None, **overrides: Any
) -> tuple[RouterProcessor, Opener, Opener]:
    s, eu, us = _keys()
    proc = RouterProcessor(
        evaluate, FakePlacement(placed), sealer or s, AuditChain(), settings(**overrides), DIGESTS[0]
    )
    return proc, eu, us


def test_routed_event_is_sealed_for_its_topic_and_audited() -> None:
    proc, eu, us = _processor(_route())
    msgs = [FakeMessage("ingress", 1, i, f"payload-{i}".encode()) for i in range(5)]
    outs = proc.process(msgs)  # type: ignore[arg-type]
    routed = [o for o in outs if o.topic == "crm.eu.contact"]
    audits = [o for o in outs if o.topic == "audit"]
    assert len(routed) == 5 and len(audits) == 5
    for i, o in enumerate(routed):
        assert o.value is not None and b"payload" not in o.value
        opened = eu.open(o.value, o.headers, topic=o.topic, partition=o.partition, expected_jurisdiction="eu")
        assert opened.plaintext == f"payload-{i}".encode()
        with pytest.raises(Exception):  # noqa: B017 - any typed rejection; never plaintext
            us.open(o.value, o.headers, topic=o.topic, partition=o.partition, expected_jurisdiction="us")
    assert all(a.partition == chain_partition("ingress", 1, 3) for a in audits)  # FakePlacement: 3 partitions
    report = verify_chain((a.partition, i, a.value) for i, a in enumerate(audits))  # type: ignore[misc]
    assert report.ok
    assert decode_audit(audits[0].value).fields.decision == "route"  # type: ignore[arg-type]


def test_misplaced_destination_is_quarantined_with_placement_violation() -> None:
    placed = {**PLACED, "crm.eu.contact": "us"}  # a replica moved abroad
    proc, eu, _ = _processor(_route(), placed)
    outs = proc.process([FakeMessage("ingress", 0, 7, b"secret-data")])  # type: ignore[list-item]
    (q,) = [o for o in outs if o.topic == "quarantine.eu"]
    assert not any(o.topic == "crm.eu.contact" for o in outs)
    rec = decode_quarantine(q.value)  # type: ignore[arg-type]
    assert rec.reason == ReasonCode.PLACEMENT_VIOLATION.value
    assert b"secret-data" not in q.value  # type: ignore[operator]
    opened = eu.open(
        rec.sealed_payload,
        list(rec.envelope_headers),
        topic="quarantine.eu",
        partition=q.partition,
        expected_jurisdiction="eu",
    )
    assert opened.plaintext == b"secret-data"


def test_a_destination_placement_does_not_know_is_never_written() -> None:
    proc, _, _ = _processor(_route(topic="crm.eu.widget"))
    outs = proc.process([FakeMessage("ingress", 0, 1, b"x")])  # type: ignore[list-item]
    assert not any(o.topic == "crm.eu.widget" for o in outs)
    (q,) = [o for o in outs if o.topic == "quarantine.eu"]
    assert decode_quarantine(q.value).reason == ReasonCode.PLACEMENT_VIOLATION.value  # type: ignore[arg-type]


def test_misplaced_quarantine_topic_stalls_instead_of_writing() -> None:
    placed = {**PLACED, "crm.eu.contact": "us", "quarantine.eu": "us"}
    proc, _, _ = _processor(_route(), placed)
    with pytest.raises(StallError, match=r"quarantine topic quarantine\.eu is not placed in eu"):
        proc.process([FakeMessage("ingress", 0, 1, b"x")])  # type: ignore[list-item]


def test_unavailable_key_stalls_and_emits_nothing() -> None:
    class DownSealer:
        def seal_batch(self, items: Any) -> Any:
            raise KeyUnavailable("eu key provider is down", retriable=True)

    proc, _, _ = _processor(_route(), sealer=DownSealer())
    with pytest.raises(StallError, match="key unavailable"):
        proc.process([FakeMessage("ingress", 0, 1, b"x")])  # type: ignore[list-item]


def test_rollback_rewinds_the_audit_chain_for_reprocessing() -> None:
    proc, _, _ = _processor(_route())
    first = proc.process([FakeMessage("ingress", 0, 0, b"a")])  # type: ignore[list-item]
    state = proc.checkpoint()
    aborted = proc.process([FakeMessage("ingress", 0, 1, b"b")])  # type: ignore[list-item]
    proc.rollback(state)
    again = proc.process([FakeMessage("ingress", 0, 1, b"b")])  # type: ignore[list-item]

    def audit(outs: list[Any]) -> list[bytes]:
        return [o.value for o in outs if o.topic == "audit"]

    assert decode_audit(audit(aborted)[0]).seq == decode_audit(audit(again)[0]).seq == 1
    assert verify_chain([(0, 0, audit(first)[0]), (0, 1, audit(again)[0])]).ok


def test_batch_trace_context_travels_in_headers_and_audit() -> None:
    from router import telemetry

    telemetry.configure()
    proc, _, _ = _processor(_route())
    outs = proc.process([FakeMessage("ingress", 0, 1, b"x")])  # type: ignore[list-item]
    routed = next(o for o in outs if o.topic == "crm.eu.contact")
    traceparent = dict(routed.headers or [])["traceparent"].decode()
    assert traceparent.startswith("00-") and len(traceparent.split("-")[1]) == 32
    audit = next(o for o in outs if o.topic == "audit")
    assert decode_audit(audit.value).fields.trace_id == traceparent  # type: ignore[arg-type]


def test_assignment_resumes_every_audit_chain_from_its_committed_tail() -> None:
    from confluent_kafka import TopicPartition

    tails = {(t, p): (10 * p + 4, bytes([p]) * 32) for t in ("a", "ingress") for p in range(6)}
    reads: list[tuple[int, list[tuple[str, int]]]] = []

    def read(audit_partition: int, sources: Any) -> dict[tuple[str, int], tuple[int, bytes]]:
        reads.append((audit_partition, list(sources)))
        return {s: tails[s] for s in sources}

    s, _, _ = _keys()
    proc = RouterProcessor(_route(), FakePlacement(PLACED), s, AuditChain(), settings(), DIGESTS[0], chain_tails=read)
    # Two ingress topics share partition numbers; each chain is its source's, and each audit
    # partition is read once, for the chains placed in it.
    assigned = [(t, p) for t in ("a", "ingress") for p in range(6)]
    proc.on_assign([TopicPartition(t, p) for t, p in assigned])
    assert sorted(p for p, _ in reads) == sorted({chain_partition(t, p, 3) for t, p in assigned})
    assert sorted(src for _, sources in reads for src in sources) == sorted(assigned)
    assert all(chain_partition(t, p, 3) == audit_p for audit_p, sources in reads for t, p in sources)
    outs = proc.process([FakeMessage("ingress", 3, 1, b"x")])  # type: ignore[list-item]
    audit = next(o for o in outs if o.topic == "audit")
    assert decode_audit(audit.value).seq == 35 and decode_audit(audit.value).prev_hash == bytes([3]) * 32  # type: ignore[arg-type]
