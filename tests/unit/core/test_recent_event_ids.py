"""A redelivered event is recognised while it is among the last `limit` ids; the oldest are forgotten."""

from __future__ import annotations

from services.core.events import RecentEventIds


def test_a_repeat_is_recognised_until_it_falls_out_of_the_window() -> None:
    recent = RecentEventIds(limit=3)
    assert [recent.first_delivery(event_id) for event_id in ("a", "b", "a", "c")] == [True, True, False, True]
    assert recent.first_delivery("d")
    # The window holds b, c, d: "a" was forgotten, "c" was not.
    assert recent.first_delivery("a")
    assert not recent.first_delivery("d")
