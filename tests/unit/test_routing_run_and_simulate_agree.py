"""``run`` and ``simulate`` take the same decision for every record, and it is the right one.

Generated records (every connector format, tombstones and gap events included) go through

(a) ``simulate``'s :class:`~router.routing.simulate.Simulator` on the wrapped lines
    :func:`~router.ingest.samples.write_jsonl` writes, and
(b) ``run``'s :class:`~router.pipeline.processor.RouterProcessor` over the core
    :func:`~router.routing.build.evaluator_for` builds from examples/router.yaml, every configured
    topic placed in its jurisdiction (fakes of tests/unit/test_pipeline_processor.py),

and must agree per record on (decision, reason, jurisdiction, topic). Independently of both, each
decision is checked against the generator's ground truth: the country it put in the record, mapped
through examples/router.yaml's ``residency.countries`` and policy rules.
"""

from __future__ import annotations

import fnmatch
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from router.audit.chain import AuditChain, verify_chain
from router.audit.record import decode_audit
from router.classify.model import Level
from router.config.loader import parse_config
from router.config.models import RouterConfig
from router.envelope import Opener, Sealer
from router.ingest.samples import SampleRecord, generate, write_jsonl
from router.keys.dek import CachingDekManager, DekPolicy, JurisdictionKeys
from router.keys.digest import DigestKeys
from router.keys.local import LocalKeyProvider, LocalKeyring, LocalPublicKeys, LocalSigner
from router.pipeline.processor import RouterProcessor, RouterSettings
from router.quarantine.record import decode_quarantine
from router.residency.config import ANY
from router.routing.build import evaluator_for
from router.routing.simulate import Simulator, Summary
from tests.unit.test_pipeline_processor import FakeMessage, FakePlacement

pytestmark = pytest.mark.unit

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "router.yaml"
N, SEED = 240, 11


@dataclass(frozen=True)
class Outcome:
    decision: str
    reason: str
    jurisdiction: str | None
    topic: str | None
    bound: tuple[str, ...]


def example(ingress_jurisdiction: str = "eu", **ingress: Any) -> RouterConfig:
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["pipeline"]["ingress"] = [{"topic": "crm.ingress", "jurisdiction": ingress_jurisdiction, "decoder": "auto",
                                   **ingress}]
    return parse_config(doc, str(EXAMPLE))


@pytest.fixture(scope="module", params=["eu", "uk"], ids=["ingress-eu", "ingress-uk"])
def config(request: pytest.FixtureRequest) -> RouterConfig:
    return example(request.param)


def _sf(entity: str, change: str = "UPDATE", **fields: Any) -> bytes:
    header = {"entityName": entity, "changeType": change, "recordIds": ["003A0000001AAA"],
              "changedFields": sorted(fields), "commitTimestamp": 1_700_000_000_000}
    return orjson.dumps({"ChangeEventHeader": header, **fields})


def _dbz(table: str, op: str, before: dict[str, Any] | None, after: dict[str, Any] | None) -> bytes:
    return orjson.dumps({"before": before, "after": after, "op": op, "ts_ms": 1_700_000_000_000,
                         "source": {"connector": "postgresql", "name": "crm", "db": "crm", "schema": "public",
                                    "table": table, "lsn": 42}})


EXTRA = [  # outcomes the generator makes rarely or never: (key, value, format, headers, country, entity)
    SampleRecord(b'{"id": 1}', _dbz("contact", "d", {"id": 1, "Email": "a@b.de", "Country": "DE"}, None),
                 "debezium-json", {}, "DE", "Contact"),  # an erasure
    SampleRecord(b'{"id": 1}', None, "debezium-json", {}, None, "Contact"),  # its tombstone: audit only
    SampleRecord(b"003A", _sf("Contact", MailingCountry="CH", Email="h@example.ch"), "salesforce-json",
                 {"x-data-region": "eu"}, "CH", "Contact"),  # a hint against the data
    SampleRecord(b"003B", _sf("Contact", Email="a@example.de"), "salesforce-json",
                 {"x-data-region": "us", "sf-org-id": "00DUS0000000001"}, None, "Contact"),  # hints alone
    SampleRecord(b"003C", _sf("Widget__c", BillingCountry="DE"), "salesforce-json", {}, "DE", "Widget__c"),
    SampleRecord(b"003D", _sf("Account", BillingCountry="US", Description="password=hunter2hunter2"),
                 "salesforce-json", {}, "US", "Account"),  # a secret: denied
    SampleRecord(b"003E", b"not a change event", "auto", {}, None, "unknown"),
    SampleRecord(b"003F", _sf("Account", BillingCountry="CH", Description="x" * 1_000_000), "salesforce-json",
                 {}, "CH", "Account"),  # beyond pipeline.max_record_bytes
]


