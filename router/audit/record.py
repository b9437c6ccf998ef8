"""The audit record: one per ingress event, hash-chained per source (ingress topic, partition).

Pure: no Kafka import. :class:`router.audit.chain.AuditChain` assigns the chain fields and encodes;
this module defines the record, its encoding, the hash and where a chain's records sit.

Encoding (``schemas/audit.avsc``, format 2): the schemaless Avro binary of the record. The schema
puts ``format_version`` (the int 2, encoded as the single byte ``0x04``) and then ``hash`` (Avro
fixed, 32 bytes) first, so in every encoding the hash occupies bytes ``1..32``.

Chains (format 2): a record's chain is its source, ``(source_topic, source_partition)``, so a chain
has one writer, the owner of that ingress partition. Its records sit in the audit partition
:func:`chain_partition` of the source and of ``audit_partitions``, the partition count the chain is
placed over (recorded in every record, so that growing the audit topic moves no chain). Several
chains may share an audit partition; their records interleave there.

Format 1 (``schemas/audit_v1.avsc``, the same layout without ``audit_partitions``) chained per
*audit partition*; such records are still decoded and verified, as one chain per audit partition.

Format 3 (``schemas/audit_v3.avsc``) is format 2 plus a :class:`ReplayLink`: the audit record of a
quarantine record that ``quarantine replay`` routed. Its source is the quarantine topic-partition
the replay consumed (so replay chains never share a writer with the router's chains), and the link
names the quarantine record, the policy version it was quarantined under and the original ingress
position.

Format 4 (``schemas/audit_v4.avsc``, written by the router and by ``quarantine replay`` now) has two
record kinds in one chain, told apart by byte 33 (the union branch of ``entry``: ``0x00``, ``0x02``):

- a *decision* (:class:`AuditRecord`): format 2's fields, plus ``destination_jurisdiction`` and
  ``placement_snapshot`` (:class:`AuditFields`), plus format 3's replay link when a replay wrote it;
- a *placement record* (:class:`PlacementRecord`): the canonical placement snapshot the chain's
  later decisions rely on (:class:`PlacementSnapshot`), written by the chain's writer into the same
  chain (``seq`` and ``prev_hash`` continue) whenever the snapshot in force changes. Decisions
  reference it by ``placement_snapshot`` = SHA-256 of its content (not its chain hash).

Reading (the API other readers use): :func:`decode_entry` decodes any record of formats 1-4 into an
:class:`AuditRecord` or a :class:`PlacementRecord`; :func:`decode_audit` decodes decisions only (a
placement record raises :class:`NotADecisionRecord`); :func:`is_placement_record` tells the kind from
the bytes without decoding.

Canonical bytes and the hash:

- *canonical bytes* of a record = its encoding with ``hash`` set to 32 zero bytes, i.e. the
  stored bytes with bytes ``1..32`` zeroed;
- ``hash = SHA-256(prev_hash || canonical bytes)``, where ``prev_hash`` is the ``hash`` of the
  record with ``seq - 1`` in the same chain, and 32 zero bytes for ``seq == 0``.

Because the hash covers the bytes as stored (not a re-encoding of decoded values), any change to
any byte of a record, the hash itself included, makes the record fail verification.

An audit record never holds a CRM field value: field *names*, jurisdictions, positions, hashes
and versions only.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, NamedTuple

from fastavro import parse_schema, schemaless_writer

from router.avrorecord import read_versioned
from router.errors import RouterError
from router.resources import schema_file

FORMAT_VERSION = 2
REPLAY_FORMAT_VERSION = 3
SNAPSHOT_FORMAT_VERSION = 4
"""Format 4: decisions that reference a placement snapshot, and the placement records (the router
and ``quarantine replay`` write this format)."""
SCHEMA_PATH = schema_file("audit.avsc")
FORMAT_1_SCHEMA_PATH = schema_file("audit_v1.avsc")
REPLAY_SCHEMA_PATH = schema_file("audit_v3.avsc")
SNAPSHOT_SCHEMA_PATH = schema_file("audit_v4.avsc")
HASH_SIZE = 32
ZERO_HASH = bytes(HASH_SIZE)
HASH_OFFSET = 1
"""Byte offset of ``hash`` in every encoding (after the one-byte ``format_version``)."""

Decision = Literal["route", "quarantine", "audit_only"]


class AuditDecodeError(RouterError):
    """Bytes that are not an audit record of a supported format version."""


class NotADecisionRecord(AuditDecodeError):
    """A format-4 placement record where a decision was asked for (:func:`decode_audit`); read the
    trail with :func:`decode_entry` to get both kinds."""


def _load_schema(path: Any) -> Any:
    return parse_schema(json.loads(path.read_text(encoding="utf-8")))


_SCHEMA = _load_schema(SCHEMA_PATH)
_SCHEMA_1 = _load_schema(FORMAT_1_SCHEMA_PATH)
_SCHEMA_3 = _load_schema(REPLAY_SCHEMA_PATH)
_SCHEMA_4 = _load_schema(SNAPSHOT_SCHEMA_PATH)


class ChainId(NamedTuple):
    """Which chain a record belongs to.

    Format 2: its source, ``(source_topic, source_partition)``. Format 1: ``(None, <audit
    partition>)``, the one chain of that audit partition. A plain ``(topic, partition)`` tuple
    compares and hashes equal to it.
    """

    source_topic: str | None
    partition: int

    def describe(self) -> str:
        if self.source_topic is None:
            return f"format-1 chain of audit partition {self.partition}"
        return f"{self.source_topic}[{self.partition}]"


def chain_key(source_topic: str, source_partition: int) -> bytes:
    """The Kafka key of a chain's records, ``<topic>:<partition>`` (a topic name holds no ``:``):
    lets a tail reader skip other chains' records without decoding them. Not covered by the hash;
    readers trust the decoded fields, not the key."""
    return f"{source_topic}:{source_partition}".encode()


def chain_partition(source_topic: str, source_partition: int, audit_partitions: int) -> int:
    """The audit partition of the chain of ``source_topic[source_partition]`` when chains are placed
    over ``audit_partitions`` partitions: the first 8 bytes of SHA-256 of :func:`chain_key`, big-endian,
    modulo ``audit_partitions``. Stable across processes and versions (never Python's ``hash()``)."""
    if audit_partitions < 1:
        raise ValueError(f"audit_partitions must be >= 1, got {audit_partitions}")
    digest = hashlib.sha256(chain_key(source_topic, source_partition)).digest()
    return int.from_bytes(digest[:8], "big") % audit_partitions


class AuditFields(NamedTuple):
    """What the pipeline knows about one decision: everything but the chain fields. A named tuple:
    the pipeline builds one per record, and a frozen dataclass of 21 fields costs several
    microseconds more to construct."""

    decision: Decision
    reason: str
    """A :class:`router.errors.ReasonCode` value (``ROUTED`` for a route)."""
    classification_level: str
    categories: tuple[str, ...]
    field_names: tuple[str, ...]
    jurisdictions: tuple[str, ...]
    destination_topic: str
    destination_partition: int | None
    placement_verdict: str
    """The placement check relied on: ``ok@<snapshot ms>`` or the violation summary."""
    payload_sha256: str
    """Keyed digest of the original ingress bytes, ``hmac-sha256:<jurisdiction>:<hex>`` under that
    jurisdiction's digest key (:class:`router.keys.digest.DigestKeys`); never a plain hash."""
    sealed_sha256: str
    """Hex SHA-256 of the bytes written to ``destination_topic``."""
    source_topic: str
    source_partition: int
    source_offset: int
    source_timestamp_ms: int | None
    event_id: str | None
    policy_version: str
    router_version: str
    instance_id: str
    processed_at_ms: int
    trace_id: str | None = None
    destination_jurisdiction: str | None = None
    """Format 4: the jurisdiction ``destination_topic`` must sit in (the decision's); None when
    nothing was written (``audit_only``) and in formats 1-3."""
    placement_snapshot: bytes | None = None
    """Format 4: the SHA-256 of the :class:`PlacementSnapshot` the decision relied on (a placement
    record earlier in the same chain holds it); None when the writer had none, and in formats 1-3."""


class ReplayLink(NamedTuple):
    """What a format-3 record (a replayed quarantine record) links to: the quarantine record, the
    reason and policy version it was quarantined under, and the event's original ingress position.
    Names and positions only."""

    quarantine_topic: str
    quarantine_partition: int
    quarantine_offset: int
    quarantine_reason: str
    quarantine_policy_version: str
    quarantined_at_ms: int
    ingress_topic: str
    ingress_partition: int
    ingress_offset: int


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """A decoded audit record: its chain fields and the decision it describes."""

    seq: int
    prev_hash: bytes
    hash: bytes
    fields: AuditFields
    audit_partitions: int | None = None
    """Formats 2 and 3: the partition count the chain is placed over. None for format 1."""
    format_version: int = FORMAT_VERSION
    replay: ReplayLink | None = None
    """Formats 3 and 4: the quarantine record this replay routed. None for the router's decisions."""

    kind: ClassVar[str] = "decision"

    def chain(self, partition: int) -> ChainId:
        """The record's chain; ``partition`` is the audit partition it was read from (format 1)."""
        if self.format_version == 1:
            return ChainId(None, partition)
        return ChainId(self.fields.source_topic, self.fields.source_partition)

    def placed_in(self) -> int | None:
        """The audit partition a format-2 record must sit in (None for format 1)."""
        if self.audit_partitions is None:
            return None
        return chain_partition(self.fields.source_topic, self.fields.source_partition, self.audit_partitions)


class PlacementSnapshot:
    """One placement verdict as recorded in the trail: its canonical content and that content's hash.

    ``content`` is canonical JSON (UTF-8, sorted keys, no spaces; built by
    :func:`router.placement.model.snapshot_content`), so the same placement always gives the same
    bytes and the same :attr:`sha256`. Its keys (``v`` 1): ``taken_at_ms`` (wall clock of the first
    check that saw this placement), ``jurisdictions_sha256`` (hex SHA-256 of the canonical JSON of
    the ``jurisdictions`` config section in force), ``brokers`` (``{"<id>": {"rack", "jurisdiction"
    [, "offline": true]}}``; a broker the cluster did not list and nobody remembers is absent),
    ``topics`` (``{"<topic>": {"jurisdiction": required, "verdict": "ok" | "violation" | "missing",
    "partitions": {"<partition>": [replica broker ids]}}}``), ``verdict`` (``ok`` or ``violation``)
    and ``violations`` (``[{"topic", "partition", "broker"}]``). Names, ids and racks only.
    """

    __slots__ = ("_parsed", "content", "sha256")

    def __init__(self, content: bytes) -> None:
        self.content = bytes(content)
        self.sha256 = hashlib.sha256(self.content).digest()
        self._parsed: dict[str, Any] | None = None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PlacementSnapshot) and other.content == self.content

    def __hash__(self) -> int:
        return hash(self.sha256)

    def __repr__(self) -> str:
        return f"PlacementSnapshot(sha256={self.sha256.hex()[:16]}..., {len(self.content)} bytes)"

    def parsed(self) -> dict[str, Any]:
        """The content as JSON; raises :class:`AuditDecodeError` if it is not a JSON object."""
        if self._parsed is None:
            try:
                d = json.loads(self.content)
            except (ValueError, UnicodeDecodeError):
                raise AuditDecodeError("malformed placement snapshot: not JSON") from None
            if not isinstance(d, dict):
                raise AuditDecodeError("malformed placement snapshot: not a JSON object")
            self._parsed = d
        return self._parsed

    def replicas(self, topic: str, partition: int) -> tuple[int, ...] | None:
        """The replica broker ids of ``topic[partition]`` in the snapshot; None if it has none."""
        t = self.parsed().get("topics", {}).get(topic)
        if not isinstance(t, dict):
            return None
        r = t.get("partitions", {}).get(str(partition))
        return tuple(int(b) for b in r) if isinstance(r, list) else None

    def broker_jurisdiction(self, broker: int) -> str | None:
        """The jurisdiction the snapshot records for ``broker``'s rack; None if none or unknown."""
        b = self.parsed().get("brokers", {}).get(str(broker))
        j = b.get("jurisdiction") if isinstance(b, dict) else None
        return j if isinstance(j, str) else None

    @property
    def taken_at_ms(self) -> int | None:
        t = self.parsed().get("taken_at_ms")
        return t if isinstance(t, int) else None

    @property
    def verdict(self) -> str | None:
        v = self.parsed().get("verdict")
        return v if isinstance(v, str) else None


