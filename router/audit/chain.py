"""The audit hash chains: appending records, checkpoint/rollback around transactions, verification.

Pure: no Kafka import. Each source (ingress topic, partition) has its own chain, identified by
:class:`~router.audit.record.ChainId` and written only by the router instance that owns that
ingress partition; ``seq`` starts at 0 and grows by one per record, and each record's
``prev_hash`` is the previous record's ``hash`` (see :mod:`router.audit.record` for the hash
definition and for where a chain's records sit). Several chains may share an audit partition.

How the pipeline uses :class:`AuditChain`:

1. after a partition assignment, for each assigned ingress partition, read its chain's committed
   tail with :func:`router.audit.kafka.read_chain_tails` and pass it to :meth:`AuditChain.set_tail`
   (``None`` for a chain with no record yet);
2. after each transaction commit, take :meth:`AuditChain.checkpoint`;
3. per event, :meth:`AuditChain.append` the audit fields to its source's chain and produce the
   returned bytes to the chain's audit partition inside the transaction;
4. on abort, :meth:`AuditChain.rollback` to the last checkpoint before reprocessing, so that the
   records written again continue the chain from the last *committed* record (aborted records are
   invisible to ``read_committed`` readers and to verification). After an ambiguous commit the
   pipeline reads the tails back (step 1) instead: the commit may have succeeded.

What verification proves and does not: an edited, deleted (except at the tail), reordered,
duplicated, misplaced or undecodable record breaks its chain at a named offset. A deleted *tail*,
a whole deleted chain, or a chain rewritten consistently from some record on, is only detectable
against an external anchor (a (seq, hash) recorded elsewhere, e.g. by :meth:`VerifyReport.tails`).
Format-1 records (one chain per audit partition) are verified as such. Format-3 records (replayed
quarantine records) form chains of their own, one per quarantine topic-partition (their source),
and are verified like any format-2 chain.

Placement snapshots (format 4). The writer appends a placement record
(:meth:`AuditChain.append_placement`) to a chain before the first decision that relies on a
snapshot the chain does not hold yet; each decision names the snapshot's hash. Verification then
proves residency from the trail alone: every referenced snapshot is a placement record earlier in
the same chain whose content hashes to the reference (else ``snapshot_missing``), and in it every
replica of the decision's destination partition sits on a broker whose recorded jurisdiction is the
decision's destination jurisdiction (else ``residency_violation``). Decisions without a reference
(formats 1-3, or format 4 written without a snapshot) are counted as not snapshot-referenced, not
failures.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import NamedTuple

from router.audit.record import (
    HASH_SIZE,
    ZERO_HASH,
    AuditDecodeError,
    AuditEntry,
    AuditFields,
    AuditRecord,
    ChainId,
    PlacementRecord,
    PlacementSnapshot,
    ReplayLink,
    canonical_bytes,
    chain_hash,
    decode_entry,
    encode_audit,
    encode_decision,
    encode_placement,
    stored_hash,
)


class ChainTail(NamedTuple):
    """The last record of a chain: its ``seq`` and ``hash`` (unpacks as ``seq, hash``)."""

    seq: int
    hash: bytes


ChainKey = Hashable
"""What :class:`AuditChain` keys its state by: the pipeline uses the source ``(topic, partition)``
(equal to its :class:`~router.audit.record.ChainId`)."""


@dataclass(frozen=True, slots=True)
class ChainState:
    """An immutable copy of every chain's tail, from :meth:`AuditChain.checkpoint`."""

    tails: Mapping[ChainKey, ChainTail] = field(default_factory=lambda: MappingProxyType({}))
    snapshots: Mapping[ChainKey, bytes] = field(default_factory=lambda: MappingProxyType({}))
    """Per chain, the hash of the last placement snapshot appended to it (since its tail was set)."""


