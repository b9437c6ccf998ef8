"""Random, truncated and bit-flipped bytes into every decoder raise only DecodeError."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from router.ingest import DecodeError, decoder_for
from router.ingest.samples import default_schema_store, generate

pytestmark = pytest.mark.unit

STORE = default_schema_store()
SAMPLES = list(generate(30, seed=11))
DECODERS = {
    "salesforce-json": decoder_for("salesforce-json"),
    "salesforce-avro": decoder_for("salesforce-avro", schema_store=STORE, schema_id=2),
    "confluent-avro": decoder_for("confluent-avro", schema_store=STORE),
    "debezium-json": decoder_for("debezium-json"),
    "generic-json": decoder_for("generic-json"),
    "auto": decoder_for("auto", schema_store=STORE),
}
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _only_decode_errors(name: str, data: bytes) -> None:
    try:
        DECODERS[name].decode(data, key=b"k")
    except DecodeError as err:
        raw = err.raw
    else:
        return
    assert raw == data or raw is None


@pytest.mark.parametrize("name", sorted(DECODERS))
@FUZZ
@given(data=st.binary(max_size=2048))
def test_random_bytes(name: str, data: bytes) -> None:
    _only_decode_errors(name, data)


@pytest.mark.parametrize("name", sorted(DECODERS))
@FUZZ
@given(i=st.integers(0, len(SAMPLES) - 1), cut=st.floats(0, 1))
def test_truncated_records(name: str, i: int, cut: float) -> None:
    value = SAMPLES[i].value or b""
    _only_decode_errors(name, value[: int(len(value) * cut)])


@pytest.mark.parametrize("name", sorted(DECODERS))
@FUZZ
@given(i=st.integers(0, len(SAMPLES) - 1), bits=st.lists(st.integers(0, 10**6), min_size=1, max_size=8))
def test_bit_flipped_records(name: str, i: int, bits: list[int]) -> None:
    value = bytearray(SAMPLES[i].value or b"\x00")
    for b in bits:
        pos = b % (len(value) * 8)
        value[pos // 8] ^= 1 << (pos % 8)
    _only_decode_errors(name, bytes(value))


_JSON_SAMPLES = [orjson.loads(s.value) for s in SAMPLES if s.value and s.value[:1] == b"{"]
_KEYS = [
    "id",
    "op",
    "payload",
    "after",
    "before",
    "source",
    "table",
    "ChangeEventHeader",
    "data",
    "event",
    "changedFields",
    "recordIds",
    "entityName",
    "changeType",
    "transaction",
    "ddl",
]
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(_KEYS) | st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)


def _replace(doc: object, path: list[int], new: object) -> object:
    """Replace the node reached by following ``path`` (indices into keys/items) with ``new``."""
    if not path or not isinstance(doc, (dict, list)) or not doc:
        return new
    if isinstance(doc, dict):
        k = list(doc)[path[0] % len(doc)]
        return doc | {k: _replace(doc[k], path[1:], new)}
    i = path[0] % len(doc)
    return [*doc[:i], _replace(doc[i], path[1:], new), *doc[i + 1 :]]


@pytest.mark.parametrize("name", sorted(DECODERS))
@FUZZ
@given(
    i=st.integers(0, len(_JSON_SAMPLES) - 1),
    path=st.lists(st.integers(0, 50), max_size=4),
    new=_JSON,
    key=st.sampled_from([None, b'{"id": 1}', b"[]", b'{"payload": 5}', b"\xff"]),
)
def test_structurally_mutated_json(name: str, i: int, path: list[int], new: object, key: bytes | None) -> None:
    """Valid JSON of the wrong shape (a dict where a string belongs, ...) is a DecodeError too."""
    value = orjson.dumps(_replace(_JSON_SAMPLES[i], path, new))
    try:
        DECODERS[name].decode(value, key=key)
    except DecodeError as err:
        raw = err.raw
    else:
        return
    assert raw == value
