"""The doorbell example (a separate process, through parley_sdk's Device) calls its owner, a user connected
through parley_sdk's Session; media flows both ways through the relay."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from parley_sdk import (
    AudioData,
    AudioFormat,
    Device,
    Engine,
    EngineInitParam,
    PublishParam,
    Session,
    SessionListener,
    VideoData,
)
from parley_sdk.operator import App, Operator
from parley_sdk.sources import energy, play, tone

from tests.integration.python_sdk.conftest import EXAMPLES, LOOPBACK, PYTHON
from tests.testing import Platform

pytestmark = pytest.mark.integration

# A tone at half scale has an RMS near 11 000; silence (and Opus's comfort noise) stays far below this.
HEARD = 1000.0


class Owner(SessionListener):
    def __init__(self) -> None:
        self.calls: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.ended = asyncio.Event()
        self.audio_frames = 0
        self.loudest = 0.0
        self.video_frames = 0
        self.video_size = (0, 0)

    def on_call_incoming(self, call: dict[str, Any]) -> None:
        self.calls.put_nowait(call)

    def on_call_end(self, call: dict[str, Any]) -> None:
        self.ended.set()

    def on_audio(self, audio: AudioData, stream_id: str) -> None:
        self.audio_frames += 1
        self.loudest = max(self.loudest, energy(audio.data))

    def on_video(self, video: VideoData, stream_id: str) -> None:
        self.video_frames += 1
        self.video_size = (video.width, video.height)


async def test_the_doorbell_example_calls_its_owner_with_media_both_ways(
    platform: Platform, operator: Operator, app: App, tmp_path: Path
) -> None:
    sn = f"P1_bell{uuid.uuid4().hex[:8]}"
    open_id = f"owner_{uuid.uuid4().hex[:8]}"
    # The device's maker activates it; the owner's app issues the snTicket and authorises it.
    await Device(str(tmp_path / "unused"), sn, "M1", gateway_url=platform.http_url).activate(app.biz_name)
    ticket = await operator.issue_ticket(app, sn)
    await operator.authorise(app, sn, open_id)

    owner = Owner()
    engine = Engine.create()
    engine.init(EngineInitParam(room_url=platform.ws_url, ice_hosts=LOOPBACK))
    session: Session = engine.create_session(owner)
    credentials = await operator.sign_in(app, open_id)
    await session.connect(
        credentials.uid, credentials.sign, credentials.biz_name, credentials.sub_biz, credentials.workspace_id
    )
    doorbell = await asyncio.create_subprocess_exec(
        PYTHON, str(EXAMPLES / "doorbell.py"), "--url", platform.http_url,
        "--data-folder", str(tmp_path / "bell"), "--sn", sn, "--model-id", "M1", "--open-id", open_id,
        "--biz-name", app.biz_name, "--ticket", ticket,
        "--seconds", "6", "--ice-host", "127.0.0.1",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    speaking: asyncio.Task[None] | None = None
    try:
        call = await asyncio.wait_for(owner.calls.get(), 30)
        assert call["sn"] == sn and call["media"] == "video"
        await session.answer_call(call["call_id"])
        await session.publish(PublishParam(enable_audio=True, enable_video=False))
        speaking = asyncio.create_task(play(session, AudioFormat(), tone(AudioFormat(), 440, 1.0), None))
        stdout, stderr = await asyncio.wait_for(doorbell.communicate(), 60)
    finally:
        if speaking is not None:
            speaking.cancel()
        with contextlib.suppress(ProcessLookupError):
            doorbell.kill()
        await doorbell.wait()
        await engine.destroy()
    assert doorbell.returncode == 0, stderr.decode()[-3000:]
    result = json.loads(stdout.decode().strip().splitlines()[-1])
    # The doorbell heard the owner's tone and the owner saw and heard the doorbell.
    assert result["received"]["audio_frames"] > 0, result
    assert result["received"]["audio_energy"] > HEARD, result
    assert owner.video_frames > 0 and owner.video_size == (320, 240)
    assert owner.loudest > HEARD
    assert "start real play" in result["events"] and "receiving audio" in result["events"], result
    assert any(event.startswith("call end hang_up by device") for event in result["events"]), result
    # The secret it registered with stays in its data folder: a second run would only call.
    assert Device(str(tmp_path / "bell"), sn, "M1").is_registered()
