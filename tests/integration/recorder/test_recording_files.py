"""Recording file management (seed 002 5.2) through the gateway's operator HTTP routes and the `parley
recordings` CLI (a real subprocess against the running gateway), on files in the local storage folder:
an app's backend starts and stops a recording over HTTP, lists it, downloads with range requests, deletes
one file with the CLI and a batch over HTTP, each with its event."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.ffprobe import probe

pytestmark = pytest.mark.integration

LISTING_KEYS = {
    "recordId",
    "roomId",
    "fileId",
    "fileType",
    "filePath",
    "format",
    "mediaType",
    "sizeBytes",
    "durationMs",
    "recordStartTime",
    "downloadUrl",
}


def http_url(platform: Any) -> str:
    return str(platform.ws_url).replace("ws://", "http://").removesuffix("/ws/v1")


async def parley_cli(*args: str) -> tuple[int, bytes, bytes]:
    """`parley ...` as an operator runs it: its own process."""
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "parley"),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode or 0, out, err


async def recorded_by_the_backend(
    http: httpx.AsyncClient, clients: Any, publishers: Any, biz_name: str
) -> dict[str, Any]:
    """A call of two feeds recorded one file per feed, started and stopped over HTTP."""
    alice = await clients()
    room = await alice.ok("create_room")
    await publishers().publish(alice, tag="a")
    await publishers(video="video/H264").publish(alice, tag="b")
    started = await http.post(
        f"/v1/rooms/{room['room_id']}/recordings",
        json={"bizName": biz_name, "recordParam": {"mode": "single"}, "recordThirdId": "backend-1"},
    )
    assert started.status_code == 201, started.text
    record_id = started.json()["recordId"]
    assert started.json() == {"recordId": record_id, "recordThirdId": "backend-1"}
    async with asyncio.timeout(30):
        while True:
            files = (await alice.ok("get_record_info", record_id=record_id))["record_info"]["files"]
            if len(files) == 2 and all(f["video_packets"] > 10 for f in files):
                break
            await asyncio.sleep(0.1)
    stopped = await http.post(
        f"/v1/rooms/{room['room_id']}/recordings/{record_id}/stop", json={"bizName": biz_name}
    )
    assert stopped.status_code == 200, stopped.text
    assert stopped.json()["state"] == "ended" and len(stopped.json()["fileIds"]) == 2
    return {"room_id": room["room_id"], "record_id": record_id, "file_ids": stopped.json()["fileIds"]}


async def test_list_download_with_ranges_and_delete_through_http_and_the_cli(
    platform: Any, app: Any, clients: Any, publishers: Any, tmp_path: Path
) -> None:
    async with httpx.AsyncClient(base_url=http_url(platform), timeout=30) as http:
        recording = await recorded_by_the_backend(http, clients, publishers, app.biz_name)
        record_id = recording["record_id"]
        listed = (
            await http.get(f"/v1/apps/{app.biz_name}/recordings", params={"recordId": record_id})
        ).json()
        assert listed["total"] == 2 and set(listed) == {"recordings", "total"}
        assert all(set(item) == LISTING_KEYS for item in listed["recordings"])
        by_id = {item["fileId"]: item for item in listed["recordings"]}
        assert set(by_id) == set(recording["file_ids"])
        for item in by_id.values():
            assert (item["recordId"], item["roomId"], item["fileType"], item["format"]) == (
                record_id,
                recording["room_id"],
                1,
                "mp4",
            )
            assert item["sizeBytes"] == (platform.storage_dir / item["filePath"]).stat().st_size
            assert item["durationMs"] > 0 and item["recordStartTime"] > 0 and item["mediaType"] == 0
        # Paged, and by time range: nothing started in the future.
        page = (
            await http.get(f"/v1/apps/{app.biz_name}/recordings", params={"limit": 1, "offset": 1})
        ).json()
        assert len(page["recordings"]) == 1 and page["total"] >= 2
        later = min(item["recordStartTime"] for item in by_id.values()) + 3_600_000
        empty = (await http.get(f"/v1/apps/{app.biz_name}/recordings", params={"start": later})).json()
        assert empty == {"recordings": [], "total": 0}
        other_app = (await http.get("/v1/apps/no-such-app/recordings")).json()
        assert other_app["total"] == 0

        file_id, item = next(iter(by_id.items()))
        whole = (platform.storage_dir / item["filePath"]).read_bytes()
        full = await http.get(item["downloadUrl"])
        assert (full.status_code, full.content) == (200, whole)
        assert full.headers["accept-ranges"] == "bytes" and full.headers["content-type"] == "video/mp4"
        first = await http.get(item["downloadUrl"], headers={"range": "bytes=0-99"})
        assert (first.status_code, first.content) == (206, whole[:100])
        assert first.headers["content-range"] == f"bytes 0-99/{len(whole)}"
        tail = await http.get(item["downloadUrl"], headers={"range": "bytes=-50"})
        assert (tail.status_code, tail.content) == (206, whole[-50:])
        middle = await http.get(item["downloadUrl"], headers={"range": f"bytes={len(whole) - 10}-"})
        assert middle.content == whole[-10:]
        beyond = await http.get(item["downloadUrl"], headers={"range": f"bytes={len(whole)}-"})
        assert beyond.status_code == 416 and beyond.headers["content-range"] == f"bytes */{len(whole)}"

        # The CLI lists and downloads the same.
        code, out, err = await parley_cli(
            "recordings",
            "list",
            "--biz-name",
            app.biz_name,
            "--record-id",
            record_id,
            "--url",
            http_url(platform),
        )
        assert code == 0, err
        assert json.loads(out) == listed
        target = tmp_path / "copy.mp4"
        code, _, err = await parley_cli(
            "recordings",
            "download",
            "--biz-name",
            app.biz_name,
            file_id,
            "-o",
            str(target),
            "--url",
            http_url(platform),
        )
        assert code == 0, err
        assert target.read_bytes() == whole and probe(target).codecs == {"video": "h264", "audio": "aac"}

        # Deleted with the CLI (one) and over HTTP (the batch): gone from storage and listing, an event each.
        code, out, err = await parley_cli(
            "recordings", "delete", "--biz-name", app.biz_name, file_id, "--url", http_url(platform)
        )
        assert code == 0, err
        assert json.loads(out) == {"deleted": [file_id]}
        assert not (platform.storage_dir / item["filePath"]).exists()
        gone = await http.get(item["downloadUrl"])
        assert (gone.status_code, gone.json()["code"]) == (404, -91036)
        code, _, err = await parley_cli(
            "recordings", "delete", "--biz-name", app.biz_name, file_id, "--url", http_url(platform)
        )
        assert code == 1 and b"-91036" in err
        rest = [other for other in by_id if other != file_id]
        batch = await http.post(f"/v1/apps/{app.biz_name}/recordings/batch-delete", json={"fileIds": rest})
        assert batch.json() == {"deleted": rest}
        after = (await http.get(f"/v1/apps/{app.biz_name}/recordings", params={"recordId": record_id})).json()
        assert after == {"recordings": [], "total": 0}
    deleted = [e.file.file_id for e in platform.events.events(record_id) if e.event_code == 910003]
    assert sorted(deleted) == sorted(by_id)


async def test_a_running_recording_is_not_listed_nor_deleted(
    platform: Any, app: Any, clients: Any, publishers: Any
) -> None:
    alice = await clients()
    room = await alice.ok("create_room")
    await publishers().publish(alice)
    record_id = (await alice.ok("start_record", room_id=room["room_id"]))["record_id"]
    info = (await alice.ok("get_record_info", record_id=record_id))["record_info"]
    [file] = info["files"]
    async with httpx.AsyncClient(base_url=http_url(platform), timeout=30) as http:
        listed = (
            await http.get(f"/v1/apps/{app.biz_name}/recordings", params={"recordId": record_id})
        ).json()
        assert listed == {"recordings": [], "total": 0}
        refused = await http.delete(f"/v1/apps/{app.biz_name}/recordings/{file['file_id']}")
        assert refused.json()["code"] == -91037
        # Another app's operator path does not reach it.
        other = await http.delete(f"/v1/apps/other-app/recordings/{file['file_id']}")
        assert other.json()["code"] == -91036
    await alice.ok("stop_record", record_id=record_id)
