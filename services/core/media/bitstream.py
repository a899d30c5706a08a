"""What the relay reads from encoded video frames without decoding them: key frames and picture size.

A new subscriber must start at a key frame, and metering bills video by the forwarded picture size; both
are in the first bytes of a frame. VP8 states its size in every key frame header (RFC 6386, 9.1); H.264
states it in the sequence parameter set (ITU-T H.264, 7.3.2.1.1), which encoders send with IDR frames.
Frames arrive as aiortc's jitter buffer assembles them: VP8 as one frame, H.264 in Annex B form.
Malformed input never raises: it yields "not a key frame" or "size unknown".
"""

from __future__ import annotations

from dataclasses import dataclass

_ANNEXB_START = b"\x00\x00\x01"
_VP8_KEY_FRAME_START = b"\x9d\x01\x2a"

NAL_IDR = 5
NAL_SPS = 7
NAL_PPS = 8

# Profiles whose SPS carries chroma format, bit depth and scaling matrices (H.264 7.3.2.1.1).
_HIGH_PROFILES = frozenset({100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135})


@dataclass(frozen=True, slots=True)
class FrameInfo:
    keyframe: bool
    # (width, height) when the frame states it: VP8 key frames, H.264 frames with an SPS.
    size: tuple[int, int] | None = None


def inspect_vp8(frame: bytes) -> FrameInfo:
    # Frame tag bit 0 is "not a key frame"; a key frame follows its 3-byte tag with a start code and
    # two little-endian 16-bit fields, 14 bits of size and 2 of scaling each.
    if len(frame) < 10 or frame[0] & 0x01:
        return FrameInfo(keyframe=False)
    if frame[3:6] != _VP8_KEY_FRAME_START:
        return FrameInfo(keyframe=False)
    width = int.from_bytes(frame[6:8], "little") & 0x3FFF
    height = int.from_bytes(frame[8:10], "little") & 0x3FFF
    return FrameInfo(keyframe=True, size=(width, height) if width and height else None)


def split_annexb(stream: bytes) -> list[bytes]:
    """The NAL units of an Annex B byte stream, without their start codes."""
    units = []
    start = stream.find(_ANNEXB_START)
    while start != -1:
        start += len(_ANNEXB_START)
        end = stream.find(_ANNEXB_START, start)
        if end == -1:
            unit = stream[start:]
        else:
            # A 4-byte start code's leading zero belongs to the start code, not to this unit.
            unit = stream[start : end - 1] if stream[end - 1] == 0 else stream[start:end]
        if unit:
            units.append(unit)
        start = end
    return units


def nal_type(unit: bytes) -> int:
    return unit[0] & 0x1F


def inspect_h264(units: list[bytes]) -> FrameInfo:
    keyframe = False
    size = None
    for unit in units:
        kind = nal_type(unit)
        if kind == NAL_IDR:
            keyframe = True
        elif kind == NAL_SPS and size is None:
            size = sps_size(unit)
    return FrameInfo(keyframe=keyframe, size=size)


class H264ParameterSets:
    """The latest SPS and PPS of one published H.264 track.

    Devices often send them once, before the first IDR frame only; a subscriber who joins later would
    get IDR frames it cannot decode. The relay keeps them and puts them in front of such a subscriber's
    first key frame when that frame lacks them.
    """

    def __init__(self) -> None:
        self._sps: bytes | None = None
        self._pps: bytes | None = None

    def update(self, units: list[bytes]) -> None:
        for unit in units:
            kind = nal_type(unit)
            if kind == NAL_SPS:
                self._sps = unit
            elif kind == NAL_PPS:
                self._pps = unit

    def missing_from(self, units: list[bytes]) -> bytes:
        """Annex B SPS and PPS units to put before a frame made of `units`; empty when it has its own."""
        kinds = {nal_type(unit) for unit in units}
        prefix = b""
        for kind, unit in ((NAL_SPS, self._sps), (NAL_PPS, self._pps)):
            if kind not in kinds and unit is not None:
                prefix += b"\x00\x00\x00\x01" + unit
        return prefix