@dataclass(frozen=True, slots=True)
class PlacementRecord:
    """A decoded format-4 placement record: a link of its chain (``seq``/``prev_hash`` continue the
    chain's decisions) holding the placement snapshot later decisions of the chain reference."""

    seq: int
    prev_hash: bytes
    hash: bytes
    source_topic: str
    source_partition: int
    audit_partitions: int
    snapshot_sha256: bytes
    """As written; equals ``snapshot.sha256`` unless the record was forged (verification checks)."""
    snapshot: PlacementSnapshot
    router_version: str
    instance_id: str
    written_at_ms: int
    format_version: int = SNAPSHOT_FORMAT_VERSION
    replay: None = None
    """Never a replay link (so that ``rec.replay`` reads on either kind)."""

    kind: ClassVar[str] = "placement"

    def chain(self, partition: int) -> ChainId:
        """The record's chain: its source."""
        return ChainId(self.source_topic, self.source_partition)

    def placed_in(self) -> int:
        """The audit partition the record must sit in."""
        return chain_partition(self.source_topic, self.source_partition, self.audit_partitions)


AuditEntry = AuditRecord | PlacementRecord
"""Anything a chain holds: a decision, or (format 4) a placement record."""


def _to_avro(seq: int, prev_hash: bytes, f: AuditFields, audit_partitions: int,
             replay: ReplayLink | None = None) -> dict[str, Any]:
    extra = {} if replay is None else {"replay": replay._asdict()}
    return {
        "format_version": FORMAT_VERSION if replay is None else REPLAY_FORMAT_VERSION,
        "hash": ZERO_HASH,
        "seq": seq,
        "prev_hash": prev_hash,
        "audit_partitions": audit_partitions,
        "decision": f.decision,
        "reason": str(f.reason),
        "classification_level": f.classification_level,
        "categories": f.categories,
        "field_names": f.field_names,
        "jurisdictions": f.jurisdictions,
        "destination_topic": f.destination_topic,
        "destination_partition": f.destination_partition,
        "placement_verdict": f.placement_verdict,
        "payload_sha256": f.payload_sha256,
        "sealed_sha256": f.sealed_sha256,
        "source_topic": f.source_topic,
        "source_partition": f.source_partition,
        "source_offset": f.source_offset,
        "source_timestamp_ms": f.source_timestamp_ms,
        "event_id": f.event_id,
        "policy_version": f.policy_version,
        "router_version": f.router_version,
        "instance_id": f.instance_id,
        "processed_at_ms": f.processed_at_ms,
        "trace_id": f.trace_id,
        **extra,
    }