class AuditChain:
    """Per-chain state, and the encoder of chained audit records.

    Not thread-safe: one pipeline thread owns it. A chain with no known tail starts at ``seq`` 0;
    the pipeline must therefore :meth:`set_tail` (or :meth:`resume`) every chain it writes to
    before the first :meth:`append`, or it would fork an existing chain. ``audit_partitions`` is
    the partition count chains are placed over, recorded in every record.
    """

    __slots__ = ("_snapshots", "_tails", "audit_partitions")

    def __init__(self, state: ChainState | None = None, *, audit_partitions: int = 1) -> None:
        if audit_partitions < 1:
            raise ValueError(f"audit_partitions must be >= 1, got {audit_partitions}")
        self._tails: dict[ChainKey, ChainTail] = dict(state.tails) if state is not None else {}
        self._snapshots: dict[ChainKey, bytes] = dict(state.snapshots) if state is not None else {}
        self.audit_partitions = audit_partitions

    def _next(self, chain: ChainKey) -> tuple[int, bytes]:
        tail = self._tails.get(chain)
        return (0, ZERO_HASH) if tail is None else (tail.seq + 1, tail.hash)

    def append_decision(self, chain: ChainKey, fields: AuditFields, replay: ReplayLink | None = None) -> bytes:
        """Chain a format-4 decision onto ``chain``'s tail (``fields.placement_snapshot``: the hash of
        a snapshot appended to this chain before, see :meth:`snapshot_of`); returns the bytes to
        produce. ``chain`` must be ``(fields.source_topic, fields.source_partition)``."""
        seq, prev = self._next(chain)
        data, digest = encode_decision(seq, prev, fields, self.audit_partitions, replay)
        self._tails[chain] = ChainTail(seq, digest)
        return data

    def append_placement(self, chain: tuple[str, int], snapshot: PlacementSnapshot, *, router_version: str,
                         instance_id: str, written_at_ms: int) -> bytes:
        """Chain a format-4 placement record of ``snapshot`` onto ``chain`` (a source ``(topic,
        partition)``); later decisions of the chain may reference ``snapshot.sha256``. Returns the
        bytes to produce (to the chain's audit partition, in the same transaction as those decisions)."""
        seq, prev = self._next(chain)
        data, digest = encode_placement(seq, prev, snapshot, source_topic=chain[0], source_partition=chain[1],
                                        audit_partitions=self.audit_partitions, router_version=router_version,
                                        instance_id=instance_id, written_at_ms=written_at_ms)
        self._tails[chain] = ChainTail(seq, digest)
        self._snapshots[chain] = snapshot.sha256
        return data

    def snapshot_of(self, chain: ChainKey) -> bytes | None:
        """The hash of the last snapshot appended to ``chain`` since its tail was set (None: none, so
        the next decision relying on one must be preceded by a placement record)."""
        return self._snapshots.get(chain)

    def append(self, chain: ChainKey, fields: AuditFields, replay: ReplayLink | None = None) -> bytes:
        """Chain ``fields`` onto ``chain``'s tail; returns the record bytes to produce (format 3
        with ``replay``, the link of a replayed quarantine record; else format 2).

        ``chain`` must be the chain of ``fields``, ``(fields.source_topic, fields.source_partition)``:
        verification assigns records to chains by those fields."""
        tail = self._tails.get(chain)
        if tail is None:
            seq, prev = 0, ZERO_HASH
        else:
            seq, prev = tail.seq + 1, tail.hash
        data, digest = encode_audit(seq, prev, fields, self.audit_partitions, replay)
        self._tails[chain] = ChainTail(seq, digest)
        return data

    def set_tail(self, chain: ChainKey, tail: ChainTail | tuple[int, bytes] | None) -> None:
        """Continue ``chain`` after ``tail`` (as from ``read_chain_tails``); ``None``: start at 0.
        Forgets the chain's snapshot: the next decision writes the current one again."""
        self._snapshots.pop(chain, None)
        if tail is None:
            self._tails.pop(chain, None)
        else:
            seq, digest = tail
            if seq < 0 or len(digest) != HASH_SIZE:
                raise ValueError(f"a chain tail needs seq >= 0 and a {HASH_SIZE}-byte hash")
            self._tails[chain] = ChainTail(seq, digest)

    def resume(self, chain: ChainKey, last_record: bytes) -> ChainTail:
        """Continue ``chain`` after ``last_record`` (the bytes of its last committed record).

        The record's own hash is checked first, so a damaged tail is not silently extended.
        Raises :class:`router.audit.record.AuditDecodeError` if it does not decode or verify.
        """
        tail = checked_tail(last_record)
        self._tails[chain] = tail
        self._snapshots.pop(chain, None)
        return tail

    def forget(self, chain: ChainKey) -> None:
        """Drop a chain's state (after it was revoked); it must be set again before use."""
        self._tails.pop(chain, None)
        self._snapshots.pop(chain, None)

    def tail(self, chain: ChainKey) -> ChainTail | None:
        """The last appended record of ``chain``, or None if nothing is known."""
        return self._tails.get(chain)

    def checkpoint(self) -> ChainState:
        """An immutable copy of the current state (take it right after a commit)."""
        return ChainState(MappingProxyType(dict(self._tails)), MappingProxyType(dict(self._snapshots)))

    def rollback(self, state: ChainState) -> None:
        """Return to ``state`` (after an abort): later appends continue from there (and a placement
        record that was rolled back is written again)."""
        self._tails = dict(state.tails)
        self._snapshots = dict(state.snapshots)


