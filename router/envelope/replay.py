"""Refuse an authentic record produced into its partition a second time (frame version 2).

A version-2 writer seals at most one record per source position (source topic, source partition,
source offset): the router writes exactly one routed-or-quarantine record per ingress record, and
an ingress partition has one transactional writer at a time, so within one destination partition
the records of one source carry strictly increasing source offsets. That position is signed (and
in the AEAD's associated data), so it is the record's sequence without any counter of the
router's own: unique across router instances and restarts, monotonic per source.

:class:`ReplayGuard` remembers, per (topic, partition) read, the sequences of the records it
accepted at most ``window`` offsets before the record being checked, and refuses

* ``DUPLICATE``: a sequence already accepted at another offset of the partition;
* ``OUT_OF_ORDER`` (only with ``refuse_out_of_order=True``): a source offset lower than the newest
  one of the same source accepted in the window (a stale record produced again after newer ones).
  Off by default because ``quarantine replay`` legitimately writes a record long after newer
  records of its source: it is sealed with its original source position.

The same record read again at its own offset (a consumer rewind, a rebalance, at-least-once
redelivery) is not a replay and is accepted again. Moving a record to another topic or partition
is refused earlier by the opener (``WrongTopic`` / ``WrongPartition``). Limits: a record replayed
more than ``window`` offsets after the newest record of its source is not detected (offsets, not
records: transaction markers take offsets too); the state is
in memory (a new reader process, or another consumer of the group, starts empty); when a source's
offsets restart (an ingress topic deleted and re-created under the same name), its new records
collide with old ones (``DUPLICATE``; every one of them ``OUT_OF_ORDER`` when that is on) until the
old ones are more than ``window`` offsets back. Version 1 records are not
checked (:attr:`OpenedRecord.replay_protected` is False). Not thread-safe: one guard per consumer.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from router.envelope.context import OpenedRecord
from router.envelope.errors import MalformedEnvelope, Replayed, ReplayReason

__all__ = ["DEFAULT_WINDOW", "ReplayGuard"]

DEFAULT_WINDOW = 10_000
"""Offsets per partition the guard looks back (memory: about 200 bytes per accepted record)."""

Source = tuple[str, int]
Sequence_ = tuple[str, int, int]


@dataclass(slots=True)
class _Partition:
    entries: deque[tuple[int, Sequence_]] = field(default_factory=deque)
    """(offset, sequence) of accepted records, oldest first (offsets increase)."""
    at: dict[Sequence_, int] = field(default_factory=dict)
    """Sequence -> the offset it was accepted at (the entries, indexed)."""
    newest: dict[Source, int] = field(default_factory=dict)
    """Source -> its highest source offset among the entries (always its latest entry); kept only
    when out-of-order records are refused."""
    high: int = -1
    """The highest offset checked so far (accepted or refused)."""


class ReplayGuard:
    """Per-partition replay check over a window of ``window`` offsets (see the module text)."""

    def __init__(self, window: int = DEFAULT_WINDOW, *, refuse_out_of_order: bool = False) -> None:
        if not 1 <= window <= 10_000_000:
            raise MalformedEnvelope("replay_window must be in 1..10000000 offsets")
        self.window = window
        self.refuse_out_of_order = refuse_out_of_order
        self._parts: dict[tuple[str, int], _Partition] = {}

    def __repr__(self) -> str:
        return f"ReplayGuard(window={self.window}, refuse_out_of_order={self.refuse_out_of_order})"

    def check(self, topic: str, partition: int, offset: int, record: OpenedRecord) -> None:
        """Accept ``record`` (read at ``topic``/``partition``/``offset``) or raise :class:`Replayed`.

        Call it only for records that opened (authentic, sealed for this topic and partition):
        an unverified sequence must not enter the window.
        """
        if not record.replay_protected:
            return
        ctx = record.ctx
        seq = (ctx.source_topic, ctx.source_partition, ctx.source_offset)
        part = self._parts.get((topic, partition))
        if part is None:
            part = self._parts[(topic, partition)] = _Partition()
        if offset <= part.high:
            self._check_again(part, offset, seq, topic, partition)
            return
        part.high = offset
        entries = part.entries
        floor = offset - self.window
        while entries and entries[0][0] < floor:
            _, old = entries.popleft()
            del part.at[old]
            source = (old[0], old[1])
            if part.newest.get(source) == old[2]:
                del part.newest[source]
        first = part.at.get(seq)
        if first is not None:
            raise self._refused(ReplayReason.DUPLICATE, f"source position already delivered at offset {first}",
                                topic, partition, offset)
        newest = part.newest.get((seq[0], seq[1]))
        if newest is not None and seq[2] < newest:
            raise self._refused(ReplayReason.OUT_OF_ORDER,
                                f"source offset {seq[2]} after {newest} of the same source", topic, partition, offset)
        entries.append((offset, seq))
        part.at[seq] = offset
        if self.refuse_out_of_order:  # then a source's accepted offsets only grow: the latest is the newest
            part.newest[(seq[0], seq[1])] = seq[2]

    def _check_again(self, part: _Partition, offset: int, seq: Sequence_, topic: str, partition: int) -> None:
        """A record at or below the highest offset checked: read again after a seek back. The
        same verdict as the first time, judged against the entries before it; nothing changes."""
        if part.at.get(seq) == offset:
            return  # accepted at this very offset before: a redelivery
        floor = offset - self.window
        for at, other in part.entries:
            if at >= offset:
                break
            if at < floor or other[:2] != seq[:2]:
                continue
            if other[2] == seq[2]:
                raise self._refused(ReplayReason.DUPLICATE, f"source position already delivered at offset {at}",
                                    topic, partition, offset)
            if other[2] > seq[2] and self.refuse_out_of_order:
                raise self._refused(ReplayReason.OUT_OF_ORDER,
                                    f"source offset {seq[2]} after {other[2]} of the same source",
                                    topic, partition, offset)

    @staticmethod
    def _refused(reason: ReplayReason, detail: str, topic: str, partition: int, offset: int) -> Replayed:
        return Replayed(reason, detail, topic=topic, partition=partition, offset=offset)

    def forget(self, topic: str, partition: int) -> None:
        """Drop a partition's state (e.g. when it is revoked from this reader)."""
        self._parts.pop((topic, partition), None)
