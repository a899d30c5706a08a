"""Key frames and picture sizes read from real VP8 and H.264 frames, without decoding them."""

from __future__ import annotations

import os

import pytest

from services.core.media.bitstream import (
    NAL_IDR,
    NAL_PPS,
    NAL_SPS,
    FrameInfo,
    H264ParameterSets,
    inspect_h264,
    inspect_vp8,
    nal_type,
    split_annexb,
    sps_size,
)
from tests.unit.relay.encoded_video import encode

SIZES = [(320, 240), (640, 360), (360, 640), (1280, 720), (1920, 1080), (322, 242)]


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_a_vp8_key_frame_states_its_size_and_delta_frames_are_not_key_frames(width: int, height: int) -> None:
    key, delta, *_ = encode("libvpx", width, height)
    assert inspect_vp8(key) == FrameInfo(keyframe=True, size=(width, height))
    assert inspect_vp8(delta) == FrameInfo(keyframe=False)


@pytest.mark.parametrize("profile", ["baseline", "high"])
@pytest.mark.parametrize(("width", "height"), SIZES)
def test_an_h264_idr_frame_is_a_key_frame_and_its_sps_states_the_cropped_size(
    width: int, height: int, profile: str
) -> None:
    key, delta, *_ = encode("libx264", width, height, options={"profile": profile})
    assert inspect_h264(split_annexb(key)) == FrameInfo(keyframe=True, size=(width, height))
    assert inspect_h264(split_annexb(delta)) == FrameInfo(keyframe=False)


def test_annexb_units_come_without_start_codes_of_either_length() -> None:
    stream = b"\x00\x00\x00\x01\x67\xaa\x00\x00\x01\x68\xbb\x00\x00\x00\x01\x65\xcc\xdd"
    assert split_annexb(stream) == [b"\x67\xaa", b"\x68\xbb", b"\x65\xcc\xdd"]
    assert [nal_type(unit) for unit in split_annexb(stream)] == [NAL_SPS, NAL_PPS, NAL_IDR]
    assert split_annexb(b"no start code") == []


def test_malformed_frames_are_neither_key_frames_nor_sized_and_never_raise() -> None:
    noise = os.urandom(4096)
    assert inspect_vp8(b"") == FrameInfo(keyframe=False)
    assert inspect_vp8(b"\x00\x00\x00garbage!") == FrameInfo(keyframe=False)
    inspect_vp8(noise)
    inspect_h264(split_annexb(noise))
    assert sps_size(b"\x67") is None
    assert sps_size(b"\x67\x42\x00\x1f") is None


def test_parameter_sets_a_device_sent_once_complete_a_later_key_frame_that_lacks_them() -> None:
    first_key, *_ = encode("libx264", 320, 240)
    units = split_annexb(first_key)
    parameter_sets = H264ParameterSets()
    assert parameter_sets.missing_from(units) == b""
    parameter_sets.update(units)
    assert parameter_sets.missing_from(units) == b""

    idr_only = [unit for unit in units if nal_type(unit) == NAL_IDR]
    prefix = parameter_sets.missing_from(idr_only)
    assert [nal_type(unit) for unit in split_annexb(prefix)] == [NAL_SPS, NAL_PPS]
    completed = split_annexb(prefix + b"".join(b"\x00\x00\x00\x01" + unit for unit in idr_only))
    assert inspect_h264(completed) == FrameInfo(keyframe=True, size=(320, 240))