def chain_hash(prev_hash: bytes, canonical: bytes | bytearray | memoryview) -> bytes:
    """``SHA-256(prev_hash || canonical)``."""
    h = hashlib.sha256(prev_hash)
    h.update(canonical)
    return h.digest()


def canonical_bytes(encoded: bytes) -> bytes:
    """The encoding with the ``hash`` field zeroed (what the hash covers after ``prev_hash``)."""
    return encoded[:HASH_OFFSET] + ZERO_HASH + encoded[HASH_OFFSET + HASH_SIZE :]


def stored_hash(encoded: bytes) -> bytes:
    """The ``hash`` field of an encoding, read in place."""
    return encoded[HASH_OFFSET : HASH_OFFSET + HASH_SIZE]


# -- fixed-layout Avro writing ------------------------------------------------------------------
# The audit and quarantine schemas are fixed: their records are written field by field in schema
# order, without fastavro interpreting the schema per record. The bytes are exactly fastavro's
# (tests/unit/test_avro_fixed_layout.py compares them over many records).

_SMALL = [bytes((((n << 1) ^ (n >> 63)) & 0xFF,)) for n in range(-64, 64)]
"""Zig-zag varints of -64..63: one byte each."""
_NULL = b"\x00"
_PRESENT = b"\x02"  # union branch 1 of ["null", X]
_STR_CACHE: dict[str, bytes] = {}
_STR_CACHE_MAX = 4096
_NAMES_CACHE: dict[tuple[str, ...], bytes] = {}


