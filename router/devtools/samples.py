"""A deterministic generator of realistic CRM change events, for tests, the demo and benchmarks.

People and companies in EU countries, the UK, the US, Switzerland and elsewhere, with emails,
phone numbers, IBANs, VAT ids and national ids that pass python-stdnum / phonenumbers validation
(about one in ten deliberately invalid), free-text fields that sometimes hide an identifier or an
LLM prompt template, in three connector formats: Salesforce CDC JSON, Salesforce CDC Avro in the
Confluent wire format (schema ids from ``schemas/registry.json``) and Debezium JSON. A few Salesforce
GAP_OVERFLOW events and Debezium tombstones are mixed in. Deletes of earlier subjects (a Debezium
delete with its before-image and tombstone, a Salesforce DELETE) are an opt-in: ``generate(...,
deletes=0.1)``.

The same ``seed`` always yields the same records.

Events file (JSON Lines) written by :func:`write_jsonl` and read by ``simulate``, one record per
line::

    {"format": "<decoder name>", "key_b64": "<base64>"|null, "value_b64": "<base64>"|null,
     "headers": {"name": "value", ...}}

:func:`read_jsonl` reads such a file back; a line it cannot read is yielded as
``(line_number, problem)`` instead of a record. ``country`` and ``entity`` are not written, so
records read back carry ``country=None`` and ``entity=""``.
"""

from __future__ import annotations

import base64
import io
import json
import random
import string
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import phonenumbers
from fastavro import schemaless_writer
from stdnum import iban as std_iban
from stdnum.es import dni as es_dni
from stdnum.eu import vat as eu_vat
from stdnum.us import ssn as us_ssn

from router.ingest.schema_store import DirectorySchemaStore, default_schema_dir

FORMATS = ("salesforce-json", "salesforce-avro", "debezium-json")
ENTITIES = ("Account", "Contact", "Lead", "Case", "Opportunity")

# country, weight, names used in free-text country fields
COUNTRIES: list[tuple[str, int, tuple[str, ...]]] = [
    ("DE", 12, ("Germany", "DE", "Deutschland")),
    ("FR", 9, ("France", "FR")),
    ("ES", 6, ("Spain", "ES", "España")),
    ("IT", 6, ("Italy", "IT")),
    ("NL", 5, ("Netherlands", "NL")),
    ("IE", 3, ("Ireland", "IE")),
    ("AT", 3, ("Austria", "AT")),
    ("BE", 3, ("Belgium", "BE")),
    ("PL", 3, ("Poland", "PL")),
    ("SE", 3, ("Sweden", "SE")),
    ("GB", 10, ("United Kingdom", "GB", "UK")),
    ("US", 20, ("United States", "US", "USA")),
    ("CH", 4, ("Switzerland", "CH")),
    ("JP", 2, ("Japan", "JP")),
    ("BR", 2, ("Brazil", "BR")),
]
FIRST = [
    "Anna",
    "Lukas",
    "Marie",
    "Jean",
    "Lucía",
    "Marco",
    "Sofia",
    "Liam",
    "Emma",
    "Noah",
    "Olivia",
    "Jan",
    "Eva",
    "Pierre",
    "Giulia",
    "Sean",
    "Aoife",
    "Hiro",
    "Yuki",
    "Ana",
    "João",
    "Lars",
    "Ingrid",
    "Tomasz",
    "Zofia",
]
LAST = [
    "Müller",
    "Schmidt",
    "Dubois",
    "Martin",
    "García",
    "Rossi",
    "Bianchi",
    "de Vries",
    "Murphy",
    "Smith",
    "Johnson",
    "Brown",
    "Tanaka",
    "Sato",
    "Silva",
    "Andersson",
    "Nowak",
    "Kowalski",
    "Huber",
    "Peeters",
    "O'Brien",
    "Jansen",
]
COMPANY = [
    "Nordlicht",
    "Atlas",
    "Blue Harbor",
    "Cumulus",
    "Helios",
    "Iberia Foods",
    "Lagom",
    "Meridian",
    "Quantum",
    "Rhein",
    "Sakura",
    "Tejo",
    "Vista",
    "Alpenrose",
    "Brightwater",
]
SUFFIX = {
    "DE": "GmbH",
    "AT": "GmbH",
    "CH": "AG",
    "FR": "SAS",
    "ES": "S.L.",
    "IT": "S.r.l.",
    "NL": "B.V.",
    "BE": "NV",
    "IE": "Ltd",
    "GB": "Ltd",
    "US": "Inc.",
    "PL": "Sp. z o.o.",
    "SE": "AB",
    "JP": "K.K.",
    "BR": "Ltda.",
}
FILLER = (
    "Customer asked about renewal terms and onboarding for the new regional team. "
    "Follow-up scheduled after the quarterly business review; pricing to be confirmed. "
)
PROMPTS = [
    "You are a helpful sales assistant for {{account_name}}. Summarize the last three interactions and "
    "suggest a next step. Respond in a friendly tone.",
    "### Instruction\nClassify the sentiment of the customer's message: {{message}}\n### Response",
    "You are an expert support agent. Given the case history {{history}}, draft a reply that resolves the issue.",
]
IBAN_BBAN = {
    "DE": "18n",
    "AT": "16n",
    "NL": "4a10n",
    "GB": "4a14n",
    "IE": "4a14n",
    "CH": "5n12n",
    "BE": "12n",
    "PL": "24n",
    "SE": "20n",
}
VAT_LEN = {"DE": 9, "IT": 11, "BE": 10, "PL": 10, "SE": 12, "FR": 11, "ES": 9}
POOL = 16  # valid identifiers made per country and kind, then reused


