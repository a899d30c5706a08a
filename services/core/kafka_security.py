"""TLS and SASL to the Kafka brokers, from `PARLEY_KAFKA__*`: the same choice for the services' FastStream
brokers and for the admin clients (`parley topics`, start-up checks)."""

from __future__ import annotations

import ssl
from typing import Any

from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512

from services.core.config import KafkaSettings
from services.core.errors import StartupError

_SASL = {"PLAIN": SASLPlaintext, "SCRAM-SHA-256": SASLScram256, "SCRAM-SHA-512": SASLScram512}


def _ssl_context(kafka: KafkaSettings) -> ssl.SSLContext | None:
    if kafka.security_protocol not in ("SSL", "SASL_SSL"):
        return None
    try:
        return ssl.create_default_context(cafile=str(kafka.ssl_ca_file) if kafka.ssl_ca_file else None)
    except (OSError, ssl.SSLError) as error:
        raise StartupError(f"Kafka CA file {kafka.ssl_ca_file} is not usable: {error}") from None


def _login(kafka: KafkaSettings) -> tuple[str, str, str]:
    if kafka.sasl_mechanism is None or kafka.sasl_username is None or kafka.sasl_password is None:
        raise StartupError(
            f"Kafka security protocol {kafka.security_protocol} needs PARLEY_KAFKA__SASL_MECHANISM, "
            "__SASL_USERNAME and __SASL_PASSWORD"
        )
    return kafka.sasl_mechanism, kafka.sasl_username, kafka.sasl_password.get_secret_value()


def broker_security(kafka: KafkaSettings) -> BaseSecurity | None:
    """What FastStream's KafkaBroker takes as `security`; None for PLAINTEXT."""
    context = _ssl_context(kafka)
    if kafka.security_protocol.startswith("SASL_"):
        mechanism, username, password = _login(kafka)
        use_ssl = context is not None
        security: BaseSecurity = _SASL[mechanism](username, password, ssl_context=context, use_ssl=use_ssl)
        return security
    if context is not None:
        return BaseSecurity(ssl_context=context, use_ssl=True)
    return None


def client_options(kafka: KafkaSettings) -> dict[str, Any]:
    """Keyword arguments of aiokafka's clients (AIOKafkaAdminClient and the like)."""
    options: dict[str, Any] = {"security_protocol": kafka.security_protocol}
    context = _ssl_context(kafka)
    if context is not None:
        options["ssl_context"] = context
    if kafka.security_protocol.startswith("SASL_"):
        mechanism, username, password = _login(kafka)
        options.update(sasl_mechanism=mechanism, sasl_plain_username=username, sasl_plain_password=password)
    return options
