"""Every service's error catalogue together: a reason names one kind across the platform.

Kinds are decoded from the ErrorInfo they carry (services/core/errors.py), so a client tells them apart by
reason and code; two services defining one reason with different codes or statuses would be confused.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
from collections import defaultdict

import services
from services.core.errors import ErrorKind


def catalogue_modules() -> list[str]:
    names = ["services.core.errors", "services.core.shared_errors"]
    for service in pkgutil.iter_modules(services.__path__):
        if service.ispkg and importlib.util.find_spec(f"services.{service.name}.errors") is not None:
            names.append(f"services.{service.name}.errors")
    return names


def test_every_service_with_errors_is_in_the_catalogue() -> None:
    assert {"services.gateway.errors", "services.rooms.errors", "services.licence.errors"} <= set(
        catalogue_modules()
    )


def test_a_reason_has_one_code_and_status_across_the_services() -> None:
    defined: dict[str, set[ErrorKind]] = defaultdict(set)
    for name in catalogue_modules():
        for value in vars(importlib.import_module(name)).values():
            if isinstance(value, ErrorKind):
                defined[value.reason].add(value)
    assert len(defined) > 50
    assert {reason: kinds for reason, kinds in defined.items() if len(kinds) > 1} == {}
