"""The secured dev cluster's CA: what each certificate says, who signed it, and how its files are kept."""

from __future__ import annotations

import datetime
import ipaddress
import re
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from router.devtools.devcluster import secure, tls

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def ca() -> tls.CertificateAuthority:
    return tls.new_ca("test CA")


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def test_ca_may_sign_end_entity_certificates_only(ca: tls.CertificateAuthority) -> None:
    bc = ca.cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca and bc.value.path_length == 0
    ku = ca.cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.key_cert_sign and ku.crl_sign and not ku.digital_signature
    assert ca.cert.issuer == ca.cert.subject
    ca.cert.verify_directly_issued_by(ca.cert)  # self-signed with its own key


def test_certificates_are_valid_now_and_for_at_most_the_stated_period(ca: tls.CertificateAuthority) -> None:
    _, broker = tls.broker_certificate(ca, "kafka-node-1")
    for cert in (ca.cert, broker):
        assert cert.not_valid_before_utc <= _now() < cert.not_valid_after_utc
        assert cert.not_valid_after_utc - cert.not_valid_before_utc <= datetime.timedelta(days=91)
    assert broker.not_valid_after_utc <= ca.cert.not_valid_after_utc


def test_broker_certificate_names_loopback_and_serves_both_ends(ca: tls.CertificateAuthority) -> None:
    key, cert = tls.broker_certificate(ca, "kafka-node-2")
    cert.verify_directly_issued_by(ca.cert)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["localhost"]
    assert sans.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.digital_signature and not ku.key_cert_sign
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "kafka-node-2"
    assert cert.subject.rfc4514_string() == "CN=kafka-node-2,OU=brokers"
    assert cert.public_key() == key.public_key()


def test_client_certificate_carries_the_principal_as_cn_and_client_use_only(ca: tls.CertificateAuthority) -> None:
    key, cert = tls.client_certificate(ca, "consumer-eu")
    cert.verify_directly_issued_by(ca.cert)
    assert cert.subject.rfc4514_string() == "CN=consumer-eu,OU=clients"
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    with pytest.raises(x509.ExtensionNotFound):
        cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert cert.public_key() == key.public_key()


def test_another_ca_did_not_sign_a_certificate(ca: tls.CertificateAuthority) -> None:
    impostor = tls.new_ca("test CA")  # the same name, another key
    _, cert = tls.client_certificate(impostor, "router")
    assert cert.issuer == ca.cert.subject
    with pytest.raises(InvalidSignature):
        cert.verify_directly_issued_by(ca.cert)


def test_keys_are_unencrypted_pkcs8_pem(ca: tls.CertificateAuthority) -> None:
    key, _ = tls.client_certificate(ca, "router")
    pem = tls.key_pem(key)
    assert pem.startswith(b"-----BEGIN " + b"PRIVATE KEY-----")  # PKCS#8, what Kafka's PEM key store reads
    loaded = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(loaded, ec.EllipticCurvePrivateKey)


def test_write_private_is_0600_even_over_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "secret"
    path.parent.mkdir()
    path.write_bytes(b"old")
    path.chmod(0o644)
    tls.write_private(path, b"new")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes() == b"new"


def _kafka_rules() -> list[tuple[re.Pattern[str], str]]:
    """``RULE:<regex>/<replacement>/`` entries of the mapping rules, as Kafka's SslPrincipalMapper
    reads them (Java ``$1`` is Python ``\\1``)."""
    rules = []
    for m in re.finditer(r"RULE:(.*?)/(.*?)/", secure.PRINCIPAL_MAPPING_RULES):
        rules.append((re.compile(m.group(1)), re.sub(r"\$(\d)", r"\\\1", m.group(2))))
    return rules


def _principal(subject: str) -> str:
    for regex, replacement in _kafka_rules():
        if regex.fullmatch(subject):
            return regex.sub(replacement, subject)
    return subject  # DEFAULT


def test_mapping_rules_turn_certificate_subjects_into_principals(ca: tls.CertificateAuthority) -> None:
    _, client = tls.client_certificate(ca, "router")
    _, broker = tls.broker_certificate(ca, "kafka-node-3")
    assert _principal(client.subject.rfc4514_string()) == "router"
    assert _principal(broker.subject.rfc4514_string()) == secure.SUPER_USER
    assert secure.PRINCIPAL_MAPPING_RULES.endswith(",DEFAULT")
    assert f"OU={tls.BROKER_OU}$" in secure.PRINCIPAL_MAPPING_RULES
    assert f"OU={tls.CLIENT_OU}$" in secure.PRINCIPAL_MAPPING_RULES
    # A subject of neither shape keeps its full name, which no ACL or super user names.
    assert _principal("CN=router,OU=other") == "CN=router,OU=other"