def checked_tail(record: bytes | AuditEntry, data: bytes | None = None) -> ChainTail:
    """The ``(seq, hash)`` of a record that is to be extended, after checking its own hash.

    ``record`` is the record's bytes, or its decoded form with the bytes in ``data``. Raises
    :class:`router.audit.record.AuditDecodeError` if it does not decode or its hash fails.
    """
    if isinstance(record, AuditRecord | PlacementRecord):
        rec, raw = record, data
        if raw is None:
            raise ValueError("checked_tail needs the record's bytes")
    else:
        rec, raw = decode_entry(record), record
    if chain_hash(rec.prev_hash, canonical_bytes(raw)) != rec.hash:
        raise AuditDecodeError(f"the audit record with seq {rec.seq} fails its own hash; refusing to extend it")
    return ChainTail(rec.seq, rec.hash)


# -- verification ------------------------------------------------------------------------------


class BreakKind(StrEnum):
    """How a chain is broken, at the first record where it is."""

    UNDECODABLE = "undecodable"
    """The bytes are not an audit record of a supported format (its chain cannot be known: it is
    reported for its audit partition)."""
    EDITED = "edited"
    """The record's hash does not match its contents: it was changed after it was written."""
    DELETED = "deleted"
    """``seq`` jumps forward (or the first record is not ``seq`` 0) and the missing records are
    nowhere later: records were removed."""
    REORDERED = "reordered"
    """``seq`` is out of order and the expected record appears later in the partition."""
    DUPLICATED = "duplicated"
    """``seq`` repeats or goes back to a record already seen (e.g. two writers on one chain)."""
    BROKEN_LINK = "broken_link"
    """``seq`` follows on, but ``prev_hash`` is not the previous record's hash (a forged or
    re-hashed record, or a chain spliced from two)."""
    BAD_START = "bad_start"
    """The first record has ``seq`` 0 but a non-zero ``prev_hash`` (a forged start)."""
    MISPLACED = "misplaced"
    """A format-2 record is not in the audit partition its chain is placed in, or its chain has
    records in two audit partitions (copied, or written with another placement)."""
    BAD_SNAPSHOT = "bad_snapshot"
    """A placement record whose snapshot content does not hash to its ``snapshot_sha256``, or is not
    a JSON object (written wrong: its chain hash holds)."""
    SNAPSHOT_MISSING = "snapshot_missing"
    """A decision references a placement snapshot that no placement record earlier in its chain holds."""
    RESIDENCY_VIOLATION = "residency_violation"
    """In the snapshot a decision references, a replica of its destination partition sits on a broker
    whose recorded jurisdiction is not the destination's (or the snapshot does not list the partition)."""


