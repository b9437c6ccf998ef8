"""Decoders from connector formats to :class:`router.ingest.event.ChangeEvent`."""

from router.ingest.errors import DecodeError
from router.ingest.event import ChangeEvent, Operation, RawRecord, SourceSystem
from router.ingest.registry import decoder_for

__all__ = ["ChangeEvent", "DecodeError", "Operation", "RawRecord", "SourceSystem", "decoder_for"]
