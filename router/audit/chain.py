"""The audit hash chain: appending records, checkpoint/rollback around transactions, verification.

Pure: no Kafka import. Each audit partition carries its own chain; ``seq`` starts at 0 and grows
by one per record, and each record's ``prev_hash`` is the previous record's ``hash`` (see
:mod:`router.audit.record` for the hash definition).

How the pipeline uses :class:`AuditChain`:

1. after a partition assignment, for each audit partition it will write to, read the committed
   tail with :func:`router.audit.kafka.read_chain_tail` and pass it to :meth:`AuditChain.set_tail`
   (``None`` for an empty partition);
2. after each transaction commit, take :meth:`AuditChain.checkpoint`;
3. per event, :meth:`AuditChain.append` the audit fields and produce the returned bytes to that
   audit partition inside the transaction;
4. on abort, :meth:`AuditChain.rollback` to the last checkpoint before reprocessing, so that the
   records written again continue the chain from the last *committed* record (aborted records are
   invisible to ``read_committed`` readers and to verification).

What verification proves and does not: an edited, deleted (except at the tail), reordered,
duplicated or undecodable record breaks the chain at a named offset. A deleted *tail*, or a
chain rewritten consistently from some record on, is only detectable against an external anchor
(a (seq, hash) recorded elsewhere, e.g. by :meth:`VerifyReport.tails`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import NamedTuple

from router.audit.record import (
    HASH_SIZE,
    ZERO_HASH,
    AuditDecodeError,
    AuditFields,
    AuditRecord,
    canonical_bytes,
    chain_hash,
    decode_audit,
    encode_audit,
    stored_hash,
)


class ChainTail(NamedTuple):
    """The last record of a chain: its ``seq`` and ``hash`` (unpacks as ``seq, hash``)."""

    seq: int
    hash: bytes


@dataclass(frozen=True, slots=True)
class ChainState:
    """An immutable copy of every partition's tail, from :meth:`AuditChain.checkpoint`."""

    tails: Mapping[int, ChainTail] = field(default_factory=lambda: MappingProxyType({}))


class AuditChain:
    """Per-audit-partition chain state, and the encoder of chained audit records.

    Not thread-safe: one pipeline thread owns it. A partition with no known tail starts at
    ``seq`` 0; the pipeline must therefore :meth:`set_tail` (or :meth:`resume`) every partition
    it writes to before the first :meth:`append`, or it would fork an existing chain.
    """

    __slots__ = ("_tails",)

    def __init__(self, state: ChainState | None = None) -> None:
        self._tails: dict[int, ChainTail] = dict(state.tails) if state is not None else {}

    def append(self, partition: int, fields: AuditFields) -> bytes:
        """Chain ``fields`` onto ``partition``'s tail; returns the record bytes to produce."""
        tail = self._tails.get(partition)
        if tail is None:
            seq, prev = 0, ZERO_HASH
        else:
            seq, prev = tail.seq + 1, tail.hash
        data, digest = encode_audit(seq, prev, fields)
        self._tails[partition] = ChainTail(seq, digest)
        return data

    def set_tail(self, partition: int, tail: ChainTail | tuple[int, bytes] | None) -> None:
        """Continue ``partition`` after ``tail`` (as from ``read_chain_tail``); ``None``: start at 0."""
        if tail is None:
            self._tails.pop(partition, None)
        else:
            seq, digest = tail
            if seq < 0 or len(digest) != HASH_SIZE:
                raise ValueError(f"a chain tail needs seq >= 0 and a {HASH_SIZE}-byte hash")
            self._tails[partition] = ChainTail(seq, digest)

    def resume(self, partition: int, last_record: bytes) -> ChainTail:
        """Continue ``partition`` after ``last_record`` (the bytes of its last committed record).

        The record's own hash is checked first, so a damaged tail is not silently extended.
        Raises :class:`router.audit.record.AuditDecodeError` if it does not decode or verify.
        """
        rec = decode_audit(last_record)
        if chain_hash(rec.prev_hash, canonical_bytes(last_record)) != rec.hash:
            raise AuditDecodeError(f"the audit record with seq {rec.seq} fails its own hash; refusing to extend it")
        tail = ChainTail(rec.seq, rec.hash)
        self._tails[partition] = tail
        return tail

    def forget(self, partition: int) -> None:
        """Drop a partition's state (after it was revoked); it must be set again before use."""
        self._tails.pop(partition, None)

    def tail(self, partition: int) -> ChainTail | None:
        """The last appended record of ``partition``, or None if nothing is known."""
        return self._tails.get(partition)

    def checkpoint(self) -> ChainState:
        """An immutable copy of the current state (take it right after a commit)."""
        return ChainState(MappingProxyType(dict(self._tails)))

    def rollback(self, state: ChainState) -> None:
        """Return to ``state`` (after an abort): later appends continue from there."""
        self._tails = dict(state.tails)