@pytest.fixture(scope="module")
def records() -> list[SampleRecord]:
    return [*generate(N, seed=SEED), *EXTRA]


def _ingress(config: RouterConfig) -> tuple[str, str]:
    assert config.pipeline is not None
    entry = config.pipeline.ingress[0]
    return entry.topic, entry.jurisdiction


def _topic_jurisdiction(config: RouterConfig) -> dict[str, str]:
    """Every topic the router reads or writes, placed in its jurisdiction (ingress topics too)."""
    from router.placement.model import requirements_of

    return requirements_of(config)


def simulated(config: RouterConfig, records: list[SampleRecord], tmp: Path) -> list[Outcome]:
    path = tmp / "events.jsonl"
    write_jsonl(path, records)
    summary = Summary()
    with path.open("rb") as fh:
        rows = list(Simulator(config, EXAMPLE.parent).run(fh, summary))
    assert summary.bad_lines == [] and [r["line"] for r in rows] == list(range(1, len(records) + 1))
    placed, (_, origin) = _topic_jurisdiction(config), _ingress(config)
    return [Outcome(r["decision"], r["reason"], placed[r["topic"]] if r["topic"] else origin, r["topic"],
                    tuple(r["jurisdictions"])) for r in rows]


class _Keys:
    def __init__(self, jurisdictions: list[str]) -> None:
        ring = LocalKeyring.from_keys({j: {1: os.urandom(32)} for j in jurisdictions},
                                      {"router-signing": {1: os.urandom(32)}})
        provider = LocalKeyProvider(ring)
        self.keys = JurisdictionKeys({j: (provider, j) for j in jurisdictions})
        self.sealer = Sealer(CachingDekManager(self.keys, DekPolicy(100_000, 600)), LocalSigner(ring, "router-signing"))
        self.opener = Opener(self.keys, LocalPublicKeys(ring))


def ran(config: RouterConfig, records: list[SampleRecord]) -> list[Outcome]:
    assert config.residency is not None and config.policy is not None and config.audit is not None
    ingress, origin = _ingress(config)
    placed = _topic_jurisdiction(config)
    keys = _Keys(sorted(config.jurisdictions))
    core = evaluator_for(config, EXAMPLE.parent)
    proc = RouterProcessor(
        core,
        FakePlacement(placed),  # every configured topic sits in its jurisdiction
        keys.sealer,
        AuditChain(),
        RouterSettings(quarantine_topic=core.engine.policy.quarantine_topic, audit_topic=config.audit.topic,
                       instance_id="agree", origin_jurisdiction=lambda t: {ingress: origin}[t],
                       audit_jurisdiction=config.audit.jurisdiction),
        DigestKeys(keys.keys),
    )
    msgs = [FakeMessage(ingress, 0, i, r.value, r.key, [(k, v.encode()) for k, v in r.headers.items()])
            for i, r in enumerate(records)]
    outs = proc.process(msgs)  # type: ignore[arg-type]
    audits = [o for o in outs if o.topic == config.audit.topic]
    assert len(audits) == len(records)
    assert verify_chain((a.partition, i, a.value) for i, a in enumerate(audits) if a.value is not None).ok
    written = [o for o in outs if o.topic != config.audit.topic]
    result: list[Outcome] = []
    by_offset = {}
    for a in audits:
        assert a.value is not None
        f = decode_audit(a.value).fields
        by_offset[f.source_offset] = f
    for i in range(len(records)):
        f = by_offset[i]
        j = f.payload_sha256.split(":")[1]  # hmac-sha256:<the record's jurisdiction>:<hex>
        topic = f.destination_topic or None
        if topic is not None:
            assert placed[topic] == j, (i, topic, j)
        result.append(Outcome(f.decision, f.reason, j, topic, tuple(f.jurisdictions)))
    for o in written:  # everything written opens under its topic's jurisdiction key, and only there
        j = placed[o.topic]
        if o.topic.startswith("quarantine."):
            assert o.value is not None
            rec = decode_quarantine(o.value)
            if rec.sealed_payload:
                keys.opener.open(rec.sealed_payload, list(rec.envelope_headers), topic=o.topic,
                                 partition=o.partition, expected_jurisdiction=j)
        elif o.value is not None:
            keys.opener.open(o.value, o.headers, topic=o.topic, partition=o.partition, expected_jurisdiction=j)
    return result