def avro_long(n: int) -> bytes:
    """Avro ``int``/``long``: a zig-zag varint."""
    if -64 <= n < 64:
        return _SMALL[n + 64]
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while z > 0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def avro_bytes(b: bytes) -> bytes:
    """Avro ``bytes``: length, then the bytes."""
    return avro_long(len(b)) + b


def avro_str(s: str) -> bytes:
    """Avro ``string``: UTF-8 length, then UTF-8 (strict, as fastavro encodes)."""
    b = s.encode()
    return avro_long(len(b)) + b


def avro_name(s: str) -> bytes:
    """:func:`avro_str` of a low-cardinality string (a reason, level, topic, version, category or
    field name; never a field value), memoised."""
    out = _STR_CACHE.get(s)
    if out is None:
        out = avro_str(s)
        if len(_STR_CACHE) >= _STR_CACHE_MAX:
            _STR_CACHE.clear()
        _STR_CACHE[s] = out
    return out


def avro_names(items: tuple[str, ...] | list[str]) -> bytes:
    """Avro ``array<string>`` of names: one block with its count, then the 0 terminator."""
    if not items:
        return _NULL
    if type(items) is not tuple:
        return b"".join((avro_long(len(items)), *map(avro_name, items), _NULL))
    out = _NAMES_CACHE.get(items)
    if out is None:
        out = b"".join((avro_long(len(items)), *map(avro_name, items), _NULL))
        if len(_NAMES_CACHE) >= _STR_CACHE_MAX:
            _NAMES_CACHE.clear()
        _NAMES_CACHE[items] = out
    return out


