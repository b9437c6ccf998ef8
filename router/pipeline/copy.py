"""A processor that copies each record unchanged to one topic: the benchmark baseline and the
engine's own test subject. It does no decoding, classification or crypto."""

from __future__ import annotations

from collections.abc import Sequence

from confluent_kafka import Message, TopicPartition

from router.pipeline.engine import OutRecord


class CopyProcessor:
    """Copies key, value and headers of every record to ``topic``, keeping the source partition."""

    def __init__(self, topic: str, *, keep_partition: bool = True) -> None:
        self.topic = topic
        self.keep_partition = keep_partition

    def process(self, msgs: Sequence[Message]) -> list[OutRecord]:
        topic, keep = self.topic, self.keep_partition
        return [
            OutRecord(topic, m.value(), m.key(), m.partition() if keep else -1, m.headers())  # type: ignore[arg-type]
            for m in msgs
        ]

    def checkpoint(self) -> object:
        return None

    def rollback(self, state: object) -> None:
        return None

    def on_assign(self, partitions: Sequence[TopicPartition]) -> None:
        return None