@pytest.fixture(scope="module")
def both(config: RouterConfig, records: list[SampleRecord],
         tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Outcome], list[Outcome]]:
    return simulated(config, records, tmp_path_factory.mktemp("agree")), ran(config, records)


def test_the_sample_covers_every_format_and_outcome(records: list[SampleRecord],
                                                     both: tuple[list[Outcome], list[Outcome]]) -> None:
    sim, _ = both
    assert {r.format for r in records} >= {"salesforce-json", "confluent-avro", "debezium-json"}
    decisions = Counter(o.decision for o in sim)
    assert decisions["route"] > N // 2 and decisions["quarantine"] > 0 and decisions["audit_only"] > 0
    assert {o.jurisdiction for o in sim if o.decision == "route"} == {"eu", "uk", "us", "ch"}
    assert {o.reason for o in sim} >= {"ROUTED", "UNRESOLVED_JURISDICTION", "GAP_EVENT", "TOMBSTONE_AUDITED",
                                       "CONFLICTING_JURISDICTION", "DESTINATION_NOT_CONFIGURED", "POLICY_DENIED",
                                       "UNSUPPORTED_FORMAT", "OVERSIZED"}


def test_run_and_simulate_take_the_same_decision_for_every_record(
        records: list[SampleRecord], both: tuple[list[Outcome], list[Outcome]]) -> None:
    sim, run = both
    differ = [(i, records[i].format, s, r) for i, (s, r) in enumerate(zip(sim, run, strict=True)) if s != r]
    assert differ == []


# -- ground truth ---------------------------------------------------------------------------------

CARRIES_EMAIL = {"Contact", "Lead"}
"""Entities whose generated records always carry an ``Email`` field (router/ingest/samples.py:_Gen.values)."""


def _floor(config: RouterConfig, entity: str) -> Level | None:
    """The lowest level a record of ``entity`` can have, from the config's field rules alone."""
    assert config.classification is not None
    if entity not in CARRIES_EMAIL:
        return None
    levels = [rule.level for pattern, rule in config.classification.fields.items()
              if rule.level is not None and fnmatch.fnmatchcase(f"{entity}.Email", pattern)]
    return max(levels, key=lambda lv: lv.rank) if levels else None


def permitted(config: RouterConfig, home: str, entity: str) -> set[str]:
    """Every destination a rule of the policy can allow for ``home`` data of ``entity``: rules
    whose ``when.max_level`` is below what the entity's fields are known to carry cannot apply."""
    assert config.policy is not None
    floor = _floor(config, entity)
    out: set[str] = set()
    for rule in config.policy.rules:
        if rule.action != "allow" or (home not in rule.data and ANY not in rule.data):
            continue
        if floor is not None and rule.when.max_level is not None and not rule.when.max_level.at_least(floor):
            continue
        out.update(rule.allow)
    return out


def test_the_ground_truth_table_is_what_the_config_says(config: RouterConfig) -> None:
    assert permitted(config, "eu", "Contact") == {"eu"}
    assert permitted(config, "ch", "Contact") == {"ch"}
    assert permitted(config, "ch", "Opportunity") == {"ch", "eu"}
    assert permitted(config, "us", "Account") == {"us", "eu", "uk"}


def _home(config: RouterConfig, record: SampleRecord) -> str | None:
    assert config.residency is not None
    return config.residency.country_table().get(record.country) if record.country else None