@dataclass(frozen=True)
class SampleRecord:
    """One record as a connector would produce it, and the decoder name that reads it."""

    key: bytes | None
    value: bytes | None
    format: str
    headers: dict[str, str] = field(default_factory=dict)
    country: str | None = None
    entity: str = "Contact"


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(n))


def _letters(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(string.ascii_uppercase) for _ in range(n))


def _bban(rng: random.Random, spec: str) -> str:
    out, num = "", ""
    for ch in spec:
        if ch.isdigit():
            num += ch
            continue
        n = int(num)
        num = ""
        out += _digits(rng, n) if ch == "n" else _letters(rng, n)
    return out


def _corrupt(rng: random.Random, text: str) -> str:
    """Change one digit so that a check digit no longer matches."""
    idx = [i for i, c in enumerate(text) if c.isdigit()]
    i = rng.choice(idx[-4:] if len(idx) > 4 else idx)
    return text[:i] + str((int(text[i]) + rng.randint(1, 9)) % 10) + text[i + 1 :]


def make_iban(rng: random.Random, cc: str) -> str | None:
    spec = IBAN_BBAN.get(cc)
    if spec is None:
        return None
    for _ in range(50):
        bban = _bban(rng, spec)
        check = std_iban.calc_check_digits(cc + "00" + bban)
        candidate = cc + check + bban
        if std_iban.is_valid(candidate):
            return candidate
    return None


def make_vat(rng: random.Random, cc: str) -> str | None:
    n = VAT_LEN.get(cc)
    if n is None:
        return None
    for _ in range(300):
        body = _digits(rng, n - 1)
        for last in string.digits:
            candidate = f"{cc}{body}{last}"
            if cc == "ES":
                candidate = f"ES{body[:8]}{rng.choice(string.ascii_uppercase)}"
            if eu_vat.is_valid(candidate):
                return candidate
    return None


def make_national_id(rng: random.Random, cc: str) -> str | None:
    if cc == "ES":
        num = _digits(rng, 8)
        return num + es_dni.calc_check_digit(num)
    if cc == "US":
        for _ in range(20):
            candidate = f"{rng.randint(1, 665):03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"
            if us_ssn.is_valid(candidate):
                return candidate
    return None


