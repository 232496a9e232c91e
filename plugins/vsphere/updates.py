"""The vSphere inventory kept current by vCenter's PropertyCollector: one full read, then changes.

The first :meth:`InventoryCache.snapshot` creates a PropertyCollector of its own (so its filters
and update versions never mix with anyone else's on the session) and, per
:data:`~plugins.vsphere.inventory.KINDS` entry, a ContainerView of the whole inventory and a
filter over it; then it asks ``WaitForUpdatesEx`` from version ``""``: vCenter answers with an
``enter`` for every object, which is the full read. Later calls ask ``WaitForUpdatesEx(version,
maxWaitSeconds=0)`` for what changed since and apply it, so a pass after one VM changed costs one
small round trip instead of a rescan. VMs created later arrive as ``enter`` (the ContainerView's
``view`` grows), destroyed ones as ``leave``.

The read is split across two PropertyCollectors asked side by side on two connections
(:data:`PARTS`): one reads every VM's device list (about 60% of a full read's answer), the other
every other property of every kind. vCenter (and the simulator, which builds an answer whole
before sending a byte) prepares both answers at once, and this process builds one answer's
records while the other is still being prepared and parsed. Each VM is in both collectors'
views, and each property in exactly one collector's filter, so a VM's record is the union of
its two shares; an object one collector has reported and the other not yet (created between
the two answers) is read again whole, as is any change that cannot be applied.

One filter of one type per kind, not one filter with a PropertySpec per kind: vCenter treats both
alike, but govmomi's simulator (0.24) panics when an object was modified and then destroyed
between two waits on a filter whose PropertySpecs name several types. For the same simulator,
:meth:`InventoryCache.close` destroys the filters before their collector (its
DestroyPropertyCollector panics on a collector with more than one filter).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.client import HTTPException
from typing import Any

from plugins.vsphere.inventory import KINDS, Kind, Snapshot, retrieve, view_spec
from reconciler.sources import SourceError

_REMOVED = ("remove", "indirectRemove")


@dataclass(frozen=True)
class Share:
    """What one filter reads: a kind, and the part of its properties this filter owns (all of
    them unless the kind is split across collectors)."""

    kind: Kind
    props: tuple[str, ...]

    @property
    def whole(self) -> bool:
        return self.props == self.kind.props


HEAVY = ("config.hardware.device",)  # most of a VM's answer: its own collector


def parts(split: bool = True) -> tuple[tuple[Share, ...], ...]:
    """The collectors' shares of the inventory: one collector for everything, or (``split``)
    one for the VMs' :data:`HEAVY` properties and one for the rest, of about equal cost to
    build and to read."""
    whole = tuple(Share(k, k.props) for k in KINDS)
    if not split:
        return (whole,)
    vms = KINDS[0]
    light = tuple(p for p in vms.props if p not in HEAVY)
    return ((Share(vms, HEAVY),), (Share(vms, light), *whole[1:]))


PARTS = parts()


@dataclass(frozen=True)
class Pass:
    """What one :meth:`InventoryCache.snapshot` call did, for logs, tests and the benchmark."""

    full: bool
    changed: int  # objects that entered, changed or left; on a full read, objects read
    round_trips: int  # WaitForUpdatesEx and re-read calls (a full read also sets its filters up)
    seconds: float
    reason: str = ""  # why a full read: "first read", "filter gone: ...", "session expired"


@dataclass
class Applied:
    """An UpdateSet applied to a snapshot: the new snapshot, the moids that changed, and the
    objects whose changes could not be applied (a path not asked for, an element-wise ``add``)
    and must be read again, per kind."""

    snapshot: Snapshot
    changed: set[str]
    stale: dict[Kind, dict[str, Any]]


def apply_updates(
    base: Snapshot,
    shares: dict[str, Share],
    update_set: Any,
    into: Applied | None = None,
    members: dict[str, set[str]] | None = None,
) -> Applied:
    """Apply a ``WaitForUpdatesEx`` UpdateSet, a plain record (:mod:`plugins.vsphere.soapparse`;
    ``shares``: filter moid -> the :class:`Share` it reads), to ``base``.

    ``base`` is not modified: a changed kind gets a new dict and a changed object a new props
    dict, so a snapshot handed out earlier stays as it was. Pass ``into`` to go on applying
    the next page of a truncated update (or another collector's update) to the same result.
    A share's ``enter`` replaces only the properties it owns; ``members`` (filter moid -> the
    objects that filter has reported) is kept up to date for the filters of split kinds.
    """
    out = into or Applied(dataclasses.replace(base), set(), {})
    copied = {k for k in KINDS if getattr(out.snapshot, k.field) is not getattr(base, k.field)}
    for fu in update_set.get("filterSet", ()):
        flt = fu["filter"]._moId
        share = shares.get(flt)
        if share is None:
            continue
        kind, owned = share.kind, share.props
        seen = None if share.whole or members is None else members.setdefault(flt, set())
        if kind not in copied:
            setattr(out.snapshot, kind.field, dict(getattr(out.snapshot, kind.field)))
            copied.add(kind)
        table: dict[str, dict[str, Any]] = getattr(out.snapshot, kind.field)
        for ou in fu.get("objectSet", ()):
            obj, what = ou["obj"], ou["kind"]
            moid = obj._moId
            out.changed.add(moid)
            if what == "leave":
                table.pop(moid, None)
                gone = out.stale.get(kind, {})
                gone.pop(moid, None)
                if not gone:
                    out.stale.pop(kind, None)
                if seen is not None:
                    seen.discard(moid)
                continue
            if seen is not None:
                seen.add(moid)
            old = table.get(moid)
            if old is None:
                props = {"_obj": obj}
            elif what == "modify":
                props = dict(old)
            elif share.whole:
                props = {"_obj": obj}
            else:  # the other shares' properties stay
                props = {k: v for k, v in old.items() if k not in owned}
            if what == "modify" and old is None:
                out.stale.setdefault(kind, {})[moid] = obj  # a change to an unseen object
            for change in ou.get("changeSet", ()):
                name, op, val = change["name"], change["op"], change.get("val")
                if name not in owned or op == "add":
                    out.stale.setdefault(kind, {})[moid] = obj
                elif op in _REMOVED or val is None:
                    props.pop(name, None)
                else:
                    props[name] = val
            for missing in ou.get("missingSet", ()):
                props.pop(missing["path"], None)
            table[moid] = props
    return out


@dataclass
class _Collector:
    """One of the cache's PropertyCollectors: its filters' shares and its update version."""

    collector: Any
    shares: dict[str, Share] = field(default_factory=dict)  # filter moid -> what it reads
    version: str = ""


def incomplete(
    applied: Applied, collectors: list[dict[str, Share]], members: dict[str, set[str]]
) -> None:
    """Mark to be read again whole (``applied.stale``) the objects of split kinds that
    changed but that not every collector has reported (``collectors``: each one's filters'
    shares; ``members``: filter -> the objects it reported): their records lack the
    properties of a share, e.g. a VM created after one collector's answer was prepared and
    before the other's."""
    by_kind: dict[Kind, list[set[str]]] = {}
    for shares in collectors:
        for flt, share in shares.items():
            if not share.whole:
                by_kind.setdefault(share.kind, []).append(members.get(flt, set()))
    for kind, sets in by_kind.items():
        table = getattr(applied.snapshot, kind.field)
        for moid in applied.changed:
            props = table.get(moid)
            if props is not None and not all(moid in s for s in sets):
                applied.stale.setdefault(kind, {})[moid] = props["_obj"]


