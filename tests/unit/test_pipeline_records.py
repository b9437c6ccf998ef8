"""One record never stops the processor, and nothing it writes carries a value in clear.

Regression tests for ../shared/reviews/reliability.md §3.2 (oversized records, over-long envelope
fields, exceptions escaping the processor) and §4.3 (ingress key copied verbatim, plain payload
hashes). The fakes are those of test_pipeline_processor.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
import yaml

from router.audit.record import decode_audit
from router.config.loader import parse_config
from router.errors import ReasonCode
from router.pipeline.engine import StallError
from router.quarantine.record import decode_quarantine
from router.routing import Evaluation
from router.routing.build import evaluator_for
from tests.unit.test_pipeline_processor import PLACED, FakeMessage, _processor, _route

pytestmark = pytest.mark.unit

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "router.yaml"
LIMIT = 200_000


def _core() -> Any:
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc.pop("access")  # its connector writes the example's ingress topic, replaced here
    doc["pipeline"]["ingress"] = [{"topic": "ingress", "jurisdiction": "eu", "decoder": "auto"}]
    doc["topics"].append({"name": "ingress", "jurisdiction": "eu", "partitions": 3, "replication_factor": 1})
    return evaluator_for(parse_config(doc), EXAMPLE.parent)


def _outputs(outs: list[Any]) -> tuple[list[Any], list[Any]]:
    return [o for o in outs if o.topic != "audit"], [o for o in outs if o.topic == "audit"]


def test_a_payload_too_large_to_seal_within_the_producer_limit_is_quarantined_without_it() -> None:
    proc, _, _ = _processor(_route(), max_output_bytes=LIMIT)
    big = b"x" * (LIMIT - 100)  # fits the ingress, not once sealed
    outs, audits = _outputs(proc.process([FakeMessage("ingress", 0, 1, big)]))  # type: ignore[list-item]
    (q,) = outs
    assert q.topic == "quarantine.eu"
    assert len(q.value) + len(q.key or b"") + sum(len(k) + len(v) for k, v in q.headers) <= LIMIT
    rec = decode_quarantine(q.value)
    assert rec.reason == ReasonCode.OVERSIZED.value and rec.sealed_payload == b""
    assert rec.source_offset == 1 and rec.payload_sha256.startswith("hmac-sha256:eu:")
    assert decode_audit(audits[0].value).fields.decision == "quarantine"


def test_an_oversized_quarantine_does_not_carry_the_payload_it_could_not_fit() -> None:
    def oversized(_t: str, value: bytes | None, _k: Any, _h: Any) -> Evaluation:
        return Evaluation(None, "eu", ReasonCode.OVERSIZED, "too big", keep_payload=False)

    proc, _, _ = _processor(oversized, max_output_bytes=LIMIT)
    outs, _ = _outputs(proc.process([FakeMessage("ingress", 0, 1, b"y" * (3 * LIMIT))]))  # type: ignore[list-item]
    (q,) = outs
    assert len(q.value) < LIMIT and decode_quarantine(q.value).sealed_payload == b""


def test_an_entity_name_longer_than_the_envelope_allows_is_quarantined_and_the_batch_goes_on() -> None:
    core = _core()
    proc, _, _ = _processor(core, placed={**PLACED, "crm.eu.account": "eu"})
    long_entity = (
        b'{"ChangeEventHeader": {"entityName": "' + b"X" * 300 + b'", "changeType": "UPDATE", "recordIds": ["001A"]},'
        b' "BillingCountry": "DE"}'
    )
    fine = (
        b'{"ChangeEventHeader": {"entityName": "Account", "changeType": "UPDATE", "recordIds": ["001B"]},'
        b' "BillingCountry": "DE"}'
    )
    msgs = [FakeMessage("ingress", 0, 1, long_entity), FakeMessage("ingress", 0, 2, fine)]
    outs, audits = _outputs(proc.process(msgs))  # type: ignore[arg-type]
    assert len(audits) == 2
    assert decode_quarantine(outs[0].value).reason == ReasonCode.FIELD_TOO_LONG.value
    assert outs[1].topic == "crm.eu.account"


def test_an_exception_on_one_record_quarantines_it_in_its_ingress_jurisdiction() -> None:
    def flaky(topic: str, value: bytes | None, key: Any, headers: Any) -> Evaluation:
        if value == b"boom":
            raise ZeroDivisionError
        return _route()(topic, value, key, headers)

    proc, _, _ = _processor(flaky, placed={**PLACED, "ingress": "us"}, origin_jurisdiction=lambda _t: "us")
    outs, audits = _outputs(
        proc.process([FakeMessage("ingress", 0, 1, b"boom"), FakeMessage("ingress", 0, 2, b"ok")])  # type: ignore[list-item]
    )
    assert [o.topic for o in outs] == ["quarantine.us", "crm.eu.contact"]
    assert decode_quarantine(outs[0].value).reason == ReasonCode.PROCESSING_ERROR.value
    assert len(audits) == 2


def test_output_keys_are_keyed_digests_never_the_ingress_key() -> None:
    proc, _, _ = _processor(_route())
    key = b'{"email": "anna@example.de"}'
    outs, _ = _outputs(
        proc.process([FakeMessage("ingress", 0, i, b"v", _key=key) for i in range(3)])  # type: ignore[list-item]
    )
    keys = {o.key for o in outs}
    assert len(keys) == 1  # one subject, one key: per-entity order and compaction hold
    (out_key,) = keys
    assert key not in out_key and b"anna" not in out_key
    assert out_key != hashlib.sha256(key).hexdigest().encode()


def test_payload_digests_in_audit_and_quarantine_are_keyed() -> None:
    proc, _, _ = _processor(_route(topic="crm.eu.widget"))  # not placed: quarantined
    outs, audits = _outputs(proc.process([FakeMessage("ingress", 0, 1, b"ada@example.org")]))  # type: ignore[list-item]
    plain = hashlib.sha256(b"ada@example.org").hexdigest()
    q = decode_quarantine(outs[0].value)
    a = decode_audit(audits[0].value)
    assert plain not in q.payload_sha256 and plain not in a.fields.payload_sha256
    assert q.payload_sha256 == a.fields.payload_sha256


def test_a_routed_delete_writes_a_tombstone_under_the_subjects_key() -> None:
    def evaluate(topic: str, value: bytes | None, key: Any, headers: Any) -> Evaluation:
        ev = _route()(topic, value, key, headers)
        return Evaluation(**{**{f: getattr(ev, f) for f in ev.__dataclass_fields__}, "erasure": value == b"del"})

    proc, _, _ = _processor(evaluate)
    outs, audits = _outputs(
        proc.process(
            [FakeMessage("ingress", 0, 1, b"upd", _key=b"k1"), FakeMessage("ingress", 0, 2, b"del", _key=b"k1")]  # type: ignore[list-item]
        )
    )
    update, tombstone = outs
    assert tombstone.topic == update.topic == "crm.eu.contact"
    assert tombstone.value is None and tombstone.key == update.key and tombstone.partition == update.partition
    assert decode_audit(audits[1].value).fields.decision == "route"


def test_a_bare_tombstone_is_audited_and_nothing_else_is_written() -> None:
    core = _core()
    proc, _, _ = _processor(core)
    outs, audits = _outputs(proc.process([FakeMessage("ingress", 0, 1, None, _key=b'{"id": 7}')]))  # type: ignore[list-item]
    assert outs == []
    fields = decode_audit(audits[0].value).fields
    assert fields.decision == "audit_only" and fields.reason == ReasonCode.TOMBSTONE_AUDITED.value


def test_a_misplaced_audit_topic_stalls_before_anything_is_written() -> None:
    proc, _, _ = _processor(_route(), placed={**PLACED, "audit": "us"})
    with pytest.raises(StallError, match="audit topic audit is not placed in eu"):
        proc.process([FakeMessage("ingress", 0, 1, b"x")])  # type: ignore[list-item]


def test_a_schema_registry_outage_stalls_instead_of_quarantining() -> None:
    from router.ingest import errors

    outage = getattr(errors, "SchemaRegistryUnavailable", None)
    assert outage is not None, "router.ingest.errors.SchemaRegistryUnavailable is the registry outage"

    def down(_t: str, _v: Any, _k: Any, _h: Any) -> Evaluation:
        raise outage("schema registry at http://registry unreachable")

    proc, _, _ = _processor(down)
    with pytest.raises(StallError, match="unreachable"):
        proc.process([FakeMessage("ingress", 0, 1, b"\x00\x00\x00\x00\x07")])  # type: ignore[list-item]


def test_an_ingress_topic_whose_replica_moved_abroad_stalls_the_batch() -> None:
    proc, _, _ = _processor(_route(), placed={**PLACED, "ingress": "us"})
    with pytest.raises(StallError, match=r"ingress topic ingress has a replica outside eu"):
        proc.process([FakeMessage("ingress", 0, 1, b"x")])  # type: ignore[list-item]
