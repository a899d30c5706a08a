"""Where finished recording files are kept: the local storage folder (seed 002 recordResult fileType 1)
or, when `PARLEY_RECORDER__OBJECT_STORE_URL` is set, any S3-compatible object store (fileType 2),
reached with obstore. Files are always written locally first; a job's files are uploaded once it has
ended, each upload retried with stamina (exponential backoff), and a local copy is removed once its
object is stored. The same keys serve reads (range requests) and deletes.

Keys are the files' paths relative to the storage folder (`<file_path>/<bizName>/<roomId>/<recordId>/
<name>`), under the URL's own prefix.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import obstore
import stamina
import structlog
from obstore.store import S3Store

from services.core.config import RecorderSettings
from services.recorder.jobs import FILE_TYPE_LOCAL, FILE_TYPE_OBJECT_STORE

log = structlog.get_logger(__name__)


class StorageFailed(Exception):
    """The object store refused or did not answer, after the retries: seed 002 event 100201 for an
    upload."""


class FileMissing(Exception):
    """No such file (deleted, or never stored)."""


class Storage(Protocol):
    file_type: int

    def location(self, folder: str) -> str:
        """recordResult filePath of a job's folder."""
        ...

    async def keep(self, local: Path, key: str) -> None:
        """Make the finished local file `local` durable under `key`; raises StorageFailed."""
        ...

    async def size(self, key: str) -> int:
        """Raises FileMissing."""
        ...

    async def read(self, key: str, start: int, end: int) -> bytes:
        """Bytes [start, end) of the file; raises FileMissing."""
        ...

    async def delete(self, key: str) -> None:
        """Gone from storage (missing already is fine); raises StorageFailed."""
        ...


@dataclass
class LocalStorage:
    root: Path
    file_type: int = FILE_TYPE_LOCAL

    def location(self, folder: str) -> str:
        return folder

    async def keep(self, local: Path, key: str) -> None:
        """Written where it stays already."""

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise FileMissing(key)
        return path

    async def size(self, key: str) -> int:
        try:
            return self._path(key).stat().st_size
        except OSError:
            raise FileMissing(key) from None

    async def read(self, key: str, start: int, end: int) -> bytes:
        def read() -> bytes:
            with self._path(key).open("rb") as file:
                file.seek(start)
                return file.read(max(0, end - start))

        try:
            return await asyncio.to_thread(read)
        except OSError:
            raise FileMissing(key) from None

    async def delete(self, key: str) -> None:
        try:
            self._path(key).unlink(missing_ok=True)
        except OSError as error:
            raise StorageFailed(str(error)) from None


class ObjectStorage:
    file_type = FILE_TYPE_OBJECT_STORE

    def __init__(self, settings: RecorderSettings) -> None:
        self._url = settings.object_store_url.rstrip("/")
        config: dict[str, Any] = {}
        if settings.object_store_endpoint:
            config["endpoint"] = settings.object_store_endpoint
        if settings.object_store_region:
            config["region"] = settings.object_store_region
        if settings.object_store_access_key_id:
            config["access_key_id"] = settings.object_store_access_key_id
            config["secret_access_key"] = settings.object_store_secret_access_key.get_secret_value()
        # Encryption at rest is the store's (SSE): every object is put with the header, and the store
        # decrypts on reads for whoever may read the object; Parley holds no key.
        if settings.object_store_encryption:
            config["server_side_encryption"] = settings.object_store_encryption
        if settings.object_store_kms_key_id:
            config["sse_kms_key_id"] = settings.object_store_kms_key_id
        # Retries are stamina's (counted, logged, the same for every call); obstore's own are off.
        self._store = S3Store.from_url(
            self._url,
            config=config,  # type: ignore[arg-type]
            client_options={"allow_http": settings.object_store_endpoint.startswith("http://")},
            retry_config={"max_retries": 0},
        )
        self._attempts = settings.upload_attempts
        self._wait_initial_s = settings.upload_wait_initial_s

    def location(self, folder: str) -> str:
        return f"{self._url}/{folder}"

    async def keep(self, local: Path, key: str) -> None:
        async def put() -> None:
            await obstore.put_async(self._store, key, local)

        await self._retried(put, key)
        await asyncio.to_thread(local.unlink, missing_ok=True)

    async def size(self, key: str) -> int:
        try:
            meta = await obstore.head_async(self._store, key)
        except FileNotFoundError:
            raise FileMissing(key) from None
        except Exception as error:
            raise StorageFailed(str(error)) from None
        return int(meta["size"])

    async def read(self, key: str, start: int, end: int) -> bytes:
        if end <= start:
            return b""
        try:
            return bytes(await obstore.get_range_async(self._store, key, start=start, end=end))
        except FileNotFoundError:
            raise FileMissing(key) from None
        except Exception as error:
            raise StorageFailed(str(error)) from None

    async def delete(self, key: str) -> None:
        async def delete() -> None:
            await obstore.delete_async(self._store, key)

        await self._retried(delete, key)

    async def _retried(self, call: Any, key: str) -> None:
        try:
            async for attempt in stamina.retry_context(
                on=Exception, attempts=self._attempts, wait_initial=self._wait_initial_s, wait_max=10.0
            ):
                with attempt:
                    await call()
        except Exception as error:
            log.warning("object_store_failed", key=key, attempts=self._attempts, error=str(error))
            raise StorageFailed(f"object store: {error}") from None


def storage_for(settings: RecorderSettings, storage_dir: Path) -> Storage:
    if settings.object_store_url:
        return ObjectStorage(settings)
    return LocalStorage(storage_dir)