def avro_opt_long(n: int | None) -> bytes:
    """Avro ``["null", "long"]``."""
    return _NULL if n is None else _PRESENT + avro_long(n)


def avro_opt_str(s: str | None) -> bytes:
    """Avro ``["null", "string"]``."""
    return _NULL if s is None else _PRESENT + avro_str(s)


_DECISIONS = {name: avro_long(i) for i, name in enumerate(("route", "quarantine", "audit_only"))}
_HEAD = avro_long(FORMAT_VERSION)
_FORMAT_1_HEAD = avro_long(1)
_REPLAY_HEAD = avro_long(REPLAY_FORMAT_VERSION)


def _encode_link(link: ReplayLink) -> bytes:
    """The ``replay`` record of format 3, in schema order."""
    return b"".join((
        avro_name(link.quarantine_topic),
        avro_long(link.quarantine_partition),
        avro_long(link.quarantine_offset),
        avro_name(link.quarantine_reason),
        avro_name(link.quarantine_policy_version),
        avro_long(link.quarantined_at_ms),
        avro_name(link.ingress_topic),
        avro_long(link.ingress_partition),
        avro_long(link.ingress_offset),
    ))


def _encode_fields(seq: int, prev_hash: bytes, f: AuditFields, audit_partitions: int) -> bytes:
    """Everything after ``hash``, in schema order."""
    return b"".join((
        avro_long(seq),
        prev_hash,
        avro_long(audit_partitions),
        _decision_run(f),
        avro_opt_long(f.destination_partition),
        avro_name(f.placement_verdict),
        avro_str(f.payload_sha256),
        avro_str(f.sealed_sha256),
        avro_name(f.source_topic),
        avro_long(f.source_partition),
        avro_long(f.source_offset),
        avro_opt_long(f.source_timestamp_ms),
        avro_opt_str(f.event_id),
        _versions_run(f.policy_version, f.router_version, f.instance_id),
        avro_long(f.processed_at_ms),
        avro_opt_str(f.trace_id),
    ))


_RUNS: dict[tuple[object, ...], bytes] = {}
"""Encoded runs of consecutive value-free, low-cardinality fields (bounded)."""


def _run(key: tuple[object, ...], encode: Callable[[], bytes]) -> bytes:
    try:
        out = _RUNS.get(key)
    except TypeError:  # a list where a tuple is expected: not hashable, encode as given
        return encode()
    if out is None:
        out = encode()
        if len(_RUNS) >= _STR_CACHE_MAX:
            _RUNS.clear()
        _RUNS[key] = out
    return out


def _decision_run(f: AuditFields) -> bytes:
    """``decision`` to ``destination_topic``: what was decided, the same for many records."""
    def encode() -> bytes:
        decision = _DECISIONS.get(f.decision)
        if decision is None:
            raise ValueError(f"{f.decision!r} is not a valid audit decision")
        return b"".join((decision, avro_name(str(f.reason)), avro_name(f.classification_level),
                         avro_names(f.categories), avro_names(f.field_names), avro_names(f.jurisdictions),
                         avro_name(f.destination_topic)))

    return _run(("d", f.decision, f.reason, f.classification_level, f.categories, f.field_names, f.jurisdictions,
                 f.destination_topic), encode)


