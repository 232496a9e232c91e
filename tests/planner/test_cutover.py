"""decide_cutover(): propose, wait, cut over, reschedule, cancel, too late — a table, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from reconciler.planner.cutover import CutoverAction, CutoverRecord, decide_cutover

NOW = datetime(2026, 11, 26, 22, 0, tzinfo=UTC)
EARLIER = NOW - timedelta(hours=1)
LATER = NOW + timedelta(hours=2)
MUCH_LATER = NOW + timedelta(days=1)
JST = timezone(timedelta(hours=9))

A = CutoverAction
R = CutoverRecord

# (id, spec.cutover, precopied, recorded) -> (action, when, rescheduled_from, recorded after)
CASES = [
    ("nothing copied yet", None, False, R(), A.PRECOPY, None, None, R()),
    ("first precopy done: propose now", None, True, R(), A.PROPOSE, NOW, None, R(proposed=NOW)),
    (
        "proposed before: same time again",
        None,
        True,
        R(proposed=EARLIER),
        A.PROPOSE,
        EARLIER,
        None,
        R(proposed=EARLIER),
    ),
    ("set in the future: wait", LATER, True, R(), A.WAIT, LATER, None, R(scheduled=LATER)),
    (
        "set before any precopy: wait",
        LATER,
        False,
        R(),
        A.WAIT,
        LATER,
        None,
        R(scheduled=LATER),
    ),
    (
        "due but nothing to cut over from yet: wait",
        EARLIER,
        False,
        R(),
        A.WAIT,
        EARLIER,
        None,
        R(scheduled=EARLIER),
    ),
    (
        "set in the past: at once",
        EARLIER,
        True,
        R(proposed=EARLIER),
        A.CUTOVER,
        EARLIER,
        None,
        R(proposed=EARLIER, scheduled=EARLIER, started=True),
    ),
    ("set to now: at once", NOW, True, R(), A.CUTOVER, NOW, None, R(scheduled=NOW, started=True)),
    (
        "scheduled time reached",
        NOW,
        True,
        R(scheduled=NOW),
        A.CUTOVER,
        NOW,
        None,
        R(scheduled=NOW, started=True),
    ),
    (
        "same instant in another offset is not a reschedule",
        LATER.astimezone(JST),
        True,
        R(scheduled=LATER),
        A.WAIT,
        LATER,
        None,
        R(scheduled=LATER),
    ),
    (
        "rescheduled later",
        MUCH_LATER,
        True,
        R(scheduled=LATER),
        A.WAIT,
        MUCH_LATER,
        LATER,
        R(scheduled=MUCH_LATER),
    ),
    (
        "rescheduled to the past: at once",
        EARLIER,
        True,
        R(scheduled=LATER),
        A.CUTOVER,
        EARLIER,
        LATER,
        R(scheduled=EARLIER, started=True),
    ),
    (
        "removed before start: cancel",
        None,
        True,
        R(proposed=EARLIER, scheduled=LATER),
        A.CANCEL,
        LATER,
        None,
        R(),
    ),
    ("after a cancel: a fresh proposal", None, True, R(), A.PROPOSE, NOW, None, R(proposed=NOW)),
    (
        "removed after start: too late",
        None,
        True,
        R(scheduled=EARLIER, started=True),
        A.TOO_LATE,
        EARLIER,
        None,
        R(scheduled=EARLIER, started=True),
    ),
    (
        "changed after start: too late",
        MUCH_LATER,
        True,
        R(scheduled=EARLIER, started=True),
        A.TOO_LATE,
        EARLIER,
        None,
        R(scheduled=EARLIER, started=True),
    ),
    (
        "started: carry on",
        EARLIER,
        True,
        R(scheduled=EARLIER, started=True),
        A.CUTOVER,
        EARLIER,
        None,
        R(scheduled=EARLIER, started=True),
    ),
]


@pytest.mark.parametrize(
    ("cutover", "precopied", "before", "action", "when", "moved", "after"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_decision_table(cutover, precopied, before, action, when, moved, after) -> None:
    got = decide_cutover(cutover, NOW, precopied, before)
    assert (got.action, got.when, got.rescheduled_from, got.record) == (action, when, moved, after)
    assert got.message


def test_no_record_means_nothing_happened_yet() -> None:
    assert decide_cutover(None, NOW, True).record == R(proposed=NOW)


def test_a_proposal_is_made_for_a_whole_second() -> None:
    got = decide_cutover(None, NOW + timedelta(microseconds=999), True)
    assert got.when == NOW and got.record.proposed == NOW


MESSAGES = [
    (None, False, R(), "a cutover is proposed once the first precopy round has succeeded"),
    (None, True, R(), "precopy has run: a cutover at 2026-11-26T22:00:00Z is proposed for review"),
    (
        LATER,
        True,
        R(),
        "cutover scheduled at 2026-11-27T00:00:00Z; precopy rounds go on until then",
    ),
    (
        MUCH_LATER,
        True,
        R(scheduled=LATER),
        "rescheduled from 2026-11-27T00:00:00Z: cutover scheduled at 2026-11-27T22:00:00Z; "
        "precopy rounds go on until then",
    ),
    (EARLIER, True, R(), "cutover at 2026-11-26T21:00:00Z is due: cutting over now"),
    (
        None,
        True,
        R(scheduled=LATER),
        "spec.cutover was removed: the cutover scheduled at 2026-11-27T00:00:00Z is cancelled "
        "and precopy rounds go on",
    ),
    (
        None,
        True,
        R(scheduled=EARLIER, started=True),
        "spec.cutover was removed after the cutover started (scheduled at "
        "2026-11-26T21:00:00Z): too late to cancel, the cutover goes on",
    ),
    (
        LATER,
        True,
        R(scheduled=EARLIER, started=True),
        "spec.cutover was changed to 2026-11-27T00:00:00Z after the cutover started (scheduled "
        "at 2026-11-26T21:00:00Z): too late to reschedule, the cutover goes on",
    ),
]


@pytest.mark.parametrize(("cutover", "precopied", "before", "message"), MESSAGES)
def test_messages_say_what_happens_in_utc(cutover, precopied, before, message) -> None:
    assert decide_cutover(cutover, NOW, precopied, before).message == message


def test_a_cutover_runs_once_started_even_if_the_pass_is_repeated() -> None:
    first = decide_cutover(EARLIER, NOW, True, R())
    assert first.action is A.CUTOVER and first.record.started
    again = decide_cutover(EARLIER, NOW + timedelta(minutes=5), True, first.record)
    assert again.action is A.CUTOVER and again.record == first.record


def test_merge_then_reschedule_then_cancel_walks_back_to_precopy() -> None:
    proposed = decide_cutover(None, NOW, True, R())
    waiting = decide_cutover(LATER, NOW, True, proposed.record)
    assert waiting.action is A.WAIT
    moved = decide_cutover(MUCH_LATER, NOW, True, waiting.record)
    assert (moved.action, moved.rescheduled_from) == (A.WAIT, LATER)
    cancelled = decide_cutover(None, NOW, True, moved.record)
    assert (cancelled.action, cancelled.when) == (A.CANCEL, MUCH_LATER)
    again = decide_cutover(None, NOW, True, cancelled.record)
    assert (again.action, again.when) == (A.PROPOSE, NOW)


@pytest.mark.parametrize(
    ("cutover", "now", "record"),
    [
        (None, NOW.replace(tzinfo=None), R()),
        (LATER.replace(tzinfo=None), NOW, R()),
        (None, NOW, R(scheduled=LATER.replace(tzinfo=None))),
    ],
)
def test_times_without_an_offset_are_refused(cutover, now, record) -> None:
    with pytest.raises(ValueError, match="UTC offset"):
        decide_cutover(cutover, now, True, record)
