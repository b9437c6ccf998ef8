"""The envelope context encoded from cached segments is the field-by-field encoding."""

from __future__ import annotations

import random

import pytest

from router.envelope import SealContext
from router.envelope.errors import MalformedEnvelope
from router.envelope.frame import _encode_context_checked, encode_context

pytestmark = pytest.mark.unit

_NAMES = ["", "eu", "crm.ingress", "Account", "naïve", "日本", "x" * 255, "ü" * 127, "y" * 256, "ü" * 128]


def _ctx(rng: random.Random) -> SealContext:
    return SealContext(
        rng.choice(["eid:" + "0" * 32, "t:0:1", "é" * 40, "z" * 70000]),
        rng.choice(_NAMES), rng.randrange(2**31), rng.randrange(2**63), rng.choice(_NAMES), rng.randrange(2**31),
        rng.choice(_NAMES), rng.choice(_NAMES), tuple(rng.choice(_NAMES) for _ in range(rng.randrange(4))),
        rng.choice(_NAMES), rng.choice(_NAMES), rng.choice([None, 0, 7, 2**31 - 1]),
        rng.choice([b"", bytes(range(32)), b"12345"]),
    )


def _outcome(encode: object, ctx: SealContext, version: int) -> object:
    try:
        return encode(ctx, version)  # type: ignore[operator]
    except MalformedEnvelope as err:
        return ("error", str(err))


def test_cached_segments_encode_as_the_checked_encoding() -> None:
    rng = random.Random(3)
    for _ in range(4000):
        ctx = _ctx(rng)
        for version in (1, 2):
            assert _outcome(encode_context, ctx, version) == _outcome(_encode_context_checked, ctx, version)
            # now from the cache
            assert _outcome(encode_context, ctx, version) == _outcome(_encode_context_checked, ctx, version)