# -- verification ------------------------------------------------------------------------------


class BreakKind(StrEnum):
    """How a chain is broken, at the first record where it is."""

    UNDECODABLE = "undecodable"
    """The bytes are not an audit record of a supported format."""
    EDITED = "edited"
    """The record's hash does not match its contents: it was changed after it was written."""
    DELETED = "deleted"
    """``seq`` jumps forward (or the first record is not ``seq`` 0) and the missing records are
    nowhere later: records were removed."""
    REORDERED = "reordered"
    """``seq`` is out of order and the expected record appears later in the partition."""
    DUPLICATED = "duplicated"
    """``seq`` repeats or goes back to a record already seen."""
    BROKEN_LINK = "broken_link"
    """``seq`` follows on, but ``prev_hash`` is not the previous record's hash (a forged or
    re-hashed record, or a chain spliced from two)."""
    BAD_START = "bad_start"
    """The first record has ``seq`` 0 but a non-zero ``prev_hash`` (a forged start)."""


@dataclass(frozen=True, slots=True)
class ChainBreak:
    partition: int
    offset: int
    kind: BreakKind
    detail: str
    seq: int | None = None
    """The ``seq`` the broken record claims (None if it did not decode)."""

    def describe(self) -> str:
        return f"partition {self.partition} offset {self.offset}: {self.kind.value}: {self.detail}"


@dataclass(frozen=True, slots=True)
class PartitionReport:
    partition: int
    records: int
    first_offset: int | None
    last_offset: int | None
    tail: ChainTail | None
    """The last record of the intact prefix (the whole partition if ``broken`` is None)."""
    broken: ChainBreak | None = None


@dataclass(frozen=True, slots=True)
class VerifyReport:
    partitions: Mapping[int, PartitionReport]

    @property
    def ok(self) -> bool:
        return all(p.broken is None for p in self.partitions.values())

    @property
    def breaks(self) -> list[ChainBreak]:
        return [p.broken for _, p in sorted(self.partitions.items()) if p.broken is not None]

    @property
    def records(self) -> int:
        return sum(p.records for p in self.partitions.values())

    def tails(self) -> dict[int, ChainTail | None]:
        """Each partition's verified tail: record these elsewhere to anchor later verifications."""
        return {n: p.tail for n, p in sorted(self.partitions.items())}


@dataclass(slots=True)
class _Walk:
    partition: int
    records: int = 0
    first_offset: int | None = None
    last_offset: int | None = None
    tail: ChainTail | None = None
    broken: ChainBreak | None = None
    pending_gap: tuple[int, int, int] | None = None
    """(offset, claimed seq, expected seq) of a forward jump, classified once the partition ends."""
    seen_seqs: set[int] = field(default_factory=set)