@dataclass(frozen=True, slots=True)
class ChainBreak:
    partition: int
    offset: int
    kind: BreakKind
    detail: str
    seq: int | None = None
    """The ``seq`` the broken record claims (None if it did not decode)."""
    chain: ChainId | None = None
    """The chain the record belongs to (format 1: ``(None, partition)``)."""

    def describe(self) -> str:
        where = f"partition {self.partition} offset {self.offset}: {self.kind.value}: {self.detail}"
        if self.chain is not None and self.chain.source_topic is not None:
            return f"{where} (chain {self.chain.describe()})"
        return where


@dataclass(frozen=True, slots=True)
class ChainReport:
    chain: ChainId
    partition: int
    """The audit partition the chain's records are in (its first record's, if several)."""
    records: int
    first_offset: int | None
    last_offset: int | None
    tail: ChainTail | None
    """The last record of the intact prefix (the whole chain if ``broken`` is None)."""
    broken: ChainBreak | None = None
    format_version: int | None = None
    """The format of the chain's first decoded record, 1 to 4 (None if none decoded)."""
    replay: bool = False
    """A replay chain (``quarantine replay``'s decisions, with replay links)."""
    placement_records: int = 0
    """Placement records verified (format 4)."""
    referenced: int = 0
    """Decisions verified against the snapshot they reference (residency proved from the trail)."""
    unreferenced: int = 0
    """Decisions verified without a snapshot reference (formats 1-3, or written without one): their
    residency is not provable from the trail; not a failure."""
    unavailable: int = 0
    """With ``allow_head_truncation``: decisions whose snapshot was in the removed head (unchecked)."""


def _order(chain: ChainId) -> tuple[int, str, int]:
    return (0, "", chain.partition) if chain.source_topic is None else (1, chain.source_topic, chain.partition)


@dataclass(frozen=True, slots=True)
class VerifyReport:
    chains: Mapping[ChainId, ChainReport]
    partition_records: Mapping[int, int] = field(default_factory=lambda: MappingProxyType({}))
    """Records read per audit partition."""

    @property
    def ok(self) -> bool:
        return all(c.broken is None for c in self.chains.values())

    @property
    def breaks(self) -> list[ChainBreak]:
        found = [c.broken for c in self.chains.values() if c.broken is not None]
        return sorted(found, key=lambda b: (b.partition, b.offset))

    @property
    def records(self) -> int:
        return sum(self.partition_records.values())

    def sorted_chains(self) -> list[ChainReport]:
        """Chain reports, format-1 chains first (by audit partition), then by source."""
        return [self.chains[c] for c in sorted(self.chains, key=_order)]

    def tails(self) -> dict[ChainId, ChainTail | None]:
        """Each chain's verified tail: record these elsewhere to anchor later verifications."""
        return {r.chain: r.tail for r in self.sorted_chains()}


@dataclass(slots=True)
class _Walk:
    chain: ChainId
    partition: int
    records: int = 0
    first_offset: int | None = None
    last_offset: int | None = None
    tail: ChainTail | None = None
    broken: ChainBreak | None = None
    pending_gap: tuple[int, int, int] | None = None
    """(offset, claimed seq, expected seq) of a forward jump, classified once the chain ends."""
    seen_seqs: set[int] = field(default_factory=set)
    format_version: int | None = None
    truncated: bool = False
    """The chain was taken to start at a record after seq 0 (``allow_head_truncation``)."""
    replay: bool = False
    snapshots: dict[bytes, PlacementSnapshot] = field(default_factory=dict)
    placement_records: int = 0
    referenced: int = 0
    unreferenced: int = 0
    unavailable: int = 0

    def at(self, offset: int, kind: BreakKind, detail: str, seq: int | None) -> ChainBreak:
        return ChainBreak(self.partition, offset, kind, detail, seq, self.chain)


