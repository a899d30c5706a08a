"""Recordings kept in an S3-compatible object store (moto's server mode, its own process on loopback):
a stopped job uploads its files (status 1 while it does), reports fileType 2 with the store's URL, and
leaves no local copy; an object store that refuses uploads gives 100201 after the retries, and the files
stay in the local folder. The platform here is tests/testing.py's, with the recorder pointed at moto.
With PARLEY_RECORDER__OBJECT_STORE_ENCRYPTION every file is put with S3 server-side encryption, which the
server records on the object; reads (ranges) and deletes work as without it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from parley.recorder.v1 import recorder_pb2

from services.core.config import RecorderSettings, ServiceName
from services.core.topics import Topic
from services.recorder.storage import FileMissing, ObjectStorage
from tests.ffprobe import probe
from tests.s3 import S3Server, s3_server
from tests.testing import Facts, Platform, start_platform

pytestmark = pytest.mark.integration

BUCKET = "recordings"


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with s3_server(tmp_path_factory.mktemp("moto"), BUCKET) as server:
        yield server


@pytest.fixture(scope="module")
async def platform(tmp_path_factory: pytest.TempPathFactory, s3: S3Server) -> AsyncIterator[Platform]:
    # The conftest's `app` and `clients` run on this platform (its ws_url and licence).
    recorder = s3.recorder_settings(f"s3://{BUCKET}/parley", upload_attempts=3, upload_wait_initial_s=0.05)
    async with start_platform(
        tmp_path_factory.mktemp("platform"),
        ServiceName.LICENCE,
        ServiceName.ROOMS,
        ServiceName.RELAY,
        ServiceName.RECORDER,
        ServiceName.GATEWAY,
        settings={"recorder": recorder},
    ) as started:
        await started.consumers_joined(ServiceName.ROOMS, ServiceName.RECORDER)
        yield started


@pytest.fixture(scope="module")
async def facts(platform: Platform) -> Facts:
    return await platform.record([Topic.RECORDING], [recorder_pb2.RecordingEvent], timeout_s=30)


async def record_a_while(clients: Any, publishers: Any) -> tuple[Any, str, dict[str, Any]]:
    alice = await clients()
    room = await alice.ok("create_room")
    await publishers().publish(alice)
    record_id = (await alice.ok("start_record", room_id=room["room_id"]))["record_id"]
    await asyncio.sleep(2.5)
    return alice, record_id, await alice.ok("stop_record", record_id=record_id)


async def test_files_are_uploaded_and_reported_in_the_object_store(
    platform: Platform, facts: Facts, s3: S3Server, clients: Any, publishers: Any, tmp_path: Path
) -> None:
    alice, record_id, stopped = await record_a_while(clients, publishers)
    # Stopped, its files on their way to the store: seed GetRecordInfo status 1, or done already.
    assert stopped["status"] in (1, 2)
    result = (await facts.wait_for(record_id, event_code=99)).record_result
    [file] = result.files
    assert (result.status, result.file_type) == (2, 2)
    assert result.file_path == f"s3://{BUCKET}/parley/{file.path.rsplit('/', 1)[0]}"
    info = (await alice.ok("get_record_info", record_id=record_id))["record_info"]
    assert (info["status"], info["state"], info["file_type"]) == (2, "ended", 2)
    assert info["file_path"] == result.file_path

    key = f"parley/{file.path}"
    stored = s3.client().get_object(Bucket=BUCKET, Key=key)["Body"].read()
    assert len(stored) == file.size_bytes > 0
    copy = tmp_path / file.name
    copy.write_bytes(stored)
    assert probe(copy).codecs == {"video": "h264", "audio": "aac"}
    # No local copy is kept once the object is stored.
    assert not (platform.settings.recordings_dir() / file.path).exists()
    assert [event.event_code for event in facts.events(record_id)] == [10, 0, 11, 99]


async def test_an_object_store_that_refuses_uploads_gives_100201_after_the_retries(
    platform: Platform, facts: Facts, s3: S3Server, clients: Any, publishers: Any
) -> None:
    # moto forgets every bucket: each upload is answered NoSuchBucket.
    async with httpx.AsyncClient() as http:
        (await http.post(f"{s3.endpoint}/moto-api/reset")).raise_for_status()
    alice, record_id, _ = await record_a_while(clients, publishers)
    failed = await facts.wait_for(record_id, event_code=100201)
    assert "object store" in failed.message
    result = (await facts.wait_for(record_id, event_code=99)).record_result
    assert (result.status, result.file_type) == (3, 1)
    [file] = result.files
    # The file stays where it was written, whole.
    local = platform.settings.recordings_dir() / file.path
    assert local.stat().st_size == file.size_bytes and probe(local).codecs == {
        "video": "h264",
        "audio": "aac",
    }
    info = (await alice.ok("get_record_info", record_id=record_id))["record_info"]
    assert (info["status"], info["state"], info["failure_code"]) == (3, "failed", 100201)
    assert [event.event_code for event in facts.events(record_id)] == [10, 0, 11, 100201, 99]
    failure = await alice.event("on_remote_recording_failed")
    assert (failure["record_id"], failure["code"], failure["event_code"]) == (record_id, -12482, 100201)


async def test_files_in_the_object_store_are_listed_read_by_range_and_deleted(
    platform: Platform, facts: Facts, s3: S3Server, app: Any, clients: Any, publishers: Any
) -> None:
    s3.client().create_bucket(Bucket=BUCKET)
    _, record_id, _ = await record_a_while(clients, publishers)
    await facts.wait_for(record_id, event_code=99)
    async with httpx.AsyncClient(base_url=platform.http_url, timeout=30) as http:
        listed = (
            await http.get(f"/v1/apps/{app.biz_name}/recordings", params={"recordId": record_id})
        ).json()
        [item] = listed["recordings"]
        key = item["filePath"].removeprefix(f"s3://{BUCKET}/")
        assert item["fileType"] == 2 and item["filePath"].startswith(f"s3://{BUCKET}/parley/")
        stored = s3.client().get_object(Bucket=BUCKET, Key=key)["Body"].read()
        assert len(stored) == item["sizeBytes"]
        part = await http.get(item["downloadUrl"], headers={"range": "bytes=10-1033"})
        assert (part.status_code, part.content) == (206, stored[10:1034])
        assert (await http.get(item["downloadUrl"])).content == stored
        deleted = await http.delete(f"/v1/apps/{app.biz_name}/recordings/{item['fileId']}")
        assert deleted.json() == {"deleted": [item["fileId"]]}
    assert s3.client().list_objects_v2(Bucket=BUCKET, Prefix=key).get("KeyCount") == 0
    event = await facts.wait_for(record_id, event_code=910003)
    assert event.file.file_id == item["fileId"]


@pytest.mark.parametrize(
    ("encryption", "kms_key_id"), [("AES256", ""), ("aws:kms", "alias/parley-recordings"), ("", "")]
)
async def test_files_are_put_with_the_stores_encryption_and_read_back(
    s3: S3Server, tmp_path: Path, encryption: str, kms_key_id: str
) -> None:
    settings = RecorderSettings(
        **s3.recorder_settings(
            f"s3://{BUCKET}/sealed", object_store_encryption=encryption, object_store_kms_key_id=kms_key_id
        )
    )
    storage = ObjectStorage(settings)
    local = tmp_path / "a.mp4"
    local.write_bytes(bytes(range(256)) * 4)
    key = f"biz/room/r-{encryption.replace(':', '-') or 'plain'}/a.mp4"
    await storage.keep(local, key)

    head = s3.client().head_object(Bucket=BUCKET, Key=f"sealed/{key}")
    assert head.get("ServerSideEncryption", "") == encryption
    assert head.get("SSEKMSKeyId", "").endswith(kms_key_id)
    assert not local.exists()
    assert await storage.size(key) == 1024
    assert await storage.read(key, 250, 260) == bytes(range(250, 256)) + bytes(range(4))
    await storage.delete(key)
    with pytest.raises(FileMissing):
        await storage.size(key)


def test_a_kms_key_without_kms_encryption_is_refused() -> None:
    with pytest.raises(ValueError, match="aws:kms"):
        RecorderSettings(object_store_kms_key_id="alias/x", object_store_encryption="AES256")