def _decode_checked(w: _Walk, offset: int, data: bytes) -> AuditRecord | ChainBreak:
    """The record, if it decodes and its hash matches its bytes."""
    try:
        rec = decode_audit(data)
    except AuditDecodeError as err:
        return ChainBreak(w.partition, offset, BreakKind.UNDECODABLE, str(err))
    if chain_hash(rec.prev_hash, canonical_bytes(data)) != stored_hash(data):
        return ChainBreak(w.partition, offset, BreakKind.EDITED, f"seq {rec.seq}: hash does not match the record",
                          rec.seq)
    return rec


def _check(w: _Walk, offset: int, data: bytes, allow_head_truncation: bool) -> ChainBreak | None:
    rec = _decode_checked(w, offset, data)
    if isinstance(rec, ChainBreak):
        return rec
    expected = 0 if w.tail is None else w.tail.seq + 1
    broken: ChainBreak | None = None
    if w.tail is None and allow_head_truncation:
        pass  # the first record seen starts the chain
    elif rec.seq < expected:
        broken = ChainBreak(w.partition, offset, BreakKind.DUPLICATED, f"seq {rec.seq} after seq {expected - 1}",
                            rec.seq)
    elif rec.seq > expected:
        w.pending_gap = (offset, rec.seq, expected)  # deleted or reordered: the rest of the partition tells
        return None
    elif w.tail is None and rec.prev_hash != ZERO_HASH:
        broken = ChainBreak(w.partition, offset, BreakKind.BAD_START,
                            "seq 0 has a non-zero prev_hash: it continues a chain that is not here", rec.seq)
    elif w.tail is not None and rec.prev_hash != w.tail.hash:
        broken = ChainBreak(w.partition, offset, BreakKind.BROKEN_LINK,
                            f"seq {rec.seq}: prev_hash is not the hash of seq {expected - 1}", rec.seq)
    if broken is None:
        w.tail = ChainTail(rec.seq, rec.hash)
    return broken


def verify_chain(records: Iterable[tuple[int, int, bytes]], *, allow_head_truncation: bool = False) -> VerifyReport:
    """Verify the chains in ``records`` = ``(partition, offset, bytes)``, each partition in offset order.

    Partitions may be interleaved. Reports, per partition, the first break (with its offset and
    kind) and the intact tail before it; records after a break are counted, not checked.

    A chain must start at ``seq`` 0 unless ``allow_head_truncation`` (for topics whose retention
    has deleted old records): then the first record of each partition is taken as the start, and
    only its own hash is checked.
    """
    walks: dict[int, _Walk] = {}
    for partition, offset, data in records:
        w = walks.get(partition)
        if w is None:
            w = walks[partition] = _Walk(partition)
        w.records += 1
        if w.first_offset is None:
            w.first_offset = offset
        w.last_offset = offset
        if w.broken is not None:
            continue
        if w.pending_gap is not None:
            # After a forward jump, look for the missing seqs later in the partition.
            with contextlib.suppress(AuditDecodeError):
                w.seen_seqs.add(decode_audit(data).seq)
            continue
        w.broken = _check(w, offset, data, allow_head_truncation)
    out: dict[int, PartitionReport] = {}
    for n, w in sorted(walks.items()):
        broken = w.broken
        if broken is None and w.pending_gap is not None:
            offset, claimed, expected = w.pending_gap
            missing = set(range(expected, claimed))
            if missing & w.seen_seqs:
                broken = ChainBreak(n, offset, BreakKind.REORDERED,
                                    f"seq {claimed} where seq {expected} was expected; seq {expected} comes later",
                                    claimed)
            else:
                lost = f"seq {expected}" if claimed == expected + 1 else f"seqs {expected}..{claimed - 1}"
                broken = ChainBreak(n, offset, BreakKind.DELETED,
                                    f"seq {claimed} where seq {expected} was expected; {lost} missing", claimed)
        out[n] = PartitionReport(n, w.records, w.first_offset, w.last_offset, w.tail, broken)
    return VerifyReport(MappingProxyType(out))