def residency_problem(rec: AuditRecord, snapshot: PlacementSnapshot) -> str | None:
    """Why ``snapshot`` does not prove that ``rec``'s output sat in its destination's jurisdiction,
    or None when it does (or nothing was written). Every replica of the destination partition (of
    every partition, if the record names none) must be on a broker whose recorded jurisdiction is
    ``destination_jurisdiction``. Names topics, partitions, brokers and jurisdictions only."""
    f = rec.fields
    if f.decision == "audit_only" or not f.destination_topic:
        return None
    j = f.destination_jurisdiction
    if j is None:
        return f"seq {rec.seq}: references a snapshot but records no destination jurisdiction"
    if f.destination_partition is not None:
        partitions = [f.destination_partition]
    else:
        topic = snapshot.parsed().get("topics", {}).get(f.destination_topic, {})
        partitions = sorted(int(p) for p in topic.get("partitions", {})) if isinstance(topic, dict) else []
        if not partitions:
            return f"seq {rec.seq}: snapshot lists no partition of {f.destination_topic}"
    for partition in partitions:
        replicas = snapshot.replicas(f.destination_topic, partition)
        if not replicas:
            return f"seq {rec.seq}: snapshot lists no replica of {f.destination_topic}[{partition}]"
        for broker in replicas:
            where = snapshot.broker_jurisdiction(broker)
            if where != j:
                return (f"seq {rec.seq}: {f.destination_topic}[{partition}] has a replica on broker {broker} "
                        f"(jurisdiction {where or 'none'}), outside {j}")
    return None


def _check_placement(w: _Walk, offset: int, rec: PlacementRecord) -> ChainBreak | None:
    """A placement record's content: it hashes to its ``snapshot_sha256`` and is a JSON object."""
    snap = rec.snapshot
    if snap.sha256 != rec.snapshot_sha256:
        return w.at(offset, BreakKind.BAD_SNAPSHOT, f"seq {rec.seq}: the snapshot does not hash to its "
                    "snapshot_sha256", rec.seq)
    try:
        snap.parsed()
    except AuditDecodeError as err:
        return w.at(offset, BreakKind.BAD_SNAPSHOT, f"seq {rec.seq}: {err}", rec.seq)
    w.snapshots[snap.sha256] = snap
    w.placement_records += 1
    return None


def _check_snapshots(w: _Walk, offset: int, rec: AuditEntry) -> ChainBreak | None:
    """The placement checks of an intact link: a placement record's content; a decision's reference."""
    if isinstance(rec, PlacementRecord):
        return _check_placement(w, offset, rec)
    ref = rec.fields.placement_snapshot
    if ref is None:
        w.unreferenced += 1
        return None
    snap = w.snapshots.get(ref)
    if snap is None:
        if w.truncated:
            w.unavailable += 1
            return None
        return w.at(offset, BreakKind.SNAPSHOT_MISSING, f"seq {rec.seq}: references placement snapshot "
                    f"{ref.hex()[:16]}, which no earlier placement record of the chain holds", rec.seq)
    problem = residency_problem(rec, snap)
    if problem is not None:
        return w.at(offset, BreakKind.RESIDENCY_VIOLATION, f"{problem} (snapshot {ref.hex()[:16]})", rec.seq)
    w.referenced += 1
    return None


def _check(w: _Walk, partition: int, offset: int, rec: AuditEntry, data: bytes, *,
           allow_head_truncation: bool) -> ChainBreak | None:
    if chain_hash(rec.prev_hash, canonical_bytes(data)) != stored_hash(data):
        return w.at(offset, BreakKind.EDITED, f"seq {rec.seq}: hash does not match the record", rec.seq)
    placed = rec.placed_in()
    if placed is not None and placed != partition:
        return ChainBreak(partition, offset, BreakKind.MISPLACED,
                          f"seq {rec.seq}: its chain is placed in audit partition {placed} "
                          f"(over {rec.audit_partitions} partitions)", rec.seq, w.chain)
    if partition != w.partition:
        return ChainBreak(partition, offset, BreakKind.MISPLACED,
                          f"seq {rec.seq}: the chain's earlier records are in audit partition {w.partition}",
                          rec.seq, w.chain)
    expected = 0 if w.tail is None else w.tail.seq + 1
    broken: ChainBreak | None = None
    if w.tail is None and allow_head_truncation:
        w.truncated = rec.seq > 0  # the first record seen starts the chain
    elif rec.seq < expected:
        broken = w.at(offset, BreakKind.DUPLICATED, f"seq {rec.seq} after seq {expected - 1}", rec.seq)
    elif rec.seq > expected:
        w.pending_gap = (offset, rec.seq, expected)  # deleted or reordered: the rest of the chain tells
        return None
    elif w.tail is None and rec.prev_hash != ZERO_HASH:
        broken = w.at(offset, BreakKind.BAD_START,
                      "seq 0 has a non-zero prev_hash: it continues a chain that is not here", rec.seq)
    elif w.tail is not None and rec.prev_hash != w.tail.hash:
        broken = w.at(offset, BreakKind.BROKEN_LINK, f"seq {rec.seq}: prev_hash is not the hash of seq {expected - 1}",
                      rec.seq)
    if broken is None:
        broken = _check_snapshots(w, offset, rec)
    if broken is None:
        w.tail = ChainTail(rec.seq, rec.hash)
    return broken


