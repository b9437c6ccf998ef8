"""The record of an operator's access to a quarantined payload (``quarantine show --decrypt``).

Viewing a quarantine record's metadata and exporting its original data are different acts: the
second discloses event data, so it leaves evidence in the audit topic *before* any plaintext is
printed. An access record says who (the OS user, and the ``--actor`` the operator names), when,
from which host, and which record (quarantine topic, partition, offset; its source position,
reason and keyed payload digest). It never holds a value of the event.

It is a record kind of its own, not a link of an audit hash chain: a chain has exactly one writer
(the router instance that owns the source partition), and an operator's command is not it.
Encoding: :data:`ACCESS_MAGIC` (4 bytes that no audit record starts with: an audit record's first
byte is its Avro format version, ``0x02`` or ``0x04``), then canonical JSON (UTF-8, sorted keys).
Every access record is produced with the Kafka key :data:`ACCESS_KEY` (so they share one audit
partition, in order) and the header ``rr-record-kind: quarantine-access``.

Pure except :func:`write_access`, which imports the Kafka client when called.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from router.errors import RouterError

ACCESS_MAGIC = b"RRQA"
"""First bytes of every access record (``R`` = 0x52, which no supported audit format version
encodes to)."""
ACCESS_FORMAT_VERSION = 1
ACCESS_KEY = b"quarantine-access"
KIND_HEADER = ("rr-record-kind", b"quarantine-access")


class AccessRecordError(RouterError):
    """An access record could not be written (nothing was disclosed) or does not decode."""


@dataclass(frozen=True, slots=True)
class AccessRecord:
    """One disclosure of a quarantined payload. Every field is metadata."""

    action: str
    """``decrypt``: the original payload was opened and printed."""
    accessed_at_ms: int
    os_user: str
    actor: str | None
    """Who the operator says they act for (``--actor``), free text; None when not given."""
    host: str
    jurisdiction: str
    quarantine_topic: str
    quarantine_partition: int
    quarantine_offset: int
    source_topic: str
    source_partition: int
    source_offset: int
    reason: str
    event_id: str | None
    payload_digest: str
    """The quarantine record's keyed payload digest (``hmac-sha256:<jurisdiction>:<hex>``)."""
    router_version: str
    format_version: int = ACCESS_FORMAT_VERSION


def os_user() -> str:
    """The OS user running the command (login name, else ``uid:<n>``)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid:{os.getuid()}"


def host_name() -> str:
    return socket.gethostname()


def encode_access(rec: AccessRecord) -> bytes:
    return ACCESS_MAGIC + json.dumps(asdict(rec), sort_keys=True, separators=(",", ":")).encode("utf-8")


def is_access_record(value: bytes | None) -> bool:
    """True for bytes written by :func:`encode_access` (what an audit reader skips or lists
    separately instead of verifying as a chain link)."""
    return bool(value) and value.startswith(ACCESS_MAGIC)  # type: ignore[union-attr]


def decode_access(value: bytes) -> AccessRecord:
    if not is_access_record(value):
        raise AccessRecordError("not a quarantine access record (wrong leading bytes)")
    try:
        doc = json.loads(value[len(ACCESS_MAGIC):].decode("utf-8"))
        if doc.get("format_version") != ACCESS_FORMAT_VERSION:
            raise AccessRecordError(f"access record format {doc.get('format_version')!r} is not supported")
        return AccessRecord(**doc)
    except (ValueError, TypeError, AttributeError) as err:
        raise AccessRecordError(f"malformed access record: {type(err).__name__}") from None


def write_access(producer_config: Mapping[str, Any], audit_topic: str, rec: AccessRecord, *,
                 timeout: float = 30.0) -> tuple[int, int]:
    """Produce ``rec`` to ``audit_topic`` and wait for the broker's acknowledgement (acks=all,
    idempotent). Returns its ``(partition, offset)``. Raises :class:`AccessRecordError` when it was
    not acknowledged: the caller must then disclose nothing."""
    from confluent_kafka import KafkaException, Producer  # noqa: PLC0415 - pure callers need no client

    conf: dict[str, Any] = {**producer_config, "enable.idempotence": True, "acks": "all"}
    for key in ("group.id", "isolation.level", "enable.auto.commit", "auto.offset.reset", "enable.partition.eof"):
        conf.pop(key, None)  # consumer-only settings of a shared client section
    result: dict[str, Any] = {}

    def delivered(err: Any, msg: Any) -> None:
        result["error"] = err
        if err is None:
            result["position"] = (msg.partition(), msg.offset())

    try:
        producer = Producer(conf)
        producer.produce(audit_topic, encode_access(rec), ACCESS_KEY, headers=[KIND_HEADER], on_delivery=delivered)
        remaining = producer.flush(timeout)
    except (KafkaException, BufferError) as err:
        raise AccessRecordError(f"could not write the access record to audit topic {audit_topic!r}: {err}") from None
    if remaining or "error" not in result:
        raise AccessRecordError(f"the access record was not acknowledged by audit topic {audit_topic!r} within "
                                f"{timeout:.0f} s; nothing was disclosed")
    if result["error"] is not None:
        raise AccessRecordError(f"audit topic {audit_topic!r} refused the access record: {result['error'].str()}; "
                                "nothing was disclosed")
    partition, offset = result["position"]
    return int(partition), int(offset)
