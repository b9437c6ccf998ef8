"""Weak matches scored with context: payment cards and phone numbers.

A Luhn check passes one digit run in ten and a phone number parses from many digit runs, so a
run counts as a card only when its grouping is one cards are printed in and it is neither next
to a date nor introduced by a reference word (order, invoice, ticket, ...), unless a card word is
near; a phone number not written with ``+`` is not one when a reference word introduces it or
it is the tail of a code (``SO-2024-123456``). Card numbers are Luhn-valid test numbers of the
card schemes; the reference numbers are made Luhn-valid with python-stdnum here.
"""

from __future__ import annotations

import pytest
from stdnum import luhn

from router.classify.registry import build_detectors

pytestmark = pytest.mark.unit

CARD, PHONE = build_detectors(["payment_card", "phone"], phone_regions=["US", "GB", "DE", "FR"])


def _card(text: str) -> bool:
    return CARD.prefilter(text) and CARD.confirm(text)


def _phone(text: str) -> bool:
    return PHONE.prefilter(text) and PHONE.confirm(text)


def _luhn_valid(body: str) -> str:
    return body + luhn.calc_check_digit(body)


# The reported false positive: a reference number after a date read as a card number (the date's
# digits joined to the reference's make a Luhn-valid run with a Mastercard prefix).
REFERENCE_AFTER_DATE = "Ticket 24-11-2026 " + _luhn_valid("24112026004217")[8:]


def test_the_reported_reference_after_a_date_is_not_a_card() -> None:
    digits = "".join(c for c in REFERENCE_AFTER_DATE if c.isdigit())
    assert luhn.is_valid(digits) and digits.startswith("24")  # what the old detector accepted
    assert not _card(REFERENCE_AFTER_DATE)


@pytest.mark.parametrize("text", [
    "card 4111 1111 1111 1111",
    "card 4111-1111-1111-1111",
    "card 4111111111111111",
    "Visa 4012888888881881 exp 12/29",
    "Amex 3782 822463 10005",                  # 4-6-5
    "Diners 3056 930902 5904",                 # 4-6-4
    "Kartennummer: 5555 5555 5555 4444.",
    "numéro de carte 4000 0566 5566 5556",
    "4111 1111 1111 1111",                     # alone
    "cards on file: 4111111111111111 5555555555554444",
    "Paid order 1234 with card 4111 1111 1111 1111",  # a card word beats the reference word
    "card 4111 1111 1111 1111 on 2026-11-28",  # a card word beats the date
])
def test_cards_printed_as_cards_are_found(text: str) -> None:
    assert _card(text)


@pytest.mark.parametrize("text", [
    REFERENCE_AFTER_DATE,
    "Ticket 24-11-2026 " + _luhn_valid("24112026004217")[8:12] + " " + _luhn_valid("24112026004217")[12:],
    "Order 4111111111111111 shipped",                 # a reference word before the run
    "Invoice no. 4111 1111 1111 1111",
    "Bestellnummer 4111111111111111",
    "Numéro de commande : 4111111111111111",
    "pedido 4111111111111111",
    "tracking 4111 1111 1111 1111",
    "4111 1111-1111 1111",                            # two separators
    "4111 11111111 1111",                             # groups no card is printed in
    "41 11 11 11 11 11 11 11",
    "2026-11-28, 4111111111111111",                   # next to a date
    "4111111111111111 (28.11.2026)",
    "4111 1111 1111 1112",                            # Luhn fails
])
def test_runs_that_are_not_printed_cards_are_not_found(text: str) -> None:
    assert not _card(text)


@pytest.mark.parametrize("text", [
    "call +44 20 7946 0958 after 5",
    "Tel 030 1234567",
    "phone: (202) 555-0143",
    "Order 1234: call +44 20 7946 0958",              # international form: the reference word is not its
])
def test_phone_numbers_are_found(text: str) -> None:
    assert _phone(text)


@pytest.mark.parametrize("text", [
    "SO-2024-123456",                                 # the tail of an order code
    "Order SO-2024-123456",
    "Bestellnummer 0301234567",                       # a reference word before it
    "Invoice 2025550143",
    "ticket #2025550143",
])
def test_references_are_not_phone_numbers(text: str) -> None:
    assert not _phone(text)


@pytest.mark.parametrize("text", [
    "Kunden uppgav personnummer 880320-0016 i samtalet.",  # a national number, with its keyword
    "Klient podał PESEL 44051401359 podczas rozmowy.",
    "880320-0016",                                          # printed as a birth number is
    "Olivia sent the SSN 536-90-4399 for the refund.",
    "GB75 BARC 0473 9181 0740 77",                          # part of an IBAN
    "VAT FR 05 924969041",
    "04300282908",                                          # a bare id alone in a field
    "Pilot ran on version 3.8.1 (Build 2026.09.1187).",
])
def test_national_numbers_and_codes_are_not_phone_numbers(text: str) -> None:
    assert not _phone(text)


def test_a_phone_word_keeps_a_phone_number_near_other_numbers() -> None:
    assert _phone("PESEL on file; phone 030 1234567")
    assert _phone("+4915180650462")


@pytest.mark.parametrize("text", [
    "Telefon +4915180650462",                               # after '+': a phone number
    "Romanian CNP 2620521448475 for the refund",            # a national-number keyword near
    "2711210307658",                                        # Mastercard's 2-series issues 16 digits only
])
def test_numbers_that_pass_luhn_but_are_no_cards(text: str) -> None:
    digits = "".join(c for c in text if c.isdigit())
    assert luhn.is_valid(digits)
    assert not _card(text)
