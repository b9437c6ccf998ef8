"""The secret detector: credential formats, assignments at any depth, masked and placeholder values.

Token-shaped values are assembled from pieces so that no secret-shaped literal sits in the tree.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from router.classify import Category, Classifier
from router.classify.registry import build_detectors
from router.classify.secrets import GITLEAKS_RULE_IDS, credential_pair, is_credential_key, is_placeholder
from router.ingest.event import ChangeEvent, Operation, RawRecord, SourceSystem

pytestmark = pytest.mark.unit

(SECRET,) = build_detectors(["secret"])
DEFAULT = Classifier.from_config(None)
RANDOM36 = "Zq8rT3mK1vX9pL2wN7cB4yH6jD0sF5gA8eU1"


def found(text: str) -> bool:
    return SECRET.prefilter(text) and SECRET.confirm(text)


def event(**values: Any) -> ChangeEvent:
    return ChangeEvent(SourceSystem.SALESFORCE, "Case", Operation.UPDATE, ("500x",),
                       RawRecord(b"{}", "application/json"), values=values)


@pytest.mark.parametrize("text", [
    # token formats (vendored gitleaks rules)
    "stripe key sk_" + "live_" + "4eC39HqLyjWDarjtT1zdp7dc",
    "gitlab glpat" + "-" + "xK7b2Qm9RtZ4wLp8NvC3",
    "maps AIza" + "SyD1x7Qm3kP9vT2wL8nR4bZ6cF0hJ5gA2eU",
    "use sk-ant-api03-" + RANDOM36 + RANDOM36 + "Ab1Cd2Ef3Gh4Ij5Kl6Mno" + "AA",
    "mail SG." + "aB3dE5fG7hI9jK1lM3nO5p" + "." + "qR7sT9uV1wX3yZ5aB7cD9eF1gH3iJ5kL7mN9oP1qR3s",
    "npm token npm_" + RANDOM36,
    "hf token hf_" + "QzXwVuTsRqPoNmLkJiHgFeDcBaZyXwVuTs",
    # this module's own checks
    "-----BEGIN OPENSSH " + "PRIVATE KEY-----",
    "DATABASE_URL=postgres://app:" + "Xy7!pQ2zR" + "@db.internal:5432/crm",
    "mongodb+srv://svc:" + "n0tS0Secret99" + "@cluster0.example.net/db",
    "Server=sql1;Database=crm;User Id=sa;Password=" + "Pa55w0rd!x" + ";",
    "Authorization: Bearer " + "abcdef1234567890XYZ",
    'config {"db": {"host": "x", "password": "' + "S3cr3t!x9" + '"}}',  # JSON-quoted key inside text
    "{'api_key': '" + "k3y_" + "9f8e7d6c5b4a" + "'}",
    "AWS_SECRET_ACCESS_KEY=" + "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY",
    "client_secret: " + "7f3c9a1e5b2d8f4a",
    "Passwort: " + "Sommer2024!",
    "mot de passe : " + "Azerty123!",
    "contraseña: " + "Hola1234x",
    "wachtwoord = " + "Tulp!2025",
    "credenziali del portale, password: " + "Roma#2024",
    "db password = hunter2hunter2",
    # in a sentence
    "The Wi-Fi password for the site visit is " + "Kaffee2026Bremen" + ", please delete after use.",
    "Das Passwort lautet " + "Sommer2026!Hafen" + ", bitte nach dem ersten Login ändern.",
    "Le mot de passe provisoire est " + "Printemps#2026" + ", à changer.",
    "La contraseña temporal es " + "Verano2026!Mar" + ".",
    "La password temporanea è " + "Autunno2026!Lago" + ".",
    "Het tijdelijke wachtwoord is " + "Winter2026!Dijk" + ".",
    "account SID AC3f9e2b7c1d4a8e6f0b5c9d2e7a1f4b8c, auth token " + "9f2c7e1a4b8d3f6e0a5c9b2d7e1f4a8c",
])
def test_credentials_are_found(text: str) -> None:
    assert found(text), text


@pytest.mark.parametrize("text", [
    "password: ********",  # the reported false positive: a masked value
    "password = '••••••••'",
    "api_key=sk_live_****************1234",
    "password=${DB_PASSWORD}",
    "token: {{ api_token }}",
    "api_key = <your-api-key>",
    '"password": "[REDACTED]"',
    "password: changeme",
    "secret=%SECRET%",
    "GitHub token: ghp_" + "x" * 36,
    "Password: forgotten",  # prose
    "the password policy changed",
    "Customer says the reset token expired yesterday, sent a new link.",
    "Primary key: account id; key account manager is Jane.",
    "Der Kunde hat sein Passwort vergessen und bittet um Zurücksetzung.",
    "Le client a oublié son mot de passe.",
    "postgres://app:${PGPASSWORD}@db:5432/crm",
    "Authorization: Bearer <token>",
    "The password policy is strict.",
    "The password is reset weekly.",
    "Your password was changed on 2026-11-28.",
    "The token is expired",
    "API key rotation is scheduled for Q3 2026",
    "Das Passwort ist abgelaufen, Kunde bittet um Reset.",
])
def test_masked_placeholder_and_prose_values_are_not_secrets(text: str) -> None:
    assert not found(text), text


@pytest.mark.parametrize("value", ["********", "${X}", "{{x}}", "<password>", "xxxxxxxx", "changeme", "null",
                                   "ab****yz", "%(pw)s", "your_api_key_here", "[redacted]"])
def test_placeholders(value: str) -> None:
    assert is_placeholder(value)


@pytest.mark.parametrize("value", ["hunter2hunter2", "S3cr3t!x9", "Pa55w0rd!x", RANDOM36])
def test_real_looking_values_are_not_placeholders(value: str) -> None:
    assert not is_placeholder(value)


@pytest.mark.parametrize(("key", "expected"), [
    ("password", True), ("db_password", True), ("Passwords", True), ("pwd", True), ("apiKey", True),
    ("api-key", True), ("client_secret", True), ("accessToken", True), ("refresh_token", True),
    ("ConnectionString", True), ("Kennwort", True), ("motDePasse", True),
    ("password_policy", False), ("passwordHint", False), ("primary_key", False), ("monkey", False),
    ("tokenizer", False), ("key", False), ("description", False), ("keyAccount", False),
])
def test_credential_key_names(key: str, expected: bool) -> None:
    assert is_credential_key(key) is expected


def test_credential_pairs_take_strings_and_lists_of_strings() -> None:
    assert credential_pair("passwords", ["ok", "S3cr3t!x9"])
    assert not credential_pair("passwords", ["********"])
    assert not credential_pair("password", 12345678)
    assert not credential_pair("password_policy", "at least 12 characters")


@pytest.mark.parametrize("value", [
    {"db": {"pwd": "S3cr3t!x9"}},                         # 'pwd': not a catalogued name before
    {"service": {"apiToken": "t0k3n-" + "9f8e7d6c5b4a"}},  # 'apiToken'
    {"credentials": [{"user": "svc", "passwords": ["S3cr3t!x9"]}]},  # a list under a credential key
    json.dumps({"config": [{"name": "crm", "client_secret": "7f3c9a1e5b2d8f4a"}]}),
], ids=["pwd", "apiToken", "list", "json-array"])
def test_nested_credential_pairs_at_any_depth(value: Any) -> None:
    result = DEFAULT.classify(event(Payload__c=value))
    assert result.fields(Category.SECRET) == ("Payload__c",)


@pytest.mark.parametrize("value", [
    {"db": {"password": "********"}},
    {"db": {"password": "${DB_PASSWORD}"}},
    {"password_policy": "at least twelve characters", "token_ttl": "3600s"},
], ids=["masked", "variable", "policy"])
def test_nested_masked_and_unrelated_values_are_not_secrets(value: Any) -> None:
    result = DEFAULT.classify(event(Payload__c=value))
    assert Category.SECRET not in result.categories


def test_the_vendored_rules_name_their_source_version_and_licence() -> None:
    from importlib import resources

    data = resources.files("router.classify").joinpath("data")
    doc = json.loads(data.joinpath("gitleaks_rules.json").read_text("utf-8"))
    assert doc["source"].startswith("https://github.com/gitleaks/gitleaks/blob/" + doc["commit"])
    assert doc["licence"].startswith("MIT") and "MIT License" in data.joinpath("gitleaks_LICENSE").read_text()
    assert len(GITLEAKS_RULE_IDS) == len(doc["rules"]) > 150
    assert "generic-api-key" not in GITLEAKS_RULE_IDS and "generic-api-key" in doc["excluded"]


def test_a_secret_is_reported_by_name_only() -> None:
    result = DEFAULT.classify(event(Description="password=" + "S3cr3t!x9"))
    assert result.fields(Category.SECRET) == ("Description",)
    assert "S3cr3t" not in repr(result)


@pytest.mark.parametrize("make", [
    lambda n: "password=" * (n // 9),                 # an assignment key with no value, repeated
    lambda n: "xoxb-" * (n // 5),                     # a gitleaks keyword, repeated
    lambda n: "postgres://u:" * (n // 13),            # URL credentials never closed by '@'
    lambda n: '"api_key": "' + "a" * n,               # an unterminated quoted value
], ids=["assignments", "keywords", "url", "quoted"])
def test_time_grows_linearly(make: Any) -> None:
    from tests.unit.test_classify_linear import MAX_RATIO, _ratio

    ratio = _ratio(lambda t: SECRET.prefilter(t) and SECRET.confirm(t), make)
    assert ratio < MAX_RATIO, f"8x input took {ratio:.1f}x the time"
