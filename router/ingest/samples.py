"""Moved: the sample generator lives in :mod:`router.devtools.samples` (a development tool, not part
of what ``run`` or ``simulate`` import) and the shipped schema store in
:func:`router.ingest.schema_store.default_schema_store`. This module re-exports both for existing
tests and scripts; new code imports them from their homes.
"""

from router.devtools.samples import (
    ENTITIES,
    FORMATS,
    SampleRecord,
    generate,
    make_iban,
    make_national_id,
    make_phone,
    make_vat,
    read_jsonl,
    write_jsonl,
)
from router.ingest.schema_store import default_schema_store

__all__ = [
    "ENTITIES",
    "FORMATS",
    "SampleRecord",
    "default_schema_store",
    "generate",
    "make_iban",
    "make_national_id",
    "make_phone",
    "make_vat",
    "read_jsonl",
    "write_jsonl",
]