def make_phone(rng: random.Random, cc: str) -> str | None:
    example = phonenumbers.example_number_for_type(cc, phonenumbers.PhoneNumberType.MOBILE)
    if example is None:
        return None
    national = str(example.national_number)
    for _ in range(30):
        tail = _digits(rng, 3)
        candidate = phonenumbers.PhoneNumber(
            country_code=example.country_code, national_number=int(national[:-3] + tail)
        )
        if phonenumbers.is_valid_number(candidate):
            return phonenumbers.format_number(candidate, phonenumbers.PhoneNumberFormat.E164)
    return phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)


_DELETE_LSN = 1_000_000_000


@dataclass(frozen=True)
class _Subject:
    """A record the stream created or updated, which a later delete may remove."""

    fmt: str
    rid: str
    entity: str
    country: str
    row: dict[str, Any] | None  # the Debezium after-image, the delete's before-image


class _Gen:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)  # noqa: S311 - reproducible sample data, not secrets
        self.subject: _Subject | None = None  # what the last record() created or updated
        self.store = DirectorySchemaStore(default_schema_dir())
        self.ids = {Path(f).stem.removesuffix("ChangeEvent"): sid for sid, f in self.store.ids().items()}
        self.weights = [w for _, w, _ in COUNTRIES]
        self._pools: dict[tuple[str, str], list[str | None]] = {}

    def pick(self, kind: str, cc: str) -> str | None:
        """A valid identifier of ``kind`` for ``cc`` from a small pool (making them is costly)."""
        pool = self._pools.get((kind, cc))
        if pool is None:
            make = {"iban": make_iban, "vat": make_vat, "nid": make_national_id, "phone": make_phone}[kind]
            pool = self._pools[(kind, cc)] = [make(self.rng, cc) for _ in range(POOL)]
        return self.rng.choice(pool)

    def country(self) -> tuple[str, str]:
        cc, _, names = self.rng.choices(COUNTRIES, weights=self.weights)[0]
        return cc, self.rng.choice(names)

    def person(self, cc: str, country_text: str, *, valid: bool) -> dict[str, Any]:
        rng = self.rng
        first, last = rng.choice(FIRST), rng.choice(LAST)
        company = f"{rng.choice(COMPANY)} {SUFFIX.get(cc, 'Ltd')}"
        domain = company.split(maxsplit=1)[0].lower().replace("'", "") + ".example"
        iban, vat, nid = self.pick("iban", cc), self.pick("vat", cc), self.pick("nid", cc)
        if not valid:
            iban = _corrupt(rng, iban) if iban else None
            vat = _corrupt(rng, vat) if vat else None
        description = FILLER * rng.randint(3, 5)
        roll = rng.random()
        if roll < 0.15 and iban:
            description += f" Refund to account {iban} requested."
        elif roll < 0.3:
            description += f" Contact {first.lower()}@{domain} for details."
        prompt = rng.choice(PROMPTS) if rng.random() < 0.25 else None
        return {
            "first": first,
            "last": last,
            "company": company,
            "email": f"{first.lower()}.{last.lower()}@{domain}".replace(" ", "").replace("'", ""),
            "phone": self.pick("phone", cc),
            "iban": iban,
            "vat": vat,
            "national_id": nid,
            "description": description,
            "prompt": prompt,
            "address": {
                "Street": f"{rng.randint(1, 200)} Market Street",
                "City": "Springfield",
                "PostalCode": _digits(rng, 5),
                "Country": country_text,
            },
        }

    def values(self, entity: str, p: dict[str, Any]) -> dict[str, Any]:
        name = {"Salutation": None, "FirstName": p["first"], "LastName": p["last"]}
        if entity == "Account":
            return {
                "Name": p["company"],
                "BillingAddress": p["address"],
                "Phone": p["phone"],
                "Industry": "Retail",
                "Description": p["description"],
                "VatId__c": p["vat"],
                "Iban__c": p["iban"],
                "Prompt__c": p["prompt"],
                "NumberOfEmployees": self.rng.randint(5, 5000),
            }
        if entity == "Contact":
            return {
                "Name": name,
                "MailingAddress": p["address"],
                "Email": p["email"],
                "MobilePhone": p["phone"],
                "Description": p["description"],
                "National_Id__c": p["national_id"],
                "Iban__c": p["iban"],
                "Prompt__c": p["prompt"],
                "Title": "Head of Operations",
            }
        if entity == "Lead":
            return {
                "Name": name,
                "Company": p["company"],
                "Address": p["address"],
                "Email": p["email"],
                "Phone": p["phone"],
                "Description": p["description"],
                "VatId__c": p["vat"],
                "Prompt__c": p["prompt"],
                "Status": "Open - Not Contacted",
            }
        if entity == "Case":
            return {
                "SuppliedName": f"{p['first']} {p['last']}",
                "SuppliedEmail": p["email"],
                "SuppliedPhone": p["phone"],
                "Subject": "Invoice question",
                "Description": p["description"],
                "Country__c": p["address"]["Country"],
                "Prompt__c": p["prompt"],
                "Status": "New",
            }
        return {
            "Name": f"{p['company']} renewal",
            "Description": p["description"],
            "StageName": "Prospecting",
            "Amount": float(self.rng.randint(1000, 90000)),
            "Iban__c": p["iban"],
            "Country__c": p["address"]["Country"],
            "Prompt__c": p["prompt"],
        }

    def header(  # noqa: PLR0917 - one header's parts
        self, entity: str, rid: str, change: str, changed: list[str], i: int, rng: random.Random | None = None
    ) -> dict[str, Any]:
        rng = rng or self.rng
        return {
            "entityName": entity,
            "recordIds": [rid],
            "changeType": change,
            "changeOrigin": "com/salesforce/api/rest/61.0",
            "transactionKey": f"{rng.getrandbits(64):016x}",
            "sequenceNumber": 1,
            "commitTimestamp": 1_767_225_600_000 + i * 1000,
            "commitNumber": 10_000_000 + i,
            "commitUser": "005" + _digits(rng, 12),
            "nulledFields": [],
            "diffFields": [],
            "changedFields": changed,
        }

    def record(self, i: int, fmt: str) -> SampleRecord:
        rng = self.rng
        entity = rng.choice(ENTITIES)
        cc, country_text = self.country()
        p = self.person(cc, country_text, valid=rng.random() >= 0.1)
        values = {k: v for k, v in self.values(entity, p).items() if v is not None}
        prefix = {"Account": "001", "Contact": "003", "Lead": "00Q", "Case": "500", "Opportunity": "006"}[entity]
        rid = prefix + _letters(rng, 3) + _digits(rng, 9) + "AAA"
        change = "CREATE" if rng.random() < 0.5 else "UPDATE"
        if fmt != "debezium-json" and rng.random() < 0.004:
            change = "GAP_OVERFLOW"
        key = rid.encode()
        self.subject = None if change == "GAP_OVERFLOW" else _Subject(fmt, rid, entity, cc, None)
        if fmt == "salesforce-json":
            doc = {
                "ChangeEventHeader": self.header(entity, rid, change, sorted(values), i),
                **values,
                "EventUuid": f"{rng.getrandbits(128):032x}",
            }
            return SampleRecord(key, orjson.dumps(doc), "salesforce-json", {}, cc, entity)
        if fmt == "salesforce-avro":
            return self.avro(entity, rid, change, values, i, cc)
        if rng.random() < 0.005:
            self.subject = None
            return SampleRecord(json.dumps({"id": rid}).encode(), None, "debezium-json", {}, None, entity)
        row = {
            "id": rid,
            **{k: (json.dumps(v) if isinstance(v, dict) else v) for k, v in values.items()},
            **({"Country": country_text} if entity != "Opportunity" else {}),
        }
        op = "c" if change == "CREATE" else "u"
        self.subject = _Subject(fmt, rid, entity, cc, row)
        doc = {
            "before": None if op == "c" else {"id": rid},
            "after": row,
            "source": {
                "version": "2.7.0.Final",
                "connector": "postgresql",
                "name": "crm",
                "db": "crm",
                "schema": "public",
                "table": entity.lower(),
                "lsn": 100_000 + i,
                "ts_ms": 1_767_225_600_000 + i * 1000,
            },
            "op": op,
            "ts_ms": 1_767_225_600_000 + i * 1000,
            "transaction": {"id": f"{i // 3}", "total_order": i % 3 + 1, "data_collection_order": 1},
        }
        return SampleRecord(json.dumps({"id": rid}).encode(), orjson.dumps(doc), "debezium-json", {}, cc, entity)

    def deletion(self, subject: _Subject, i: int, rng: random.Random) -> list[SampleRecord]:
        """The records that delete ``subject`` after base record ``i``, drawn from ``rng`` only: a
        Debezium delete (op d, the subject's last row as before-image) and its bare tombstone, or a
        Salesforce DELETE change event, which carries the record id and nothing else."""
        entity, rid = subject.entity, subject.rid
        ts = 1_767_225_600_000 + i * 1000 + 500
        doc: dict[str, Any]
        if subject.fmt == "salesforce-json":
            doc = {
                "ChangeEventHeader": self.header(entity, rid, "DELETE", [], i, rng),
                "EventUuid": f"{rng.getrandbits(128):032x}",
            }
            return [SampleRecord(rid.encode(), orjson.dumps(doc), "salesforce-json", {}, None, entity)]
        if subject.fmt == "salesforce-avro":
            sid = self.ids[entity]
            stored = self.store.get(sid)
            rec: dict[str, Any] = dict.fromkeys(stored.field_names)
            rec["ChangeEventHeader"] = self.header(entity, rid, "DELETE", [], i, rng)
            buf = io.BytesIO()
            buf.write(b"\x00" + struct.pack(">I", sid))
            schemaless_writer(buf, stored.parsed, rec)
            return [SampleRecord(rid.encode(), buf.getvalue(), "confluent-avro", {}, None, entity)]
        key = json.dumps({"id": rid}).encode()
        doc = {
            "before": subject.row,
            "after": None,
            "source": {
                "version": "2.7.0.Final",
                "connector": "postgresql",
                "name": "crm",
                "db": "crm",
                "schema": "public",
                "table": entity.lower(),
                "lsn": _DELETE_LSN + i,  # apart from the base records' positions: event ids stay unique
                "ts_ms": ts,
            },
            "op": "d",
            "ts_ms": ts,
            "transaction": {"id": f"d{i}", "total_order": 1, "data_collection_order": 1},
        }
        return [
            SampleRecord(key, orjson.dumps(doc), "debezium-json", {}, subject.country, entity),
            SampleRecord(key, None, "debezium-json", {}, None, entity),
        ]

    def avro(  # noqa: PLR0917 - one record's parts, from record()
        self, entity: str, rid: str, change: str, values: dict[str, Any], i: int, cc: str
    ) -> SampleRecord:
        sid = self.ids[entity]
        stored = self.store.get(sid)
        names = stored.field_names
        rec: dict[str, Any] = dict.fromkeys(names)
        for k, v in values.items():
            if k in rec:
                if isinstance(v, dict):
                    nested = next(
                        b
                        for b in next(f for f in stored.raw["fields"] if f["name"] == k)["type"]
                        if isinstance(b, dict)
                    )
                    v = {  # noqa: PLW2901 - the compound value, re-shaped to its Avro record
                        f["name"]: (str(v.get(f["name"])) if v.get(f["name"]) is not None else None)
                        for f in nested["fields"]
                    }
                rec[k] = v
        bits = sum(1 << names.index(k) for k in values if k in names)
        changed = [f"0x{bits:X}"]
        rec["ChangeEventHeader"] = self.header(entity, rid, change, changed, i)
        buf = io.BytesIO()
        buf.write(b"\x00" + struct.pack(">I", sid))
        schemaless_writer(buf, stored.parsed, rec)
        return SampleRecord(rid.encode(), buf.getvalue(), "confluent-avro", {}, cc, entity)


