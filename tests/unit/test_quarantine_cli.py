"""Operator views of quarantine records: value-free lines and JSON, filters, statistics, option
parsing, the Kafka reader over a fake consumer, and the CLI's errors (exit 2, naming the option)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import pytest
from confluent_kafka import KafkaError, TopicPartition

from router.cli.main import main
from router.quarantine.access import (
    ACCESS_KEY,
    AccessRecord,
    AccessRecordError,
    decode_access,
    encode_access,
    is_access_record,
)
from router.quarantine.reader import (
    Filter,
    QuarantineReadError,
    QuarantineStats,
    decode_entry,
    entry_json,
    entry_line,
    entry_show,
    format_ms,
    parse_position,
    parse_reason,
    parse_since,
    read_quarantine,
)
from router.quarantine.record import QuarantineRecord, encode_quarantine
from tests.unit.fake_kafka import FakeMessage, FakePartitionEof

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
T0 = 1_700_000_000_000  # 2023-11-14T22:13:20Z
SECRET = b"Grace Hopper grace@example.org +1 555 0100"
"""Planted in every sealed payload: must never appear in any metadata output."""


def _record(reason: str, *, at: int, entity: str | None = "Contact", operation: str | None = "update",
            policy: str = "v1", source_offset: int = 0, fields: tuple[str, ...] = ("Email", "LastName"),
            categories: tuple[str, ...] = ("pii.email", "pii.name"), payload: bool = True) -> QuarantineRecord:
    headers: list[tuple[str, bytes]] = []
    if entity is not None:
        headers.append(("rr-entity", entity.encode()))
    if operation is not None:
        headers.append(("rr-operation", operation.encode()))
    return QuarantineRecord(
        reason=reason,
        detail="no rule resolved a jurisdiction (fields checked: 2)",
        classification_level="restricted",
        categories=categories,
        field_names=fields,
        jurisdictions=(),
        source_topic="crm.ingress",
        source_partition=1,
        source_offset=source_offset,
        source_timestamp_ms=T0 - 5,
        event_id="eid:" + "ab" * 16,
        payload_sha256="hmac-sha256:eu:" + "cd" * 32,
        router_version="0.1.0",
        policy_version=policy,
        trace_id=None,
        quarantined_at_ms=at,
        sealed_payload=SECRET if payload else b"",  # stands in for an envelope: opaque bytes to every view
        envelope_headers=tuple(headers),
    )


def _entry(rec: QuarantineRecord, partition: int = 0, offset: int = 7) -> Any:
    return decode_entry("quarantine.eu", partition, offset, encode_quarantine(rec))


# -- formatting ----------------------------------------------------------------------------------------


def test_a_line_holds_the_metadata_in_order() -> None:
    e = _entry(_record("UNRESOLVED_JURISDICTION", at=T0 + 123, source_offset=42))
    assert entry_line(e) == (
        "2023-11-14T22:13:20.123Z  0:7  crm.ingress[1]@42  Contact update  UNRESOLVED_JURISDICTION  "
        "fields=Email,LastName  categories=pii.email,pii.name  policy=v1  "
        "no rule resolved a jurisdiction (fields checked: 2)"
    )


def test_a_record_without_envelope_headers_or_names_prints_dashes() -> None:
    e = _entry(_record("OVERSIZED", at=T0, entity=None, operation=None, fields=(), categories=(), payload=False))
    line = entry_line(e)
    assert "  - -  OVERSIZED  fields=-  categories=-  " in line
    assert entry_json(e)["has_payload"] is False
    assert "payload: none (stays in the ingress topic)" in entry_show(e)


def test_json_carries_every_metadata_field_and_no_payload() -> None:
    e = _entry(_record("POLICY_DENIED", at=T0 + 1, policy="2026-11", source_offset=9), partition=1, offset=3)
    d = entry_json(e)
    assert d["position"] == "1:3" and (d["partition"], d["offset"]) == (1, 3)
    assert d["source"] == {"topic": "crm.ingress", "partition": 1, "offset": 9, "timestamp_ms": T0 - 5}
    assert (d["entity"], d["operation"], d["reason"]) == ("Contact", "update", "POLICY_DENIED")
    assert d["field_names"] == ["Email", "LastName"] and d["categories"] == ["pii.email", "pii.name"]
    assert d["policy_version"] == "2026-11" and d["quarantined_at"] == "2023-11-14T22:13:20.001Z"
    assert d["has_payload"] is True


def test_no_view_prints_the_sealed_payload() -> None:
    e = _entry(_record("PROCESSING_ERROR", at=T0))
    outputs = [entry_line(e), json.dumps(entry_json(e)), "\n".join(entry_show(e))]
    stats = QuarantineStats()
    stats.add(e)
    outputs += ["\n".join(stats.lines("quarantine.eu")), json.dumps(stats.to_json())]
    for text in outputs:
        for needle in ("Grace", "grace@example.org", "555 0100", SECRET.hex()[:16]):
            assert needle not in text


def test_undecodable_bytes_become_a_visible_entry() -> None:
    e = decode_entry("quarantine.eu", 1, 5, b"\x02garbage")
    assert e.record is None and e.error
    assert entry_line(e).startswith("-  1:5  UNDECODABLE  ")
    assert entry_json(e)["error"] == e.error


def test_format_ms() -> None:
    assert format_ms(T0) == "2023-11-14T22:13:20.000Z"
    assert format_ms(0) == "1970-01-01T00:00:00.000Z"
    assert format_ms(None) == "-"


# -- filters -------------------------------------------------------------------------------------------


def test_filter_by_reason_and_time() -> None:
    a = _entry(_record("UNRESOLVED_JURISDICTION", at=T0), offset=0)
    b = _entry(_record("DECODE_ERROR", at=T0 + 1000), offset=1)
    c = _entry(_record("UNRESOLVED_JURISDICTION", at=T0 + 2000), offset=2)
    bad = decode_entry("quarantine.eu", 0, 3, b"")
    entries = [a, b, c, bad]
    assert [e.offset for e in entries if Filter()(e)] == [0, 1, 2, 3]
    assert [e.offset for e in entries if Filter(reason="UNRESOLVED_JURISDICTION")(e)] == [0, 2, 3]
    assert [e.offset for e in entries if Filter(since_ms=T0 + 1000)(e)] == [1, 2, 3]
    assert [e.offset for e in entries if Filter("UNRESOLVED_JURISDICTION", T0 + 1)(e)] == [2, 3]


def test_parse_reason() -> None:
    assert parse_reason("unresolved_jurisdiction") == "UNRESOLVED_JURISDICTION"
    with pytest.raises(QuarantineReadError, match="--reason"):
        parse_reason("NOT_A_CODE")


def test_parse_since_forms() -> None:
    now = T0 + 10 * 86_400_000
    assert parse_since("2023-11-14T22:13:20Z", now_ms=now) == T0
    assert parse_since("2023-11-14T22:13:20.5+00:00", now_ms=now) == T0 + 500
    assert parse_since("2023-11-14T23:13:20+01:00", now_ms=now) == T0
    assert parse_since("2023-11-14T22:13:20", now_ms=now) == T0  # no zone: UTC
    assert parse_since("2023-11-15", now_ms=now) == T0 + 6_400_000  # midnight UTC: 22:13:20 + 1:46:40
    assert parse_since("15m", now_ms=now) == now - 900_000
    assert parse_since("2h", now_ms=now) == now - 7_200_000
    assert parse_since("7d", now_ms=now) == now - 604_800_000
    assert parse_since("90s", now_ms=now) == now - 90_000
    assert parse_since(str(T0), now_ms=now) == T0
    for bad in ("yesterday", "15 minutes", "-5m", "2023-13-40"):
        with pytest.raises(QuarantineReadError, match="--since"):
            parse_since(bad, now_ms=now)


def test_parse_position() -> None:
    assert parse_position("0:42") == (0, 42)
    assert parse_position(" 3:0 ") == (3, 0)
    for bad in ("42", "a:b", "1:-2", "-1:2", "1:2:3", "", "1:"):
        with pytest.raises(QuarantineReadError, match="--offset") as err:
            parse_position(bad)
        assert "PARTITION:OFFSET" in str(err.value)


# -- statistics ----------------------------------------------------------------------------------------


def test_stats_count_by_reason_entity_and_policy_version() -> None:
    specs = [  # (reason, entity, policy, at)
        ("UNRESOLVED_JURISDICTION", "Contact", "v1", T0 + 5000),
        ("UNRESOLVED_JURISDICTION", "Lead", "v1", T0 + 1000),
        ("DECODE_ERROR", None, "v1", T0 + 9000),
        ("UNRESOLVED_JURISDICTION", "Contact", "v2", T0 + 3000),
        ("POLICY_DENIED", "Account", "v2", T0 + 7000),
    ]
    stats = QuarantineStats()
    for i, (reason, entity, policy, at) in enumerate(specs):
        stats.add(_entry(_record(reason, at=at, entity=entity, policy=policy), offset=i))
    stats.add(decode_entry("quarantine.eu", 1, 99, b"\x00"))
    d = stats.to_json()
    assert d["records"] == 6 and d["undecodable"] == 1
    assert d["by_reason"] == {"UNRESOLVED_JURISDICTION": 3, "DECODE_ERROR": 1, "POLICY_DENIED": 1}
    assert list(d["by_reason"]) == ["UNRESOLVED_JURISDICTION", "DECODE_ERROR", "POLICY_DENIED"]  # most first
    assert d["by_entity"] == {"Contact": 2, "-": 1, "Account": 1, "Lead": 1}
    assert d["by_policy_version"] == {"v1": 3, "v2": 2}
    assert d["oldest"]["position"] == "0:1" and d["oldest"]["quarantined_at_ms"] == T0 + 1000
    assert d["newest"]["position"] == "0:2" and d["newest"]["reason"] == "DECODE_ERROR"
    text = "\n".join(stats.lines("quarantine.eu"))
    assert "quarantine topic quarantine.eu: 6 records (1 undecodable)" in text
    assert "         3  UNRESOLVED_JURISDICTION" in text
    assert "oldest: 2023-11-14T22:13:21.000Z at 0:1 (UNRESOLVED_JURISDICTION)" in text


def test_stats_of_an_empty_topic() -> None:
    d = QuarantineStats().to_json()
    assert d["records"] == 0 and d["oldest"] is None and d["by_reason"] == {}
    assert "oldest: -" in QuarantineStats().lines("q")


# -- the Kafka reader over a fake consumer ---------------------------------------------------------


class _Topic:
    def __init__(self, partitions: int) -> None:
        self.partitions = {p: object() for p in range(partitions)}
        self.error = None


class FakeQuarantineTopic:
    """A read_committed view of one topic: per partition, (offset, value, timestamp); offsets may
    have gaps (transaction markers)."""

    def __init__(self, topic: str, partitions: int) -> None:
        self.topic = topic
        self.logs: dict[int, list[tuple[int, bytes, int]]] = {p: [] for p in range(partitions)}
        self.configs: list[dict[str, Any]] = []
        self.on_idle: list[Any] = []
        """Callables run (once each, in order) when a consume call finds nothing new; what they add
        is returned by that same call (it arrived while the poll waited)."""

    def add(self, partition: int, value: bytes, ts: int, gap: int = 0) -> int:
        log = self.logs[partition]
        offset = (log[-1][0] + 1 if log else 0) + gap
        log.append((offset, value, ts))
        return offset

    def factory(self, config: dict[str, Any]) -> Any:
        self.configs.append(config)
        return _FakeReader(self)


class _FakeReader:
    def __init__(self, t: FakeQuarantineTopic) -> None:
        self.t = t
        self.pos: dict[int, int] = {}
        self.eof_sent: set[int] = set()

    def list_topics(self, topic: str, timeout: float) -> Any:
        class Md:
            topics = {self.t.topic: _Topic(len(self.t.logs))} if topic == self.t.topic else {}

        return Md()

    def get_watermark_offsets(self, tp: TopicPartition, timeout: float, cached: bool) -> tuple[int, int]:
        log = self.t.logs[tp.partition]
        return (log[0][0], log[-1][0] + 2) if log else (0, 0)  # +2: a commit marker after the last record

    def offsets_for_times(self, tps: list[TopicPartition], timeout: float) -> list[TopicPartition]:
        out = []
        for tp in tps:
            hit = next((o for o, _v, ts in self.t.logs[tp.partition] if ts >= tp.offset), -1)
            out.append(TopicPartition(tp.topic, tp.partition, hit))
        return out

    def assign(self, tps: list[TopicPartition]) -> None:
        self.pos = {tp.partition: tp.offset for tp in tps}

    def consume(self, num_messages: int, timeout: float) -> list[Any]:
        out = self._collect()
        if not [m for m in out if not isinstance(m, FakePartitionEof)] and self.t.on_idle:
            self.t.on_idle.pop(0)()  # a record arrives while this poll waits
            out += self._collect()
        return out

    def _collect(self) -> list[Any]:
        out: list[Any] = []
        for p, start in sorted(self.pos.items()):
            for o, v, _ts in self.t.logs[p]:
                if o >= start:
                    out.append(FakeMessage(self.t.topic, p, o, v))
            if out and out[-1].partition() == p:
                self.pos[p] = out[-1].offset() + 1
                self.eof_sent.discard(p)
            elif p not in self.eof_sent:
                out.append(FakePartitionEof(p))
                self.eof_sent.add(p)
        return out

    def close(self) -> None:
        pass


@pytest.fixture
def qtopic(monkeypatch: pytest.MonkeyPatch) -> FakeQuarantineTopic:
    t = FakeQuarantineTopic("quarantine.eu", 2)
    monkeypatch.setattr("confluent_kafka.Consumer", t.factory)
    return t


def test_read_quarantine_reads_every_partition_to_its_end_read_committed(qtopic: FakeQuarantineTopic) -> None:
    put = {}
    for i in range(5):
        p = i % 2
        put[(p, qtopic.add(p, encode_quarantine(_record("DECODE_ERROR", at=T0 + i, source_offset=i)), T0 + i,
                           gap=1))] = i
    got = list(read_quarantine({"bootstrap.servers": "x"}, "quarantine.eu", timeout=5))
    assert {(e.partition, e.offset): e.record.source_offset for e in got} == put
    assert qtopic.configs[0]["isolation.level"] == "read_committed"


def test_read_quarantine_since_seeks_by_time(qtopic: FakeQuarantineTopic) -> None:
    minute = 60_000
    for i in range(6):
        qtopic.add(0, encode_quarantine(_record("DECODE_ERROR", at=T0 + i * 10 * minute, source_offset=i)),
                   T0 + i * 10 * minute)
    since = T0 + 30 * minute  # records 3, 4, 5; the reader seeks 5 minutes earlier, then filters
    got = list(read_quarantine({}, "quarantine.eu", since_ms=since, timeout=5))
    assert [e.record.source_offset for e in got] == [3, 4, 5]
    assert [e.record.source_offset for e in got if Filter(since_ms=since)(e)] == [3, 4, 5]
    later = list(read_quarantine({}, "quarantine.eu", since_ms=T0 + 500 * minute, timeout=5))
    assert later == []


def test_read_quarantine_follows_new_records_from_the_end(qtopic: FakeQuarantineTopic) -> None:
    qtopic.add(0, encode_quarantine(_record("DECODE_ERROR", at=T0, source_offset=100)), T0)
    late = [encode_quarantine(_record("GAP_EVENT", at=T0 + i, source_offset=200 + i)) for i in range(3)]
    # Each arrives in a transaction of its own: after the commit marker of the one before.
    qtopic.on_idle = [lambda: qtopic.add(1, late[0], T0), lambda: qtopic.add(0, late[1], T0, gap=1),
                      lambda: qtopic.add(0, late[2], T0, gap=1)]
    starts: list[dict[int, int]] = []
    got = list(read_quarantine({}, "quarantine.eu", follow=True, from_end=True, max_idle_s=0, on_ready=starts.append))
    assert starts == [{0: 2, 1: 0}], "from the end: past the record already there (and its commit marker)"
    assert [e.record.source_offset for e in got] == [200, 201, 202]


def test_a_missing_topic_is_a_clear_error(qtopic: FakeQuarantineTopic) -> None:
    with pytest.raises(QuarantineReadError, match=r"quarantine topic 'quarantine\.xx' cannot be read: it does not "):
        list(read_quarantine({}, "quarantine.xx", timeout=5))


# -- access records --------------------------------------------------------------------------------


def _access(**kw: Any) -> AccessRecord:
    return AccessRecord(**{
        "action": "decrypt", "accessed_at_ms": T0, "os_user": "ops", "actor": "TICKET-7", "host": "h1",
        "jurisdiction": "eu", "quarantine_topic": "quarantine.eu", "quarantine_partition": 1, "quarantine_offset": 5,
        "source_topic": "crm.ingress", "source_partition": 0, "source_offset": 17,
        "reason": "UNRESOLVED_JURISDICTION", "event_id": None, "payload_digest": "hmac-sha256:eu:" + "00" * 32,
        "router_version": "0.1.0", **kw,
    })


def test_access_records_round_trip_and_are_told_apart_from_other_bytes() -> None:
    rec = _access()
    data = encode_access(rec)
    assert is_access_record(data) and decode_access(data) == rec
    assert b"TICKET-7" in data and ACCESS_KEY == b"quarantine-access"
    for other in (b"", None, b"\x02" + bytes(40), b"\x04" + bytes(40), encode_quarantine(_record("X", at=0))):
        assert not is_access_record(other)
    with pytest.raises(AccessRecordError):
        decode_access(b"RRQA{not json")
    with pytest.raises(AccessRecordError, match="format"):
        decode_access(data.replace(b'"format_version":1', b'"format_version":9'))


def test_audit_records_never_start_like_an_access_record() -> None:
    from router.audit import record as audit_record

    version = audit_record.FORMAT_VERSION
    for v in range(1, version + 1):
        assert not is_access_record(audit_record.avro_long(v) + bytes(64))


# -- the command line's errors (no broker reached) --------------------------------------------------


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_an_unknown_jurisdiction_exits_2_naming_the_option(capsys: pytest.CaptureFixture[str]) -> None:
    cfg = str(REPO / "examples" / "router.yaml")
    for verb in (["list"], ["tail"], ["stats"], ["show", "--offset", "0:1"]):
        code, out, err = _run(capsys, "quarantine", *verb, "--config", cfg, "--jurisdiction", "xx")
        assert code == 2 and out == ""
        assert "--jurisdiction: 'xx' is not under 'jurisdictions'" in err and "known: ch, eu, uk, us" in err


def test_a_malformed_offset_exits_2_naming_the_option(capsys: pytest.CaptureFixture[str]) -> None:
    cfg = str(REPO / "examples" / "router.yaml")
    code, out, err = _run(capsys, "quarantine", "show", "--config", cfg, "--jurisdiction", "eu", "--offset", "12")
    assert code == 2 and out == ""
    assert "--offset: '12' is not PARTITION:OFFSET" in err


def test_bad_filters_exit_2_naming_the_option(capsys: pytest.CaptureFixture[str]) -> None:
    cfg = str(REPO / "examples" / "router.yaml")
    code, _out, err = _run(capsys, "quarantine", "list", "--config", cfg, "--jurisdiction", "eu", "--reason", "NOPE")
    assert code == 2 and "--reason: 'NOPE'" in err
    code, _out, err = _run(capsys, "quarantine", "list", "--config", cfg, "--jurisdiction", "eu", "--since", "soon")
    assert code == 2 and "--since: 'soon'" in err


def test_decrypt_without_a_keys_section_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    import yaml

    doc = yaml.safe_load((REPO / "examples" / "router.yaml").read_text())
    doc.pop("keys", None)
    cfg = tmp_path / "nokeys.yaml"
    cfg.write_text(yaml.safe_dump(doc))
    code, out, err = _run(capsys, "quarantine", "show", "--config", str(cfg), "--jurisdiction", "eu",
                          "--offset", "0:0", "--decrypt")
    assert code == 2 and out == ""
    assert "--decrypt needs the 'keys' section" in err


# -- show --decrypt over fakes: the key, the access record, and nothing printed on refusal -------------


class _FakeProducer:
    """Records what is produced; delivers (or fails) on flush."""

    produced: ClassVar[list[tuple[str, bytes, bytes | None, list[tuple[str, bytes]]]]] = []
    fail_with: ClassVar[KafkaError | None] = None

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.pending: list[Any] = []

    def produce(self, topic: str, value: bytes, key: bytes | None = None, headers: Any = None,
                on_delivery: Any = None) -> None:
        self.pending.append((topic, value, key, list(headers or []), on_delivery))

    def flush(self, timeout: float | None = None) -> int:
        for i, (topic, value, key, headers, cb) in enumerate(self.pending):
            if self.fail_with is None:
                type(self).produced.append((topic, value, key, headers))
            cb(self.fail_with, FakeMessage(topic, 3, 100 + i, value))
        self.pending = []
        return 0


@pytest.fixture
def sealed_deployment(tmp_path: Path, qtopic: FakeQuarantineTopic, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A config with a dev keyring, and in the (fake) quarantine topic one record sealed as the
    router seals it: for the quarantine topic, its partition and the eu key."""
    import yaml

    from router.envelope import SealContext, Sealer
    from router.keys.dek import CachingDekManager, JurisdictionKeys
    from router.keys.local import LocalKeyProvider, LocalKeyring, LocalSigner

    ring = LocalKeyring.create(tmp_path / "keyring.json", ["eu", "us"])
    doc = yaml.safe_load((REPO / "examples" / "router.yaml").read_text())
    doc["policy"]["quarantine_topic"] = "quarantine.{jurisdiction}"
    doc["keys"] = {"providers": {"dev": {"type": "local", "keyring": str(tmp_path / "keyring.json")}},
                   "jurisdictions": {j: {"provider": "dev"} for j in doc["jurisdictions"]},
                   "signer": {"keyring": str(tmp_path / "keyring.json")}}
    cfg = tmp_path / "router.yaml"
    cfg.write_text(yaml.safe_dump(doc))
    keys = JurisdictionKeys({"eu": (LocalKeyProvider(ring), "eu")})
    sealer = Sealer(CachingDekManager(keys), LocalSigner(ring))
    original = b'{"LastName": "Zyxwvut", "Email": "z@example.org"}'
    ctx = SealContext("ingress:0:17", "crm.ingress", 0, 17, "quarantine.eu", 1, "eu", "confidential", ("PII",),
                      "Contact", "update", None)
    sealed = sealer.seal(original, ctx)
    rec = _record("UNRESOLVED_JURISDICTION", at=T0, source_offset=17)
    from dataclasses import replace

    rec = replace(rec, sealed_payload=sealed.value, envelope_headers=tuple(sealed.headers))
    offset = qtopic.add(1, encode_quarantine(rec), T0)
    _FakeProducer.produced = []
    _FakeProducer.fail_with = None
    monkeypatch.setattr("confluent_kafka.Producer", _FakeProducer)
    return {"config": cfg, "doc": doc, "position": f"1:{offset}", "original": original}