def _versions_run(policy_version: str, router_version: str, instance_id: str) -> bytes:
    return _run(("v", policy_version, router_version, instance_id),
                lambda: avro_name(policy_version) + avro_name(router_version) + avro_name(instance_id))


_INT32_MAX = 2**31 - 1


def _check_chain_fields(seq: int, prev_hash: bytes, audit_partitions: int) -> None:
    if seq < 0:
        raise ValueError(f"seq must be >= 0, got {seq}")
    if len(prev_hash) != HASH_SIZE:
        raise ValueError(f"prev_hash must be {HASH_SIZE} bytes, got {len(prev_hash)}")
    if seq == 0 and prev_hash != ZERO_HASH:
        raise ValueError("the record with seq 0 must have an all-zero prev_hash")
    if not 1 <= audit_partitions <= _INT32_MAX:
        raise ValueError(f"audit_partitions must be between 1 and {_INT32_MAX}, got {audit_partitions}")


def encode_audit(
    seq: int, prev_hash: bytes, fields: AuditFields, audit_partitions: int = 1, replay: ReplayLink | None = None
) -> tuple[bytes, bytes]:
    """Encode a record at ``seq`` after ``prev_hash`` of its chain, placed over ``audit_partitions``;
    returns ``(record bytes, its hash)``. Format 2, or format 3 with ``replay`` (a replayed
    quarantine record's link).

    The fields after ``hash`` are encoded once; the canonical bytes (zero hash) are hashed and the
    record is the same bytes with the hash in place.
    """
    _check_chain_fields(seq, prev_hash, audit_partitions)
    rest = _encode_fields(seq, prev_hash, fields, audit_partitions)
    head = _HEAD
    if replay is not None:
        head, rest = _REPLAY_HEAD, rest + _encode_link(replay)
    h = hashlib.sha256(prev_hash)
    h.update(head)
    h.update(ZERO_HASH)
    h.update(rest)
    digest = h.digest()
    return b"".join((head, digest, rest)), digest


def encode_audit_fastavro(
    seq: int, prev_hash: bytes, fields: AuditFields, audit_partitions: int = 1, replay: ReplayLink | None = None
) -> tuple[bytes, bytes]:
    """:func:`encode_audit` through fastavro's schema interpretation (the reference encoding)."""
    _check_chain_fields(seq, prev_hash, audit_partitions)
    out = io.BytesIO()
    schema = _SCHEMA if replay is None else _SCHEMA_3
    schemaless_writer(out, schema, _to_avro(seq, prev_hash, fields, audit_partitions, replay))
    canonical = out.getbuffer()
    digest = chain_hash(prev_hash, canonical)
    canonical[HASH_OFFSET : HASH_OFFSET + HASH_SIZE] = digest
    del canonical  # release the buffer export before getvalue()
    return out.getvalue(), digest


def _fields_of(d: dict[str, Any]) -> AuditFields:
    return AuditFields(
        decision=d["decision"],
        reason=d["reason"],
        classification_level=d["classification_level"],
        categories=tuple(d["categories"]),
        field_names=tuple(d["field_names"]),
        jurisdictions=tuple(d["jurisdictions"]),
        destination_topic=d["destination_topic"],
        destination_partition=d["destination_partition"],
        placement_verdict=d["placement_verdict"],
        payload_sha256=d["payload_sha256"],
        sealed_sha256=d["sealed_sha256"],
        source_topic=d["source_topic"],
        source_partition=d["source_partition"],
        source_offset=d["source_offset"],
        source_timestamp_ms=d["source_timestamp_ms"],
        event_id=d["event_id"],
        policy_version=d["policy_version"],
        router_version=d["router_version"],
        instance_id=d["instance_id"],
        processed_at_ms=d["processed_at_ms"],
        trace_id=d["trace_id"],
        destination_jurisdiction=d.get("destination_jurisdiction"),
        placement_snapshot=d.get("placement_snapshot"),
    )