class InventoryCache:
    """A vCenter's inventory as a :class:`Snapshot`, read in full once and then kept current
    with the changes vCenter reports, so a reconcile pass does not rescan thousands of VMs.

    ``login`` (optional) returns a new logged-in ServiceInstance; it is called when the
    session has expired, and without it an expired session is a SourceError. ``last`` says
    what the latest :meth:`snapshot` did. ``lxml=False`` reads the answers with pyvmomi's
    deserializer (the reference the tests compare lxml's reading with); ``split=False`` reads
    through one collector (:func:`parts`). Not thread-safe: one caller at a time.
    """

    def __init__(
        self,
        si: Any,
        *,
        login: Callable[[], Any] | None = None,
        max_object_updates: int | None = None,
        lxml: bool = True,
        split: bool = True,
    ) -> None:
        self.si = si
        self.lxml = lxml
        self.last: Pass | None = None
        self._login = login
        self._max_object_updates = max_object_updates
        self._parts = parts(split)
        self._snap: Snapshot | None = None
        self._collectors: list[_Collector] = []
        self._views: list[Any] = []
        self._filters: list[Any] = []
        self._members: dict[str, set[str]] = {}  # filter of a split kind -> objects it reported
        self._reason = "first read"  # why the next call must read everything

    def snapshot(self) -> Snapshot:
        """The inventory now: a full read the first time (and whenever the server forgot this
        cache's filter), otherwise the last snapshot with the changes since applied."""
        from pyVmomi import vim, vmodl

        started = time.perf_counter()
        if self._snap is None or not self._collectors:
            return self._full_read(self._reason, started)
        try:
            applied, versions, members, trips = self._drain(self._snap)
            self._reread(applied)
            trips += len(applied.stale)
        except (
            vmodl.fault.ManagedObjectNotFound,
            vmodl.query.InvalidCollectorVersion,
            vmodl.fault.RequestCanceled,
        ) as exc:
            return self._full_read(f"filter gone: {type(exc).__name__}", started)
        except vim.fault.NotAuthenticated:
            self._forget()  # the session and everything it created on the server are gone
            self._reason = "session expired"
            if self._login is None:
                raise SourceError(
                    "the vCenter session expired: log in again and set the new"
                    " ServiceInstance as .si, or give the inventory cache a login function"
                ) from None
            self.si = self._login()
            return self._full_read("session expired", started)
        if applied.changed:
            self._snap = applied.snapshot
        self._commit(versions, members)
        self.last = Pass(False, len(applied.changed), trips, time.perf_counter() - started)
        return self._snap

    def close(self) -> None:
        """Destroy this cache's filters, PropertyCollectors and ContainerViews on the server."""
        from pyVmomi import vmodl

        for obj in [*self._filters, *(c.collector for c in self._collectors), *self._views]:
            try:
                obj.Destroy()
            except (vmodl.MethodFault, OSError, HTTPException):
                pass  # already gone with its session, or the vCenter is unreachable
        self._forget()

    def __enter__(self) -> InventoryCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _forget(self) -> None:
        self._collectors, self._views, self._filters, self._members = [], [], [], {}

    def _full_read(self, reason: str, started: float) -> Snapshot:
        """Set up new collectors, views and filters and read their initial state."""
        from plugins.vsphere.soapparse import ask, streams

        self.close()
        content = self.si.RetrieveContent()
        streaming = self.lxml and streams(content.propertyCollector)
        asked: dict[Any, int] = {}
        try:
            for i, shares in enumerate(self._parts):
                part = _Collector(content.propertyCollector.CreatePropertyCollector())
                self._collectors.append(part)
                for share in shares:
                    view = content.viewManager.CreateContainerView(
                        content.rootFolder, [share.kind.vim_class()], True
                    )
                    self._views.append(view)
                    spec = view_spec(view, dataclasses.replace(share.kind, props=share.props))
                    flt = part.collector.CreateFilter(spec, partialUpdates=False)
                    self._filters.append(flt)
                    part.shares[flt._moId] = share
                if streaming:  # vCenter prepares it while the next collector is set up
                    asked[ask(part.collector, "WaitForUpdatesEx", "", self._options())] = i
        except BaseException:
            for call in asked:
                call.cancel()
            raise
        applied, versions, members, trips = self._drain(Snapshot(), asked or None)
        self._reread(applied)
        self._snap = applied.snapshot
        self._commit(versions, members)
        count = sum(len(getattr(self._snap, k.field)) for k in KINDS)
        self.last = Pass(True, count, trips, time.perf_counter() - started, reason)
        return self._snap

    def _commit(self, versions: list[str], members: dict[str, set[str]]) -> None:
        """A pass applied whole: the collectors' versions and the split kinds' members move."""
        for part, version in zip(self._collectors, versions, strict=True):
            part.version = version
        self._members = members

    def _options(self) -> Any:
        from pyVmomi import vmodl

        return vmodl.query.PropertyCollector.WaitOptions(
            maxWaitSeconds=0, maxObjectUpdates=self._max_object_updates
        )

    def _drain(
        self, base: Snapshot, asked: dict[Any, int] | None = None
    ) -> tuple[Applied, list[str], dict[str, set[str]], int]:
        """Every update since each collector's version, page after page while vCenter
        truncates them. The collectors are asked side by side (a call each, on connections
        of their own), so vCenter prepares their answers at once, and each answer is read
        and applied as it comes in while the others are still being prepared. Returns what
        was applied, the collectors' new versions, the split kinds' members and the round
        trips (the most any one collector needed: they travel at the same time). Objects
        that one collector reported and another not (yet) are marked to be read again.
        ``asked``: the first calls, already sent (call -> collector index)."""
        from plugins.vsphere.soapparse import ask, first_ready, invoke, receive, streams

        options = self._options()
        members = {flt: set(objs) for flt, objs in self._members.items()}
        versions = [c.version for c in self._collectors]
        trips = [0] * len(self._collectors)
        applied: Applied | None = None
        if not self.lxml or not all(streams(c.collector) for c in self._collectors):
            for i, part in enumerate(self._collectors):  # pyvmomi's reading: one at a time
                while True:
                    update_set = invoke(
                        part.collector, "WaitForUpdatesEx", versions[i], options, lxml=False
                    )
                    trips[i] += 1
                    if update_set is None:
                        break
                    applied = apply_updates(base, part.shares, update_set, applied, members)
                    versions[i] = update_set["version"]
                    if not update_set.get("truncated"):
                        break
            return self._finish(base, applied, versions, members, trips)
        waiting = asked or {
            ask(c.collector, "WaitForUpdatesEx", c.version, options): i
            for i, c in enumerate(self._collectors)
        }
        try:
            while waiting:
                call = first_ready(list(waiting))
                i = waiting.pop(call)
                answer = receive(call)
                trips[i] += 1
                if answer.ret is None:  # nothing changed
                    continue
                version = answer.text("version") or ""
                if answer.text("truncated") in ("true", "1"):  # the next page travels now
                    waiting[ask(call.mo, "WaitForUpdatesEx", version, options)] = i
                update_set = answer.records()
                applied = apply_updates(
                    base, self._collectors[i].shares, update_set, applied, members
                )
                versions[i] = version
        finally:
            for call in waiting:  # a failed pass: the other answers are not read
                call.cancel()
        return self._finish(base, applied, versions, members, trips)

    def _finish(
        self,
        base: Snapshot,
        applied: Applied | None,
        versions: list[str],
        members: dict[str, set[str]],
        trips: list[int],
    ) -> tuple[Applied, list[str], dict[str, set[str]], int]:
        applied = applied or Applied(base, set(), {})
        incomplete(applied, [c.shares for c in self._collectors], members)
        return applied, versions, members, max(trips)

    def _reread(self, applied: Applied) -> None:
        """Read again, in one call per kind, the objects whose changes could not be applied."""
        from pyVmomi import vmodl

        pc = vmodl.query.PropertyCollector
        collector = self._collectors[0].collector
        for kind, objs in applied.stale.items():
            spec = pc.FilterSpec(
                objectSet=[pc.ObjectSpec(obj=obj, skip=False) for obj in objs.values()],
                propSet=[pc.PropertySpec(type=kind.vim_class(), pathSet=list(kind.props))],
                reportMissingObjectsInResults=True,  # gone since: its ``leave`` comes next
            )
            table = getattr(applied.snapshot, kind.field)
            table.update(retrieve(collector, spec, lxml=self.lxml))
