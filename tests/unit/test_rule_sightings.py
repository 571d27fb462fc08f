"""First-seen sightings decided per blob (engine.apply_sightings): the same answers as deciding each
record alone, one stored state per blob, and never two due alerts in one decision."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from collector.alerts.engine import Seen, apply_sightings

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
WEEK = timedelta(days=7)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def one_by_one(state: Seen | None, seen: list[tuple[datetime, str]]) -> tuple[Seen | None, list[str]]:
    """Each sighting decided alone, as SeenTable did before sightings were batched."""
    due: list[str] = []
    for sighting in seen:
        state, opened, used = apply_sightings(state, [sighting], WEEK)
        assert used == 1
        due += opened
    return state, due


def test_a_new_key_opens_an_episode_and_its_later_sightings_only_widen_it() -> None:
    seen = [(at(5), "r1"), (at(9), "r2"), (at(1), "r3"), (at(7), "r4")]
    state, due, used = apply_sightings(None, seen, WEEK)
    assert (due, used) == (["r1"], 4)
    assert state == Seen(at(1), at(9), "r1", at(5))
    assert (state, due) == one_by_one(None, seen)


def test_the_opener_is_due_again_and_a_known_span_raises_nothing() -> None:
    known = Seen(at(0), at(60), "r1", at(0))
    assert apply_sightings(known, [(at(0), "r1")], WEEK) == (known, ["r1"], 1)  # a redelivery after a crash
    assert apply_sightings(known, [(at(30), "r9"), (at(60), "r8")], WEEK) == (known, [], 2)


def test_a_key_unseen_for_longer_than_the_history_opens_a_new_episode() -> None:
    known = Seen(at(0), at(60), "r1", at(0))
    later = at(60) + WEEK + timedelta(seconds=1)
    state, due, used = apply_sightings(known, [(at(70), "r2"), (later + timedelta(minutes=5), "r3")], WEEK)
    assert (due, used) == ([], 2)  # r2 moved `last`, so r3 is within a week of it
    assert state == Seen(at(0), later + timedelta(minutes=5), "r1", at(0))
    state, due, used = apply_sightings(known, [(later, "r4"), (later + timedelta(minutes=1), "r5")], WEEK)
    assert (due, used) == (["r4"], 2)
    assert state == Seen(at(0), later + timedelta(minutes=1), "r4", later)


def test_a_decision_stops_before_a_second_due_record() -> None:
    # With a short history two records of one blob can each open an episode: the first decision
    # stores the first opener only, so a crash after storing it and before its alert loses nothing.
    hour = timedelta(hours=1)
    seen = [(at(0), "r1"), (at(30), "r2"), (at(200), "r3"), (at(210), "r4")]
    state, due, used = apply_sightings(None, seen, hour)
    assert (state, due, used) == (Seen(at(0), at(30), "r1", at(0)), ["r1"], 2)
    state, due, used = apply_sightings(state, seen[used:], hour)
    assert (state, due, used) == (Seen(at(0), at(210), "r3", at(200)), ["r3"], 2)