class _BitReader:
    """Reads an RBSP: emulation prevention bytes (00 00 03) removed, MSB first, Exp-Golomb codes."""

    def __init__(self, payload: bytes) -> None:
        self._data = payload.replace(b"\x00\x00\x03", b"\x00\x00")
        self._position = 0

    def bit(self) -> int:
        byte = self._position >> 3
        if byte >= len(self._data):
            raise EOFError
        value = (self._data[byte] >> (7 - (self._position & 7))) & 1
        self._position += 1
        return value

    def bits(self, count: int) -> int:
        value = 0
        for _ in range(count):
            value = (value << 1) | self.bit()
        return value

    def ue(self) -> int:
        zeros = 0
        while self.bit() == 0:
            zeros += 1
            if zeros > 31:
                raise EOFError
        return (1 << zeros) - 1 + self.bits(zeros)

    def se(self) -> int:
        value = self.ue()
        return (value + 1) // 2 if value & 1 else -(value // 2)


def _skip_scaling_list(reader: _BitReader, size: int) -> None:
    last, following = 8, 8
    for _ in range(size):
        if following:
            following = (last + reader.se() + 256) % 256
        last = following or last


def sps_size(unit: bytes) -> tuple[int, int] | None:
    """Picture width and height in an SPS NAL unit (with its 1-byte header), cropping applied."""
    try:
        return _parse_sps_size(_BitReader(unit[1:]))
    except EOFError:
        return None


def _parse_sps_size(reader: _BitReader) -> tuple[int, int] | None:
    profile_idc = reader.bits(8)
    reader.bits(16)  # constraint flags, level_idc
    reader.ue()  # seq_parameter_set_id
    chroma_format_idc = 1
    separate_colour_planes = 0
    if profile_idc in _HIGH_PROFILES:
        chroma_format_idc = reader.ue()
        if chroma_format_idc == 3:
            separate_colour_planes = reader.bit()
        reader.ue()  # bit_depth_luma_minus8
        reader.ue()  # bit_depth_chroma_minus8
        reader.bit()  # qpprime_y_zero_transform_bypass_flag
        if reader.bit():  # seq_scaling_matrix_present_flag
            for index in range(8 if chroma_format_idc != 3 else 12):
                if reader.bit():
                    _skip_scaling_list(reader, 16 if index < 6 else 64)
    reader.ue()  # log2_max_frame_num_minus4
    pic_order_cnt_type = reader.ue()
    if pic_order_cnt_type == 0:
        reader.ue()  # log2_max_pic_order_cnt_lsb_minus4
    elif pic_order_cnt_type == 1:
        reader.bit()  # delta_pic_order_always_zero_flag
        reader.se()  # offset_for_non_ref_pic
        reader.se()  # offset_for_top_to_bottom_field
        for _ in range(reader.ue()):
            reader.se()
    reader.ue()  # max_num_ref_frames
    reader.bit()  # gaps_in_frame_num_value_allowed_flag
    width_in_macroblocks = reader.ue() + 1
    height_in_map_units = reader.ue() + 1
    frame_mbs_only = reader.bit()
    if not frame_mbs_only:
        reader.bit()  # mb_adaptive_frame_field_flag
    reader.bit()  # direct_8x8_inference_flag
    width = width_in_macroblocks * 16
    height = (2 - frame_mbs_only) * height_in_map_units * 16
    if reader.bit():  # frame_cropping_flag
        left, right, top, bottom = reader.ue(), reader.ue(), reader.ue(), reader.ue()
        # Crop offsets count chroma samples (H.264 7.4.2.1.1, CropUnitX / CropUnitY).
        if chroma_format_idc == 0 or separate_colour_planes:
            unit_x, unit_y = 1, 2 - frame_mbs_only
        else:
            unit_x = 2 if chroma_format_idc in (1, 2) else 1
            unit_y = (2 if chroma_format_idc == 1 else 1) * (2 - frame_mbs_only)
        width -= (left + right) * unit_x
        height -= (top + bottom) * unit_y
    if width <= 0 or height <= 0:
        return None
    return width, height
