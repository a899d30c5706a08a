"""PARLEY_KAFKA__* security settings become the TLS/SASL options of FastStream's broker and of aiokafka's
admin clients, and an incomplete SASL login stops start-up with one line naming what is missing."""

from __future__ import annotations

import ssl

import pytest
from faststream.security import SASLScram512

from services.core.config import KafkaSettings, Settings
from services.core.errors import StartupError
from services.core.kafka_security import broker_security, client_options


def test_plaintext_needs_nothing() -> None:
    kafka = KafkaSettings()
    assert broker_security(kafka) is None
    assert client_options(kafka) == {"security_protocol": "PLAINTEXT"}


def test_sasl_ssl_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARLEY_KAFKA__SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("PARLEY_KAFKA__SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("PARLEY_KAFKA__SASL_USERNAME", "parley")
    monkeypatch.setenv("PARLEY_KAFKA__SASL_PASSWORD", "s3cret")
    kafka = Settings().kafka
    security = broker_security(kafka)
    assert isinstance(security, SASLScram512)
    assert security.use_ssl and isinstance(security.ssl_context, ssl.SSLContext)
    options = client_options(kafka)
    assert options["sasl_mechanism"] == "SCRAM-SHA-512" and options["sasl_plain_password"] == "s3cret"
    assert options["security_protocol"] == "SASL_SSL" and isinstance(options["ssl_context"], ssl.SSLContext)
    assert "s3cret" not in repr(kafka), "the password never shows in logs of the settings"


def test_tls_with_an_unreadable_ca_file_says_which() -> None:
    kafka = KafkaSettings(security_protocol="SSL", ssl_ca_file="/nonexistent/ca.crt")
    with pytest.raises(StartupError, match=r"/nonexistent/ca\.crt"):
        broker_security(kafka)


def test_sasl_without_a_login_names_the_settings() -> None:
    with pytest.raises(StartupError, match="PARLEY_KAFKA__SASL_MECHANISM"):
        client_options(KafkaSettings(security_protocol="SASL_PLAINTEXT"))
