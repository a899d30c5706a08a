"""Call apps: their identifiers, settings and key pairs, and the signatures made with those keys
(seed 002 section 4, temporary signatures section 5.3).

Identifiers Parley generates for an app (002 section 4 names them; its examples are placeholders):

- bizName: "biz" and 12 lowercase hex digits, e.g. `biz5f3a9c0e21d4`. 002 calls it the scene code the
  console generates ("应用创建后自动生成"); lowercase ASCII, like the seed's `demo`, survives URLs, topic
  keys and log lines unchanged.
- appId: "PARLEY" and 13 uppercase hex digits, e.g. `PARLEY059F038311550`: the shape of an mPaaS appId
  (`ALIPUB059F038311550`), which customers' signing code and configuration files already hold.
- workspaceId: `default`, the seed's value throughout (002 sections 3 and 4). Parley has no workspaces.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import rsa

from services.core.errors import INVALID_ARGUMENT
from services.licence import keys, signatures
from services.licence.errors import APP_NOT_FOUND, SIGNATURE_UNKNOWN_APP
from services.licence.records import (
    HOST,
    NAME,
    URL,
    AppChanged,
    AppCreated,
    AppRecord,
    AppSettings,
    VerifiedSignature,
)
from services.licence.store import AppChanges, LicenceReads, LicenceStore, LicenceWrites, SealedApp

WORKSPACE_ID = "default"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# 002 section 5.1.2: the media proxy is a host name such as `example.aliyundoc.com`; Parley also takes a port.
_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::[0-9]{1,5})?")


# How long an app's verifying key, once read, serves signature checks: every `connect` of a user verifies a
# signature, and reading the app from the database for each was most of this service's CPU per connect.
# This process's own changes to an app (key rotated, app deleted) drop its entry at once; another licence
# replica's are seen here at most this much later.
VERIFYING_KEY_TTL = timedelta(seconds=5)


@dataclass(frozen=True)
class _VerifyingKey:
    app_id: str
    workspace_id: str
    public_key: rsa.RSAPublicKey
    read_at: datetime


class Apps:
    def __init__(
        self, store: LicenceStore, master_key: keys.MasterKey, clock: Callable[[], datetime]
    ) -> None:
        self._store = store
        self._master_key = master_key
        self._clock = clock
        # By bizName; apps that exist only (a bizName nobody has is read again every time).
        self._verifying_keys: dict[str, _VerifyingKey] = {}

    async def create_app(self, name: str, settings: AppSettings) -> tuple[AppRecord, str]:
        """The new app and its private key (Base64 PKCS#8 DER), which Parley shows this once."""
        name = _valid_name(name)
        _check_settings(settings)
        private_key = await _generate_private_key()
        app_id = f"PARLEY{secrets.randbits(52):013X}"
        now = self._clock()
        app = AppRecord(
            biz_name=f"biz{secrets.randbits(48):012x}",
            app_id=app_id,
            workspace_id=WORKSPACE_ID,
            name=name,
            public_key=keys.export_public_key(private_key.public_key()),
            settings=settings,
            created_at=now,
            updated_at=now,
        )
        async with self._store.writing() as unit:
            await unit.add_app(SealedApp(app, self._master_key.seal(private_key, app_id=app_id)))
            await unit.stage(AppCreated(app))
        return app, keys.export_private_key(private_key)

    async def list_apps(self) -> list[AppRecord]:
        async with self._store.reading() as reads:
            return await reads.list_apps()

    async def get_app(self, biz_name: str) -> AppRecord:
        async with self._store.reading() as reads:
            return await require_app(reads, biz_name)

    async def update_app(
        self, biz_name: str, *, name: str | None = None, settings: AppSettings | None = None
    ) -> AppRecord:
        """Rename and/or replace the settings; what is None stays as it is."""
        updated_at = self._clock()
        if name is not None:
            name = _valid_name(name)
        if settings is not None:
            _check_settings(settings)
        async with self._store.writing() as unit:
            await _update_app(unit, biz_name, AppChanges(updated_at, name=name, settings=settings))
            app = await require_app(unit, biz_name)
            await unit.stage(AppChanged(app))
        return app

    async def rotate_key(self, biz_name: str) -> tuple[AppRecord, str]:
        """A new key pair; signatures made with the old key stop verifying at once."""
        private_key = await _generate_private_key()
        async with self._store.writing() as unit:
            # The app_id is the sealing's associated data and never changes, so reading it first is safe.
            app = await require_app(unit, biz_name)
            public_key = keys.export_public_key(private_key.public_key())
            changes = AppChanges(
                updated_at=self._clock(),
                public_key=public_key,
                private_key_sealed=self._master_key.seal(private_key, app_id=app.app_id),
            )
            await _update_app(unit, biz_name, changes)
            rotated = replace(app, public_key=public_key, updated_at=changes.updated_at)
            await unit.stage(AppChanged(rotated, key_rotated=True))
        self._verifying_keys.pop(biz_name, None)
        return rotated, keys.export_private_key(private_key)

    async def reveal_key(self, biz_name: str) -> tuple[AppRecord, str]:
        """The app and its current private key (Base64 PKCS#8 DER), as create_app answered it: the
        operator's 查看密钥 (seed 002 5.1)."""
        sealed = await self._sealed(biz_name)
        private_key = self._master_key.open(sealed.private_key_sealed, app_id=sealed.app.app_id)
        return sealed.app, keys.export_private_key(private_key)

    async def delete_app(self, biz_name: str) -> AppRecord:
        """Delete the app with everything under it: licence pools (used or not), activations, snTickets,
        registrations, users and authorisations. Its devices can no longer call (-2) and their sns may be
        activated again, under any app. The bizName and appId are random, so they are not reused."""
        async with self._store.writing() as unit:
            app = await require_app(unit, biz_name)
            await unit.delete_app(biz_name)
            await unit.stage(AppChanged(app, deleted=True))
        self._verifying_keys.pop(biz_name, None)
        return app

    async def issue_signature(self, biz_name: str, uid: str, ttl: str) -> signatures.TemporarySignature:
        sealed = await self._sealed(biz_name)
        app = sealed.app
        private_key = self._master_key.open(sealed.private_key_sealed, app_id=app.app_id)
        return signatures.sign_temporary(
            private_key,
            biz_name=biz_name,
            app_id=app.app_id,
            workspace_id=app.workspace_id,
            uid=uid,
            ttl=ttl,
            now_ms=_epoch_ms(self._clock()),
        )

    async def _sealed(self, biz_name: str) -> SealedApp:
        async with self._store.reading() as reads:
            sealed = await reads.find_sealed_app(biz_name)
        if sealed is None:
            raise APP_NOT_FOUND(f"no app has bizName {biz_name!r}")
        return sealed

    async def verify_signature(self, biz_name: str, uid: str, signature: str) -> VerifiedSignature:
        """Raises -102 with a reason saying which check failed; an unknown bizName is one of them."""
        now = self._clock()
        key = await self._verifying_key(biz_name, now)
        expire_time_ms = signatures.verify(
            key.public_key,
            signature,
            biz_name=biz_name,
            app_id=key.app_id,
            workspace_id=key.workspace_id,
            uid=uid,
            now_ms=_epoch_ms(now),
        )
        return VerifiedSignature(key.app_id, key.workspace_id, expire_time_ms)

    async def _verifying_key(self, biz_name: str, now: datetime) -> _VerifyingKey:
        known = self._verifying_keys.get(biz_name)
        if known is not None and now - known.read_at < VERIFYING_KEY_TTL:
            return known
        async with self._store.reading() as reads:
            app = await reads.find_app(biz_name)
        if app is None:
            self._verifying_keys.pop(biz_name, None)
            raise SIGNATURE_UNKNOWN_APP(f"no app has bizName {biz_name!r}")
        key = _VerifyingKey(app.app_id, app.workspace_id, keys.load_public_key(app.public_key), now)
        self._verifying_keys[biz_name] = key
        return key


async def require_app(reads: LicenceReads, biz_name: str) -> AppRecord:
    app = await reads.find_app(biz_name)
    if app is None:
        raise APP_NOT_FOUND(f"no app has bizName {biz_name!r}")
    return app


async def _update_app(unit: LicenceWrites, biz_name: str, changes: AppChanges) -> None:
    if not await unit.update_app(biz_name, changes):
        raise APP_NOT_FOUND(f"no app has bizName {biz_name!r}")


async def _generate_private_key() -> rsa.RSAPrivateKey:
    # An RSA-2048 key takes tens to hundreds of milliseconds to find; the event loop serves others meanwhile.
    return await asyncio.to_thread(keys.generate_private_key)


def _epoch_ms(instant: datetime) -> int:
    return (instant - _EPOCH) // timedelta(milliseconds=1)


def _valid_name(name: str) -> str:
    stripped = name.strip()
    if not 1 <= len(stripped) <= NAME:
        raise INVALID_ARGUMENT(f"an app's name is 1 to {NAME} characters")
    return stripped


def _check_settings(settings: AppSettings) -> None:
    # 002 section 5.1.2: both callback addresses are "使用 HTTP 或 HTTPS 协议的 URL".
    for field, url in (
        ("record_callback_url", settings.record_callback_url),
        ("room_status_callback_url", settings.room_status_callback_url),
    ):
        if url and not _is_http_url(url):
            raise INVALID_ARGUMENT(f"{field} must be an http or https URL of at most {URL} characters")
    if settings.media_proxy and not (
        len(settings.media_proxy) <= HOST and _HOST.fullmatch(settings.media_proxy)
    ):
        raise INVALID_ARGUMENT(
            "media_proxy must be a host name such as proxy.example.com, with an optional port"
        )


def _is_http_url(url: str) -> bool:
    if len(url) > URL or any(character.isspace() for character in url):
        return False
    try:
        parts = urlsplit(url)
        # .port raises ValueError for a port that is not a number from 0 to 65535.
        return parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
    except ValueError:
        return False