def decode_audit(data: bytes) -> AuditRecord:
    """Parse a decision record of format 4, 3, 2 or 1; does not check its hash (see
    :func:`router.audit.chain.verify_chain`).

    Raises :class:`NotADecisionRecord` for a format-4 placement record (read the trail with
    :func:`decode_entry`), :class:`AuditDecodeError` for another format version, truncated or
    trailing bytes.
    """
    replay: ReplayLink | None = None
    if data[:1] == _V4_HEAD:
        rec = _decode_v4(data)
        if isinstance(rec, PlacementRecord):
            raise NotADecisionRecord("a format-4 placement record, not a decision")
        return rec
    if data[:1] == _FORMAT_1_HEAD:
        d = read_versioned(data, _SCHEMA_1, 1, "audit record", AuditDecodeError)
        version, audit_partitions = 1, None
    else:
        if data[:1] == _REPLAY_HEAD:
            d = read_versioned(data, _SCHEMA_3, REPLAY_FORMAT_VERSION, "audit record", AuditDecodeError)
            version, replay = REPLAY_FORMAT_VERSION, ReplayLink(**d["replay"])
        else:
            d = read_versioned(data, _SCHEMA, FORMAT_VERSION, "audit record", AuditDecodeError)
            version = FORMAT_VERSION
        audit_partitions = d["audit_partitions"]
        if audit_partitions < 1:
            raise AuditDecodeError(f"malformed audit record: audit_partitions is {audit_partitions}")
    return AuditRecord(
        seq=d["seq"],
        prev_hash=d["prev_hash"],
        hash=d["hash"],
        fields=_fields_of(d),
        audit_partitions=audit_partitions,
        format_version=version,
        replay=replay,
    )


# -- format 4 ------------------------------------------------------------------------------------

_V4_HEAD = avro_long(SNAPSHOT_FORMAT_VERSION)
_ENTRY_DECISION = avro_long(0)
_ENTRY_PLACEMENT = avro_long(1)
ENTRY_OFFSET = HASH_OFFSET + HASH_SIZE
"""Byte offset of the union branch of a format-4 record's ``entry`` (0x00 decision, 0x02 placement)."""


def is_placement_record(data: bytes) -> bool:
    """True when ``data`` is (by its first bytes) a format-4 placement record; no decoding."""
    return data[:1] == _V4_HEAD and data[ENTRY_OFFSET : ENTRY_OFFSET + 1] == _ENTRY_PLACEMENT


def _opt_hash(h: bytes | None) -> bytes:
    if h is None:
        return _NULL
    if len(h) != HASH_SIZE:
        raise ValueError(f"placement_snapshot must be {HASH_SIZE} bytes, got {len(h)}")
    return _PRESENT + h


def _sealed(head: bytes, prev_hash: bytes, rest: bytes) -> tuple[bytes, bytes]:
    h = hashlib.sha256(prev_hash)
    h.update(head)
    h.update(ZERO_HASH)
    h.update(rest)
    digest = h.digest()
    return b"".join((head, digest, rest)), digest


def encode_decision(
    seq: int, prev_hash: bytes, fields: AuditFields, audit_partitions: int = 1, replay: ReplayLink | None = None
) -> tuple[bytes, bytes]:
    """Encode a format-4 decision at ``seq`` after ``prev_hash`` (with ``fields.placement_snapshot``
    and ``fields.destination_jurisdiction``; ``replay`` for a replayed quarantine record); returns
    ``(record bytes, its hash)``. The layout is format 2's fields after the ``entry`` branch byte,
    then the three format-4 fields (fixed layout, byte-identical to fastavro)."""
    _check_chain_fields(seq, prev_hash, audit_partitions)
    rest = b"".join((
        _ENTRY_DECISION,
        _encode_fields(seq, prev_hash, fields, audit_partitions),
        avro_opt_str(fields.destination_jurisdiction),
        _opt_hash(fields.placement_snapshot),
        _NULL if replay is None else _PRESENT + _encode_link(replay),
    ))
    return _sealed(_V4_HEAD, prev_hash, rest)


def encode_placement(
    seq: int, prev_hash: bytes, snapshot: PlacementSnapshot, *, source_topic: str, source_partition: int,
    audit_partitions: int = 1, router_version: str, instance_id: str, written_at_ms: int,
) -> tuple[bytes, bytes]:
    """Encode a format-4 placement record of ``snapshot`` at ``seq`` of the chain of
    ``source_topic[source_partition]``; returns ``(record bytes, its hash)``."""
    _check_chain_fields(seq, prev_hash, audit_partitions)
    rest = b"".join((
        _ENTRY_PLACEMENT,
        avro_long(seq),
        prev_hash,
        avro_long(audit_partitions),
        avro_str(source_topic),
        avro_long(source_partition),
        snapshot.sha256,
        avro_bytes(snapshot.content),
        avro_str(router_version),
        avro_str(instance_id),
        avro_long(written_at_ms),
    ))
    return _sealed(_V4_HEAD, prev_hash, rest)


