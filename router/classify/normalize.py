"""The scanned copy of a text: what the detectors read, never what is routed.

People type identifiers with whatever their keyboard or word processor gives them: full-width
digits (IME input), a no-break space or a narrow no-break space between digit groups, a
zero-width space or a soft hyphen pasted from a web page or a PDF, an en dash or a minus sign
instead of ``-``. The detectors' patterns read ASCII digits, ``' '`` and ``'-'``, so
:func:`scanned_copy` maps all of these onto them:

- Unicode NFKC (full-width and other compatibility forms to their plain forms: U+FF11 to
  ``1``, U+FF21 to ``A``, ideographic and other width-variant spaces to ``' '``);
- zero-width characters removed: U+200B..U+200D (zero-width space, non-joiner, joiner), U+2060
  (word joiner), U+FEFF (zero-width no-break space, the BOM) and U+00AD (soft hyphen);
- no-break and other Unicode spaces (U+00A0, U+1680, U+2000..U+200A, U+202F, U+205F, U+3000) to
  ``' '``;
- dash variants U+2010..U+2015, U+2212 (minus sign), U+FE58, U+FE63 and U+FF0D to ``'-'``.

Case is left alone: detectors of identifiers that are case-insensitive (IBAN, UK NINO, Italian
codice fiscale) match either case and upper-case their candidate before validating it.

The payload is never changed: the classifier reads field values, and only this copy of a value is
scanned. An ASCII text is returned as it is (``str.isascii`` answers in C without a copy), so the
common case costs one check.
"""

from __future__ import annotations

import unicodedata

_REMOVED = "\u200b\u200c\u200d\u2060\ufeff\u00ad"
_SPACES = "\u00a0\u1680" + "".join(chr(c) for c in range(0x2000, 0x200B)) + "\u202f\u205f\u3000"
_DASHES = "".join(chr(c) for c in range(0x2010, 0x2016)) + "\u2212\ufe58\ufe63\uff0d"

_TABLE: dict[int, int | None] = {
    **{ord(c): None for c in _REMOVED},
    **{ord(c): ord(" ") for c in _SPACES},
    **{ord(c): ord("-") for c in _DASHES},
}


def scanned_copy(text: str) -> str:
    """``text`` as the detectors read it (see the module docstring); ``text`` itself when ASCII.

    Never raises: lone surrogates (which no decoder produces) pass through unchanged."""
    if text.isascii():
        return text
    # Map before NFKC (a zero-width character between a letter and its combining mark would block
    # composition) and after it (NFKC turns U+FE58 into U+2014, and U+2011 into U+2010).
    return unicodedata.normalize("NFKC", text.translate(_TABLE)).translate(_TABLE)
