"""Decoders from connector formats to :class:`router.ingest.event.ChangeEvent`."""

from router.ingest.event import ChangeEvent, Operation, RawRecord, SourceSystem

__all__ = ["ChangeEvent", "Operation", "RawRecord", "SourceSystem"]