def test_every_routed_record_goes_where_its_generated_country_permits(
        config: RouterConfig, records: list[SampleRecord], both: tuple[list[Outcome], list[Outcome]]) -> None:
    _, run = both
    wrong = []
    for i, (rec, out) in enumerate(zip(records, run, strict=True)):
        if out.decision != "route":
            continue
        home = _home(config, rec)
        if home is None or out.jurisdiction not in permitted(config, home, rec.entity):
            wrong.append((i, rec.format, rec.entity, rec.country, home, out))
    assert wrong == []


def test_every_resolved_record_is_bound_to_its_generated_countrys_jurisdiction(
        config: RouterConfig, records: list[SampleRecord], both: tuple[list[Outcome], list[Outcome]]) -> None:
    _, run = both
    wrong = [(i, rec.format, rec.entity, rec.country, out)
             for i, (rec, out) in enumerate(zip(records, run, strict=True))
             if out.bound and out.bound != (_home(config, rec),)]
    assert wrong == []


def test_records_of_unmapped_countries_are_never_routed(
        config: RouterConfig, records: list[SampleRecord], both: tuple[list[Outcome], list[Outcome]]) -> None:
    _, run = both
    unmapped = [(rec, out) for rec, out in zip(records, run, strict=True)
                if rec.country is not None and _home(config, rec) is None]
    assert unmapped, "the sample should hold JP / BR records"
    assert all(out.decision == "quarantine" and out.jurisdiction == _ingress(config)[1] for _, out in unmapped)


def test_a_quarantine_is_in_the_generated_countrys_jurisdiction_or_the_ingress_topics(
        config: RouterConfig, records: list[SampleRecord], both: tuple[list[Outcome], list[Outcome]]) -> None:
    _, run = both
    origin = _ingress(config)[1]
    wrong = []
    for i, (rec, out) in enumerate(zip(records, run, strict=True)):
        if out.decision != "quarantine":
            continue
        home = _home(config, rec)
        expected = home if out.bound else origin  # bound: to its own country's jurisdiction (above)
        if out.jurisdiction != expected:
            wrong.append((i, rec.format, rec.country, out))
    assert wrong == []


def test_contacts_and_leads_carrying_email_route_only_to_their_own_jurisdiction(
        config: RouterConfig, records: list[SampleRecord], both: tuple[list[Outcome], list[Outcome]]) -> None:
    _, run = both
    routed = [(rec, out) for rec, out in zip(records, run, strict=True)
              if out.decision == "route" and rec.entity in CARRIES_EMAIL]
    assert routed
    assert all(out.jurisdiction == _home(config, rec) for rec, out in routed)


# -- the ingress decoder's options ----------------------------------------------------------------

CUSTOMERS = _dbz("customers", "c", None, {"id": 1, "Country": "DE", "Email": "a@b.de"})
MAPPED: dict[str, Any] = {"options": {"entities": {"public.customers": "Contact"}}}


def test_run_maps_tables_to_entities_with_the_ingress_options() -> None:
    rec = SampleRecord(b'{"id": 1}', CUSTOMERS, "auto", {}, "DE", "Contact")
    assert [(o.decision, o.topic) for o in ran(example(**MAPPED), [rec])] == [("route", "crm.eu.contact")]


def test_a_raw_line_is_decoded_with_the_ingress_options_like_run(tmp_path: Path) -> None:
    path = tmp_path / "raw.jsonl"
    path.write_bytes(CUSTOMERS + b"\n")
    with path.open("rb") as fh:
        rows = list(Simulator(example(**MAPPED), EXAMPLE.parent).run(fh, Summary()))
    assert [(r["decision"], r["topic"]) for r in rows] == [("route", "crm.eu.contact")]


@pytest.mark.parametrize("fmt", ["auto", "debezium-json"])
def test_a_wrapped_line_is_decoded_with_the_ingress_options_like_run(fmt: str, tmp_path: Path) -> None:
    config = example(**MAPPED)
    recs = [SampleRecord(b'{"id": 1}', CUSTOMERS, fmt, {}, "DE", "Contact")]
    assert simulated(config, recs, tmp_path) == ran(config, recs)