def generate(
    n: int, seed: int = 0, formats: tuple[str, ...] = FORMATS, *, deletes: float = 0.0
) -> Iterator[SampleRecord]:
    """``n`` records, cycling through ``formats``; deterministic for ``seed``.

    ``deletes`` (opt-in, 0 to 1): the chance that a delete of an earlier subject follows a record.
    A Debezium subject is deleted by an ``op: d`` event whose before-image is the subject's last
    row (``country`` = the subject's country), followed by its bare tombstone (null value, the same
    key); a Salesforce subject by a DELETE change event in its format (JSON or Confluent Avro),
    which carries only the record id (``country`` None). Deletes draw from their own random stream,
    so the other records are exactly those of ``deletes=0`` in the same order (``n`` counts every
    record, deletes and tombstones included); ``deletes=0`` is the default output for the seed.
    """
    if not 0.0 <= deletes <= 1.0:
        raise ValueError(f"deletes must be a share between 0 and 1, not {deletes!r}")
    gen = _Gen(seed)
    if not deletes:
        for i in range(n):
            yield gen.record(i, formats[i % len(formats)])
        return
    side = random.Random(f"deletes:{seed}")  # noqa: S311 - reproducible sample data, not secrets
    live: list[_Subject] = []
    produced = 0
    i = 0
    while produced < n:
        yield gen.record(i, formats[i % len(formats)])
        produced += 1
        if gen.subject is not None:
            live.append(gen.subject)
        if live and side.random() < deletes:
            subject = live.pop(side.randrange(len(live)))
            for rec in gen.deletion(subject, i, side)[: n - produced]:
                yield rec
                produced += 1
        i += 1


