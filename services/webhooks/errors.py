"""Errors of the webhook dispatcher.

| code   | reason            | meaning                                                   | source |
| ------ | ----------------- | --------------------------------------------------------- | ------ |
| -92101 | SECRET_UNREADABLE | a stored signing secret does not open with the master key | Parley |

Parley's own codes; -921xx sits beside billing's -920xx, far from any code the seeds use.
"""

from __future__ import annotations

import grpc

from services.core.errors import ErrorKind

SECRET_UNREADABLE = ErrorKind(
    -92101,
    "SECRET_UNREADABLE",
    grpc.StatusCode.INTERNAL,
    "the app's webhook signing secret cannot be decrypted with the configured PARLEY_WEBHOOKS__MASTER_KEY",
)