def test_decrypt_prints_the_original_after_the_access_record_is_acknowledged(
    sealed_deployment: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    import getpass

    d = sealed_deployment
    code, out, err = _run(capsys, "quarantine", "show", "--config", str(d["config"]), "--jurisdiction", "eu",
                          "--offset", d["position"], "--decrypt", "--actor", "TICKET-9", "--json")
    assert code == 0, err
    shown = json.loads(out)
    assert shown["payload"] == json.loads(d["original"])
    assert shown["access_record"] == {"topic": d["doc"]["audit"]["topic"], "partition": 3, "offset": 100}
    ((topic, value, key, headers),) = _FakeProducer.produced
    access = decode_access(value)
    assert topic == d["doc"]["audit"]["topic"] and key == ACCESS_KEY
    assert ("rr-record-kind", b"quarantine-access") in headers
    assert (access.actor, access.os_user, access.action) == ("TICKET-9", getpass.getuser(), "decrypt")
    assert (access.quarantine_topic, access.quarantine_partition) == ("quarantine.eu", 1)
    assert (access.source_topic, access.source_offset, access.reason) == ("crm.ingress", 17, "UNRESOLVED_JURISDICTION")
    assert b"Zyxwvut" not in value


def test_metadata_only_show_writes_no_access_record(
    sealed_deployment: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    d = sealed_deployment
    code, out, _err = _run(capsys, "quarantine", "show", "--config", str(d["config"]), "--jurisdiction", "eu",
                           "--offset", d["position"])
    assert code == 0 and "reason: UNRESOLVED_JURISDICTION" in out and "Zyxwvut" not in out
    assert _FakeProducer.produced == []


def test_a_key_that_cannot_open_the_record_prints_nothing_and_records_nothing(
    sealed_deployment: dict[str, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import yaml

    d = sealed_deployment
    doc = d["doc"]
    doc["keys"]["jurisdictions"]["eu"]["key"] = "us"  # the config hands eu the us key
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(yaml.safe_dump(doc))
    code, out, err = _run(capsys, "quarantine", "show", "--config", str(wrong), "--jurisdiction", "eu",
                          "--offset", d["position"], "--decrypt")
    assert code == 2 and out == ""
    assert "--decrypt: the 'eu' key (keys.jurisdictions.eu) cannot open the record" in err
    assert "WrongJurisdiction" in err and "nothing was disclosed" in err and "Zyxwvut" not in err
    assert _FakeProducer.produced == []


def test_an_access_record_the_audit_topic_refuses_means_nothing_is_printed(
    sealed_deployment: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    d = sealed_deployment
    _FakeProducer.fail_with = KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED)
    code, out, err = _run(capsys, "quarantine", "show", "--config", str(d["config"]), "--jurisdiction", "eu",
                          "--offset", d["position"], "--decrypt")
    assert code == 2 and out == ""
    assert "refused the access record" in err and "nothing was disclosed" in err


def test_the_runbook_covers_every_reason_code() -> None:
    """docs/operations.md has a section per quarantine reason code, and names the others as never
    quarantined: a new code without a runbook entry fails here."""
    import re

    from router.errors import ReasonCode

    text = (REPO / "docs" / "operations.md").read_text(encoding="utf-8")
    sections = set()
    for heading in re.findall(r"^### (.+)$", text, flags=re.MULTILINE):
        sections |= {c.strip() for c in heading.split(",")}
    never = text[text.index("### Codes that are never quarantined"):]
    for code in ReasonCode:
        assert code.value in sections or f"`{code.value}`" in never, f"docs/operations.md has no entry for {code}"
