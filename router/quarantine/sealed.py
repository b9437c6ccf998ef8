"""Opening a quarantine record's sealed original: one code path for ``quarantine show --decrypt``
and ``quarantine replay``.

A quarantine record in ``quarantine.<J>`` carries the original ingress bytes sealed for that topic,
the record's partition and jurisdiction J (:mod:`router.envelope`), or no copy at all when the
original was too large (``OVERSIZED``: it stays in the ingress topic). Opening verifies the
signature and the binding to (topic, partition, J) before anything is decrypted; plaintext is only
returned, never logged. The errors name the setting to check, never a value.
"""

from __future__ import annotations

from typing import Any

from router.envelope import EnvelopeError, Opener
from router.quarantine.reader import QuarantineReadError
from router.quarantine.record import QuarantineRecord


class PayloadNotKept(QuarantineReadError):
    """The record holds no copy of the original (``OVERSIZED``): it is in the ingress topic."""


class CannotOpen(QuarantineReadError):
    """The jurisdiction's key cannot open the sealed copy (another jurisdiction's key, a KEK the
    config does not name, a record sealed for another topic or partition, a tampered record)."""

    def __init__(self, message: str, error: str) -> None:
        super().__init__(message)
        self.error = error
        """The envelope error's type name (e.g. ``WrongJurisdiction``, ``Tampered``)."""


def build_opener(keys_config: Any, public_keys: Any = None) -> Opener:
    """An :class:`Opener` with every configured jurisdiction's key (``keys.jurisdictions``) and
    the signer's public keys (``public_keys``, default: from the config's signer keyring)."""
    from router.keys.factory import build_jurisdiction_keys, build_public_keys  # noqa: PLC0415

    return Opener(build_jurisdiction_keys(keys_config),
                  public_keys if public_keys is not None else build_public_keys(keys_config))


def open_payload(opener: Opener, rec: QuarantineRecord, *, topic: str, partition: int, offset: int,
                 jurisdiction: str) -> bytes:
    """The original bytes of ``rec``, read at ``topic[partition]@offset``, opened with the key of
    ``jurisdiction`` (the quarantine topic's).

    Raises :class:`PayloadNotKept` (no copy), :class:`CannotOpen` (the key cannot open it), and
    lets :class:`router.keys.errors.KeyUnavailable` through (the key provider is down: retry later).
    """
    where = f"{partition}:{offset}"
    if not rec.sealed_payload:
        raise PayloadNotKept(
            f"the record at {where} ({rec.reason}) holds no payload copy; the original stays in the ingress topic "
            f"at {rec.source_topic}[{rec.source_partition}]@{rec.source_offset}"
        )
    try:
        opened = opener.open(rec.sealed_payload, list(rec.envelope_headers), topic=topic, partition=partition,
                             expected_jurisdiction=jurisdiction)
    except EnvelopeError as err:
        raise CannotOpen(
            f"the {jurisdiction!r} key (keys.jurisdictions.{jurisdiction}) cannot open the record at {where} of "
            f"{topic}: {type(err).__name__}: {err.detail}",
            type(err).__name__,
        ) from None
    return opened.plaintext
