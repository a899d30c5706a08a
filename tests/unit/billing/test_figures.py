"""The usage figures (services/billing/figures.py): small cases computed by hand, and a generated day
against its ground truth computed another way (bitsets, tests/integration/billing/generator.py)."""

from __future__ import annotations

from datetime import date

import pytest

from services.billing.figures import Figures, Role, Span, StreamPiece, Tier, UsageInputs, compute
from services.billing.inputs import Batch
from services.billing.periods import day_window, zone
from tests.integration.billing.generator import generate, shuffled_with_duplicates

WINDOW = (0, 1_000_000)
NOW = 10_000_000


def piece(
    uid: str, stream: str, tier: Tier, start: int, end: int, role: Role = Role.SUBSCRIPTION
) -> StreamPiece:
    return StreamPiece(uid, stream, role, tier, start, end)


def test_a_user_receiving_two_streams_counts_once_in_the_highest_tier() -> None:
    inputs = UsageInputs(
        pieces=[
            piece("bob", "s1", Tier.AUDIO, 0, 10_000),
            piece("bob", "s1", Tier.P720, 2_000, 8_000),
            piece("bob", "s2", Tier.P360, 5_000, 12_000),
        ]
    )
    figures = compute(inputs, WINDOW, NOW)
    # 0-2 s audio only; 2-8 s 720P (over the 360P from 5 s); 8-12 s 360P.
    assert figures.call_ms() == [2_000, 4_000, 0, 6_000, 0]
    # s1 audio and video count once (0-10 s), s2 7 s.
    assert figures.subscribed_stream_ms == 17_000
    assert figures.billable_minutes == 1


def test_published_time_does_not_count_as_call_time() -> None:
    figures = compute(
        UsageInputs(pieces=[piece("ann", "p", Tier.P1080, 0, 60_001, Role.PUBLICATION)]), WINDOW, NOW
    )
    assert figures.published_stream_ms == 60_001
    assert sum(figures.call_ms()) == 0
    assert figures.billable_minutes == 0


def test_peaks_are_exact_and_back_to_back_intervals_do_not_overlap() -> None:
    rooms = [Span("", "r1", 0, 100), Span("", "r2", 100, 200), Span("", "r3", 150, None)]
    figures = compute(UsageInputs(rooms=rooms), WINDOW, 180)
    assert figures.peak_rooms == 2
    assert figures.rooms == 3


def test_one_user_in_two_sessions_is_one_online_user_but_both_sessions_count_time() -> None:
    sessions = [Span("ann", "", 0, 1000), Span("ann", "", 500, 1500), Span("bob", "", 1500, 2000)]
    figures = compute(UsageInputs(sessions=sessions), WINDOW, NOW)
    assert (figures.online_ms, figures.online_users, figures.peak_online_users) == (2500, 2, 1)


def test_spans_are_clipped_to_the_window_and_open_ones_last_until_now() -> None:
    sessions = [Span("ann", "", -500, 700), Span("bob", "", 900, None)]
    figures = compute(UsageInputs(sessions=sessions), (0, 1000), 950)
    assert figures.online_ms == 700 + 50


def test_p2p_call_time_is_the_time_two_participants_are_in_the_room_as_audio() -> None:
    participants = [Span("ann", "p2p", 0, 10_000, engine=2), Span("bob", "p2p", 4_000, 20_000, engine=2)]
    figures = compute(UsageInputs(participants=participants), WINDOW, NOW)
    assert figures.call_ms() == [12_000, 0, 0, 0, 0]
    assert (figures.call_users, figures.peak_call_users) == (2, 2)


def test_the_json_names_of_the_issue() -> None:
    assert list(Figures().as_json()) == [
        "callMs",
        "onlineMs",
        "publishedStreamMs",
        "subscribedStreamMs",
        "rooms",
        "peakRooms",
        "onlineUsers",
        "callUsers",
        "peakOnlineUsers",
        "peakCallUsers",
        "billableMinutes",
    ]
    assert list(Figures().as_json()["callMs"]) == ["audio", "360P", "540P", "720P", "1080P"]  # type: ignore[arg-type]


@pytest.mark.parametrize("seed", [1, 2])
def test_a_generated_day_decoded_shuffled_with_duplicates_equals_its_ground_truth(seed: int) -> None:
    scenario = generate(seed, date(2026, 11, 20))
    batch = Batch()
    for fact in shuffled_with_duplicates(scenario.facts, seed):
        assert batch.add(fact.ce_type, fact.payload)
    window = day_window(scenario.day, zone("UTC"))
    for biz_name, truth in scenario.truth.items():
        inputs = UsageInputs()
        for row in batch.ticks.values():
            if row["biz_name"] == biz_name:
                inputs.pieces.append(
                    StreamPiece(
                        row["uid"],
                        row["stream_id"],
                        Role(row["role"]),
                        Tier(row["tier"]),
                        row["start_ms"],
                        row["end_ms"],
                    )
                )
        kinds = {"room": inputs.rooms, "participant": inputs.participants, "session": inputs.sessions}
        for fact in batch.spans.values():
            if fact.biz_name == biz_name and fact.start_ms is not None:
                kinds[fact.kind].append(Span(fact.uid, fact.room_id, fact.start_ms, fact.end_ms, fact.engine))
        assert compute(inputs, window, window[1] + 1).as_json() == truth.as_json(), biz_name


def test_the_worked_example_of_docs_billing_md() -> None:
    def t(hms: str) -> int:
        hours, minutes, seconds = hms.split(":")
        return round((int(hours) * 3600 + int(minutes) * 60 + float(seconds)) * 1000)

    inputs = UsageInputs(
        pieces=[
            piece("alice", "P", Tier.AUDIO, t("10:00:30.000"), t("10:02:40.000"), Role.PUBLICATION),
            piece("alice", "P", Tier.P720, t("10:00:30.200"), t("10:02:40.000"), Role.PUBLICATION),
            piece("bob", "S", Tier.AUDIO, t("10:00:32.000"), t("10:02:32.000")),
            piece("bob", "S", Tier.P720, t("10:00:32.100"), t("10:01:32.100")),
            piece("bob", "S", Tier.P540, t("10:01:32.100"), t("10:02:32.000")),
        ],
        rooms=[Span("alice", "R", t("10:00:10"), t("10:04:00"))],
        participants=[
            Span("alice", "R", t("10:00:10"), t("10:04:00")),
            Span("bob", "R", t("10:00:20"), t("10:03:00")),
        ],
        sessions=[
            Span("alice", "", t("10:00:00"), t("10:05:00")),
            Span("bob", "", t("10:00:05"), t("10:03:00")),
        ],
    )
    figures = compute(inputs, (0, 86_400_000), 86_400_000)
    assert figures.as_json() == {
        "callMs": {"audio": 100, "360P": 0, "540P": 59_900, "720P": 60_000, "1080P": 0},
        "onlineMs": 475_000,
        "publishedStreamMs": 130_000,
        "subscribedStreamMs": 120_000,
        "rooms": 1,
        "peakRooms": 1,
        "onlineUsers": 2,
        "callUsers": 2,
        "peakOnlineUsers": 2,
        "peakCallUsers": 2,
        "billableMinutes": 2,
    }