def _v4_avro(seq: int, prev_hash: bytes, entry: dict[str, Any], name: str) -> dict[str, Any]:
    return {"format_version": SNAPSHOT_FORMAT_VERSION, "hash": ZERO_HASH,
            "entry": (f"residency_router.v4.{name}", {"seq": seq, "prev_hash": prev_hash, **entry})}


def encode_v4_fastavro(seq: int, prev_hash: bytes, entry: AuditFields | PlacementRecord, audit_partitions: int = 1,
                       replay: ReplayLink | None = None) -> bytes:
    """A format-4 record through fastavro's schema interpretation (the reference encoding; tests).
    ``entry``: a decision's fields, or a :class:`PlacementRecord` whose chain fields are ignored."""
    if isinstance(entry, PlacementRecord):
        d = _v4_avro(seq, prev_hash, {
            "audit_partitions": audit_partitions, "source_topic": entry.source_topic,
            "source_partition": entry.source_partition, "snapshot_sha256": entry.snapshot.sha256,
            "snapshot": entry.snapshot.content, "router_version": entry.router_version,
            "instance_id": entry.instance_id, "written_at_ms": entry.written_at_ms}, "PlacementEntry")
    else:
        body = _to_avro(seq, prev_hash, entry, audit_partitions)
        for k in ("format_version", "hash", "seq", "prev_hash"):
            del body[k]
        body.update(destination_jurisdiction=entry.destination_jurisdiction,
                    placement_snapshot=entry.placement_snapshot,
                    replay=None if replay is None else replay._asdict())
        d = _v4_avro(seq, prev_hash, body, "DecisionEntry")
    out = io.BytesIO()
    schemaless_writer(out, _SCHEMA_4, d)
    canonical = out.getvalue()
    digest = chain_hash(prev_hash, canonical)
    return canonical[:HASH_OFFSET] + digest + canonical[HASH_OFFSET + HASH_SIZE :]


def _decode_v4(data: bytes) -> AuditEntry:
    d = read_versioned(data, _SCHEMA_4, SNAPSHOT_FORMAT_VERSION, "audit record", AuditDecodeError)
    e = d["entry"]
    if e["audit_partitions"] < 1:
        raise AuditDecodeError(f"malformed audit record: audit_partitions is {e['audit_partitions']}")
    if "snapshot" in e:
        return PlacementRecord(
            seq=e["seq"], prev_hash=e["prev_hash"], hash=d["hash"], source_topic=e["source_topic"],
            source_partition=e["source_partition"], audit_partitions=e["audit_partitions"],
            snapshot_sha256=e["snapshot_sha256"], snapshot=PlacementSnapshot(e["snapshot"]),
            router_version=e["router_version"], instance_id=e["instance_id"], written_at_ms=e["written_at_ms"],
        )
    replay = ReplayLink(**e["replay"]) if e["replay"] is not None else None
    return AuditRecord(
        seq=e["seq"], prev_hash=e["prev_hash"], hash=d["hash"], fields=_fields_of(e),
        audit_partitions=e["audit_partitions"], format_version=SNAPSHOT_FORMAT_VERSION, replay=replay,
    )


def decode_entry(data: bytes) -> AuditEntry:
    """Parse any chain link of formats 1-4: a decision (:class:`AuditRecord`) or a format-4
    placement record (:class:`PlacementRecord`). Does not check hashes or snapshot references
    (:func:`router.audit.chain.verify_chain` does). Raises :class:`AuditDecodeError` for another
    format version, truncated or trailing bytes.

    This is the reader's API for the whole trail: ``rec.kind`` is ``"decision"`` or
    ``"placement"``; both have ``seq``, ``prev_hash``, ``hash``, ``format_version``,
    ``audit_partitions``, ``chain(partition)`` and ``placed_in()``. A decision's
    ``fields.placement_snapshot`` names the ``snapshot.sha256`` of a placement record earlier in its
    chain (format 4; None before).
    """
    if data[:1] == _V4_HEAD:
        return _decode_v4(data)
    return decode_audit(data)
