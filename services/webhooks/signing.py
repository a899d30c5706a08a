"""Standard Webhooks signatures (https://www.standardwebhooks.com, the `standardwebhooks` package).

Each app has one secret `whsec_<base64 of 32 random bytes>`. A rotated-out secret keeps signing beside the
new one for `ROTATION_OVERLAP`: `webhook-signature` then carries both signatures, space-separated, so a
receiver still configured with the old secret verifies, and one already on the new secret does too.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from standardwebhooks.webhooks import Webhook

ROTATION_OVERLAP = timedelta(hours=24)
SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


@dataclass(frozen=True)
class SigningSecrets:
    current: str
    previous: str | None = None
    previous_valid_until: datetime | None = None

    def active(self, now: datetime) -> list[str]:
        if self.previous and self.previous_valid_until and now < self.previous_valid_until:
            return [self.current, self.previous]
        return [self.current]

    def rotated(self, now: datetime) -> SigningSecrets:
        return SigningSecrets(new_secret(), self.current, now + ROTATION_OVERLAP)


@lru_cache(maxsize=1024)
def _signer(secret: str) -> Webhook:
    """One signer per secret: making one decodes the key, a cost every delivery paid (bench/README.md)."""
    return Webhook(secret)


def signed_headers(secrets_: SigningSecrets, message_id: str, body: bytes, now: datetime) -> dict[str, str]:
    """The three Standard Webhooks headers for `body`, signed with every active secret."""
    signatures = [_signer(secret).sign(message_id, now, body) for secret in secrets_.active(now)]
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": " ".join(signatures),
    }