def write_jsonl(path: str | Path, records: Iterable[SampleRecord]) -> int:
    """Write records as an events file (see the module docstring); returns the count."""
    n = 0
    with Path(path).open("w", encoding="utf-8") as fh:
        for r in records:
            fh.write(
                json.dumps(
                    {
                        "format": r.format,
                        "key_b64": base64.b64encode(r.key).decode() if r.key is not None else None,
                        "value_b64": base64.b64encode(r.value).decode() if r.value is not None else None,
                        "headers": r.headers,
                    }
                )
                + "\n"
            )
            n += 1
    return n


def _b64(v: Any) -> bytes | None:
    if v is None:
        return None
    if not isinstance(v, str):
        raise TypeError
    return base64.b64decode(v, validate=True)


def read_jsonl(path: str | Path) -> Iterator[SampleRecord | tuple[int, str]]:
    """Read an events file written by :func:`write_jsonl`.

    Yields a :class:`SampleRecord` per good line and ``(line_number, problem)`` per bad one (the
    problem names what is wrong, never the line's content). Blank lines are skipped.
    """
    with Path(path).open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                doc = json.loads(line)
            except ValueError:
                yield n, "not a JSON object"
                continue
            if not isinstance(doc, dict) or not isinstance(doc.get("format"), str):
                yield n, "missing 'format'"
                continue
            headers = doc.get("headers") or {}
            if not isinstance(headers, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
            ):
                yield n, "'headers' must map strings to strings"
                continue
            try:
                key, value = _b64(doc.get("key_b64")), _b64(doc.get("value_b64"))
            except (TypeError, ValueError):
                yield n, "key_b64 / value_b64 must be base64 or null"
                continue
            yield SampleRecord(key, value, doc["format"], dict(headers), None, "")
