"""Placement of rooms on media relays: least-loaded, sticky, never on a draining or silent relay, and the
configured relay while none has registered."""

from __future__ import annotations

import pytest

from services.core.errors import NOT_FOUND, ParleyError
from services.rooms.placement import RelayLoad, RelayPlacement
from tests.clock import FakeClock

FALLBACK = "127.0.0.1:50053"
LEASE_S = 15.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def placement(clock: FakeClock) -> RelayPlacement:
    return RelayPlacement(fallback=FALLBACK, lease_s=LEASE_S, clock=clock)


def test_without_relays_rooms_go_to_the_configured_relay(placement: RelayPlacement) -> None:
    assert placement.place("r1") == FALLBACK


def test_a_room_goes_to_the_least_loaded_relay(placement: RelayPlacement) -> None:
    placement.register("a", "a:1", 100, RelayLoad(publications=5, subscriptions=20))
    placement.register("b", "b:1", 100, RelayLoad(publications=2, subscriptions=3))
    assert placement.place("r1") == "b:1"


def test_load_is_weighed_against_capacity(placement: RelayPlacement) -> None:
    placement.register("small", "small:1", 10, RelayLoad(publications=5))
    placement.register("big", "big:1", 1000, RelayLoad(publications=20))
    assert placement.place("r1") == "big:1"


def test_a_room_stays_on_its_relay(placement: RelayPlacement) -> None:
    placement.register("a", "a:1", 100, RelayLoad())
    assert placement.place("r1") == "a:1"
    placement.report("a", RelayLoad(publications=90))
    placement.register("b", "b:1", 100, RelayLoad())
    assert placement.place("r1") == "a:1"
    assert placement.place("r2") == "b:1"


def test_a_released_room_is_placed_afresh(placement: RelayPlacement) -> None:
    placement.register("a", "a:1", 100, RelayLoad(publications=50))
    assert placement.place("r1") == "a:1"
    placement.register("b", "b:1", 100, RelayLoad())
    placement.release("r1")
    assert placement.place("r1") == "b:1"


def test_rooms_placed_since_the_last_report_count_as_load(placement: RelayPlacement) -> None:
    placement.register("a", "a:1", 100, RelayLoad())
    placement.register("b", "b:1", 100, RelayLoad())
    assert {placement.place(f"r{i}") for i in range(4)} == {"a:1", "b:1"}
    assert [placement.place(f"r{i}") for i in range(4)] == ["a:1", "b:1", "a:1", "b:1"]


def test_a_draining_relay_gets_no_new_rooms_but_keeps_its_own(placement: RelayPlacement) -> None:
    placement.register("a", "a:1", 100, RelayLoad())
    placement.register("b", "b:1", 100, RelayLoad(publications=10))
    assert placement.place("r1") == "a:1"
    placement.report("a", RelayLoad(publications=1, draining=True))
    assert placement.place("r2") == "b:1"
    assert placement.place("r1") == "a:1"


def test_when_every_relay_drains_rooms_go_to_the_configured_relay(placement: RelayPlacement) -> None:
    placement.register("a", "a:1", 100, RelayLoad(draining=True))
    assert placement.place("r1") == FALLBACK


def test_a_relay_silent_for_the_lease_is_dropped(placement: RelayPlacement, clock: FakeClock) -> None:
    placement.register("a", "a:1", 100, RelayLoad())
    placement.register("b", "b:1", 100, RelayLoad(publications=50))
    clock.now += LEASE_S / 2
    placement.report("b", RelayLoad(publications=50))
    clock.now += LEASE_S / 2 + 1
    assert placement.place("r1") == "b:1"
    with pytest.raises(ParleyError) as refused:
        placement.report("a", RelayLoad())
    assert refused.value.kind is NOT_FOUND
    placement.register("a", "a:1", 100, RelayLoad())
    assert placement.place("r2") == "a:1"


def test_reports_keep_a_relay_placeable(placement: RelayPlacement, clock: FakeClock) -> None:
    placement.register("a", "a:1", 100, RelayLoad())
    for _ in range(5):
        clock.now += LEASE_S / 3
        placement.report("a", RelayLoad())
    assert placement.place("r1") == "a:1"


def test_what_one_room_manager_heard_places_rooms_at_another(clock: FakeClock) -> None:
    """Relays report to one room manager; the others learn of them through the store."""
    heard_here = RelayPlacement(fallback=FALLBACK, lease_s=LEASE_S, clock=clock)
    elsewhere = RelayPlacement(fallback=FALLBACK, lease_s=LEASE_S, clock=clock)
    heard_here.register("a", "a:1", 100, RelayLoad(publications=50))
    heard_here.register("b", "b:1", 100, RelayLoad(publications=1))
    shared = heard_here.heard()
    assert [relay.relay_id for relay in shared] == ["a", "b"] and heard_here.heard() == []
    elsewhere.learn(shared)
    assert elsewhere.place("r1") == "b:1"
    # A newer report wins; an older one changes nothing.
    clock.now += 1
    heard_here.report("b", RelayLoad(publications=99))
    elsewhere.learn(heard_here.heard())
    elsewhere.learn(shared)
    assert elsewhere.place("r2") == "a:1"
    # A relay nobody heard from within the lease is gone everywhere.
    clock.now += LEASE_S + 1
    elsewhere.learn(shared)
    assert elsewhere.live() == {}


def test_a_room_manager_that_starts_to_lead_judges_no_relay_dead_for_a_lease(
    placement: RelayPlacement, clock: FakeClock
) -> None:
    """A room manager taking over knows the relays that reported to it so far: relay a, serving rooms
    the previous leader placed there, has not reported here yet, and is not dead for that."""
    clock.advance(LEASE_S * 2)
    placement.lead()
    placement.register("b", "b:1", 100, RelayLoad())
    assert placement.is_live("a:1")
    clock.advance(LEASE_S - 1)
    placement.report("b", RelayLoad())
    assert placement.is_live("a:1")
    clock.advance(1)
    assert not placement.is_live("a:1")
    assert placement.is_live("b:1")
