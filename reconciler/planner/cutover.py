"""When a warm migration cuts over: the decision behind the cutover-by-pull-request flow.

The user approves a cutover by merging the reconciler's proposal branch (or by committing
``spec.cutover`` themselves); the time in the Migration is the whole interface.  Each pass asks
:func:`decide_cutover` with that time, the clock, whether precopy has produced something to cut
over from, and what the previous pass recorded.  Pure: no git, no clock, no store; the pipeline
acts on the answer and stores :attr:`CutoverDecision.record` for the next pass.

The one thing that cannot be undone is the cutover itself (it powers off the source), so the
record says ``started`` before the pipeline acts on a ``Cutover`` decision: a restarted
reconciler carries on with the cutover rather than treating a late edit as a cancel.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum


class CutoverAction(StrEnum):
    """What the pipeline does about cutover in this pass."""

    PRECOPY = "Precopy"  # nothing to cut over from yet: keep copying, propose nothing
    PROPOSE = "Propose"  # push the proposal branch (idempotent) and say in status to merge it
    WAIT = "Wait"  # a cutover is scheduled: precopy rounds go on until it is due
    CUTOVER = "Cutover"  # due now (or already running): power off the source, final delta
    CANCEL = "Cancel"  # spec.cutover was removed before cutover started: back to precopy
    TOO_LATE = "TooLateToCancel"  # spec.cutover removed or changed after cutover started


@dataclass(frozen=True)
class CutoverRecord:
    """What the pipeline keeps between passes about one Migration's cutover."""

    # the time the proposal branch sets: stable across passes, so proposing again pushes
    # nothing; a cancel clears it, so the next proposal is a fresh one
    proposed: datetime | None = None
    scheduled: datetime | None = None  # the spec.cutover the last pass acted on
    started: bool = False  # cutover began: the source is (being) powered off


@dataclass(frozen=True)
class CutoverDecision:
    """The answer: an action, the time it is about, the message for status, what to record."""

    action: CutoverAction
    message: str
    record: CutoverRecord
    when: datetime | None = None  # proposed, scheduled or cancelled time; None for PRECOPY
    rescheduled_from: datetime | None = None  # the earlier spec.cutover when it was changed


def _stamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _aware(what: str, when: datetime | None) -> None:
    if when is not None and when.tzinfo is None:
        raise ValueError(f"{what} must carry a UTC offset, not {when.isoformat()}")


def decide_cutover(
    cutover: datetime | None,
    now: datetime,
    precopied: bool,
    record: CutoverRecord | None = None,
) -> CutoverDecision:
    """Decide from the Migration's ``spec.cutover`` and the previous record what to do now.

    *precopied* is whether the first precopy (the initial full copy, as in Forklift) has
    succeeded: only then is there a proposal to make or a final delta to cut over with.  A
    time at or before *now* means at once.  Once cutover has started, removing or changing
    ``spec.cutover`` no longer stops it (the source may already be off); the decision says
    so instead of pretending.
    """
    _aware("now", now)
    _aware("spec.cutover", cutover)
    record = record or CutoverRecord()
    _aware("the recorded cutover", record.scheduled)
    _aware("the recorded proposal", record.proposed)

    if record.started:
        return _after_start(cutover, record)

    if cutover is None:
        if record.scheduled is not None:
            return CutoverDecision(
                CutoverAction.CANCEL,
                f"spec.cutover was removed: the cutover scheduled at {_stamp(record.scheduled)} "
                "is cancelled and precopy rounds go on",
                replace(record, scheduled=None, proposed=None),
                when=record.scheduled,
            )
        if not precopied:
            return CutoverDecision(
                CutoverAction.PRECOPY,
                "a cutover is proposed once the first precopy round has succeeded",
                record,
            )
        when = record.proposed or now.replace(microsecond=0)  # RFC 3339 in the file: seconds
        return CutoverDecision(
            CutoverAction.PROPOSE,
            f"precopy has run: a cutover at {_stamp(when)} is proposed for review",
            replace(record, proposed=when),
            when=when,
        )

    moved = record.scheduled if record.scheduled not in (None, cutover) else None
    changed = f"rescheduled from {_stamp(moved)}: " if moved is not None else ""
    scheduled = replace(record, scheduled=cutover)
    if cutover > now:
        return CutoverDecision(
            CutoverAction.WAIT,
            f"{changed}cutover scheduled at {_stamp(cutover)}; precopy rounds go on until then",
            scheduled,
            when=cutover,
            rescheduled_from=moved,
        )
    if not precopied:
        return CutoverDecision(
            CutoverAction.WAIT,
            f"{changed}cutover at {_stamp(cutover)} is due: it starts once the first precopy "
            "round has succeeded",
            scheduled,
            when=cutover,
            rescheduled_from=moved,
        )
    return CutoverDecision(
        CutoverAction.CUTOVER,
        f"{changed}cutover at {_stamp(cutover)} is due: cutting over now",
        replace(scheduled, started=True),
        when=cutover,
        rescheduled_from=moved,
    )


def _after_start(cutover: datetime | None, record: CutoverRecord) -> CutoverDecision:
    """Cutover is under way: it finishes whatever the Migration now says."""
    started_at = record.scheduled
    since = f" (scheduled at {_stamp(started_at)})" if started_at is not None else ""
    if cutover is None:
        return CutoverDecision(
            CutoverAction.TOO_LATE,
            f"spec.cutover was removed after the cutover started{since}: too late to cancel, "
            "the cutover goes on",
            record,
            when=started_at,
        )
    if started_at is not None and cutover != started_at:
        return CutoverDecision(
            CutoverAction.TOO_LATE,
            f"spec.cutover was changed to {_stamp(cutover)} after the cutover started{since}: "
            "too late to reschedule, the cutover goes on",
            record,
            when=started_at,
        )
    return CutoverDecision(
        CutoverAction.CUTOVER,
        f"cutover in progress{since}",
        record,
        when=started_at or cutover,
    )