def _note(w: _Walk, rec: AuditEntry) -> None:
    if w.format_version is None:
        w.format_version = rec.format_version
    if rec.replay is not None:
        w.replay = True


def verify_chain(records: Iterable[tuple[int, int, bytes]], *, allow_head_truncation: bool = False) -> VerifyReport:
    """Verify the chains in ``records`` = ``(partition, offset, bytes)``, each partition in offset order.

    Partitions may be interleaved. Records are grouped by chain (format 2: their source; format 1:
    their audit partition); reports, per chain, the first break (with its partition, offset and
    kind) and the intact tail before it; records of a chain after its break are counted, not
    checked. An undecodable record breaks the format-1 chain of its audit partition (its own chain
    cannot be known).

    A chain must start at ``seq`` 0 unless ``allow_head_truncation`` (for topics whose retention
    has deleted old records): then the first record of each chain is taken as the start, and only
    its own hash is checked.
    """
    walks: dict[ChainId, _Walk] = {}
    per_partition: dict[int, int] = {}
    for partition, offset, data in records:
        per_partition[partition] = per_partition.get(partition, 0) + 1
        try:
            rec: AuditEntry | None = decode_entry(data)
        except AuditDecodeError as err:
            rec, undecodable = None, str(err)
        chain = rec.chain(partition) if rec is not None else ChainId(None, partition)
        w = walks.get(chain)
        if w is None:
            w = walks[chain] = _Walk(chain, partition)
        w.records += 1
        if w.first_offset is None:
            w.first_offset = offset
        w.last_offset = offset
        if rec is not None:
            _note(w, rec)
        if w.broken is not None:
            continue
        if rec is None:
            w.broken = ChainBreak(partition, offset, BreakKind.UNDECODABLE, undecodable, None, chain)
            continue
        if w.pending_gap is not None:
            w.seen_seqs.add(rec.seq)  # after a forward jump, look for the missing seqs later in the chain
            continue
        w.broken = _check(w, partition, offset, rec, data, allow_head_truncation=allow_head_truncation)
    out: dict[ChainId, ChainReport] = {}
    for chain, w in walks.items():
        broken = w.broken
        if broken is None and w.pending_gap is not None:
            offset, claimed, expected = w.pending_gap
            missing = set(range(expected, claimed))
            if missing & w.seen_seqs:
                broken = w.at(offset, BreakKind.REORDERED,
                              f"seq {claimed} where seq {expected} was expected; seq {expected} comes later", claimed)
            else:
                lost = f"seq {expected}" if claimed == expected + 1 else f"seqs {expected}..{claimed - 1}"
                broken = w.at(offset, BreakKind.DELETED,
                              f"seq {claimed} where seq {expected} was expected; {lost} missing", claimed)
        out[chain] = ChainReport(chain, w.partition, w.records, w.first_offset, w.last_offset, w.tail, broken,
                                 w.format_version, w.replay, w.placement_records, w.referenced, w.unreferenced,
                                 w.unavailable)
    return VerifyReport(MappingProxyType(out), MappingProxyType(dict(sorted(per_partition.items()))))
