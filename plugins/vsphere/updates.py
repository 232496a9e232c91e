"""The vSphere inventory kept current by vCenter's PropertyCollector: one full read, then changes.

The first :meth:`InventoryCache.snapshot` creates a PropertyCollector of its own (so its filters
and update versions never mix with anyone else's on the session) and, per
:data:`~plugins.vsphere.inventory.KINDS` entry, a ContainerView of the whole inventory and a
filter over it; then it asks ``WaitForUpdatesEx`` from version ``""``: vCenter answers with an
``enter`` for every object, which is the full read. Later calls ask ``WaitForUpdatesEx(version,
maxWaitSeconds=0)`` for what changed since and apply it, so a pass after one VM changed costs one
small round trip instead of a rescan. VMs created later arrive as ``enter`` (the ContainerView's
``view`` grows), destroyed ones as ``leave``.

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
from dataclasses import dataclass
from http.client import HTTPException
from typing import Any

from plugins.vsphere.inventory import KINDS, Kind, Snapshot, retrieve, view_spec
from reconciler.sources import SourceError

_REMOVED = ("remove", "indirectRemove")


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
    base: Snapshot, kinds: dict[str, Kind], update_set: Any, into: Applied | None = None
) -> Applied:
    """Apply a ``WaitForUpdatesEx`` UpdateSet, a plain record (:mod:`plugins.vsphere.soapparse`;
    ``kinds``: filter moid -> kind), to ``base``.

    ``base`` is not modified: a changed kind gets a new dict and a changed object a new props
    dict, so a snapshot handed out earlier stays as it was. Pass ``into`` to go on applying
    the next page of a truncated update to the same result.
    """
    out = into or Applied(dataclasses.replace(base), set(), {})
    copied = {k for k in KINDS if getattr(out.snapshot, k.field) is not getattr(base, k.field)}
    for fu in update_set.get("filterSet", ()):
        kind = kinds.get(fu["filter"]._moId)
        if kind is None:
            continue
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
                out.stale.get(kind, {}).pop(moid, None)
                continue
            old = table.get(moid) if what == "modify" else None
            props = dict(old) if old is not None else {"_obj": obj}
            if what == "modify" and old is None:
                out.stale.setdefault(kind, {})[moid] = obj  # a change to an unseen object
            for change in ou.get("changeSet", ()):
                name, op, val = change["name"], change["op"], change.get("val")
                if name not in kind.props or op == "add":
                    out.stale.setdefault(kind, {})[moid] = obj
                elif op in _REMOVED or val is None:
                    props.pop(name, None)
                else:
                    props[name] = val
            for missing in ou.get("missingSet", ()):
                props.pop(missing["path"], None)
            table[moid] = props
    return out


class InventoryCache:
    """A vCenter's inventory as a :class:`Snapshot`, read in full once and then kept current
    with the changes vCenter reports, so a reconcile pass does not rescan thousands of VMs.

    ``login`` (optional) returns a new logged-in ServiceInstance; it is called when the
    session has expired, and without it an expired session is a SourceError. ``last`` says
    what the latest :meth:`snapshot` did. ``lxml=False`` reads the answers with pyvmomi's
    deserializer (the reference the tests compare lxml's reading with). Not thread-safe: one
    caller at a time.
    """

    def __init__(
        self,
        si: Any,
        *,
        login: Callable[[], Any] | None = None,
        max_object_updates: int | None = None,
        lxml: bool = True,
    ) -> None:
        self.si = si
        self.lxml = lxml
        self.last: Pass | None = None
        self._login = login
        self._max_object_updates = max_object_updates
        self._snap: Snapshot | None = None
        self._collector: Any = None
        self._views: list[Any] = []
        self._filters: list[Any] = []
        self._kinds: dict[str, Kind] = {}  # filter moid -> what it reads
        self._version = ""
        self._reason = "first read"  # why the next call must read everything

    def snapshot(self) -> Snapshot:
        """The inventory now: a full read the first time (and whenever the server forgot this
        cache's filter), otherwise the last snapshot with the changes since applied."""
        from pyVmomi import vim, vmodl

        started = time.perf_counter()
        if self._snap is None or self._collector is None:
            return self._full_read(self._reason, started)
        try:
            applied, version, trips = self._drain(self._snap, self._version)
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
        self._version = version
        self.last = Pass(False, len(applied.changed), trips, time.perf_counter() - started)
        return self._snap

    def close(self) -> None:
        """Destroy this cache's filters, PropertyCollector and ContainerViews on the server."""
        from pyVmomi import vmodl

        for obj in [*self._filters, self._collector, *self._views]:
            if obj is not None:
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
        self._collector = None
        self._views, self._filters, self._kinds = [], [], {}
        self._version = ""

    def _full_read(self, reason: str, started: float) -> Snapshot:
        """Set up a new collector, views and filters and read their initial state."""
        self.close()
        content = self.si.RetrieveContent()
        self._collector = content.propertyCollector.CreatePropertyCollector()
        for kind in KINDS:
            view = content.viewManager.CreateContainerView(
                content.rootFolder, [kind.vim_class()], True
            )
            self._views.append(view)
            flt = self._collector.CreateFilter(view_spec(view, kind), partialUpdates=False)
            self._filters.append(flt)
            self._kinds[flt._moId] = kind
        applied, version, trips = self._drain(Snapshot(), "")
        self._reread(applied)
        self._snap, self._version = applied.snapshot, version
        count = sum(len(getattr(self._snap, k.field)) for k in KINDS)
        self.last = Pass(True, count, trips, time.perf_counter() - started, reason)
        return self._snap

    def _drain(self, base: Snapshot, version: str) -> tuple[Applied, str, int]:
        """Every update since ``version``, page after page while vCenter truncates them; the
        cache's own version moves only once the whole result is applied."""
        from pyVmomi import vmodl

        from plugins.vsphere.soapparse import invoke

        options = vmodl.query.PropertyCollector.WaitOptions(
            maxWaitSeconds=0, maxObjectUpdates=self._max_object_updates
        )
        applied: Applied | None = None
        trips = 0
        while True:
            update_set = invoke(
                self._collector, "WaitForUpdatesEx", version, options, lxml=self.lxml
            )
            trips += 1
            if update_set is None:  # nothing changed
                break
            applied = apply_updates(base, self._kinds, update_set, applied)
            version = update_set["version"]
            if not update_set.get("truncated"):
                break
        return applied or Applied(base, set(), {}), version, trips

    def _reread(self, applied: Applied) -> None:
        """Read again, in one call per kind, the objects whose changes could not be applied."""
        from pyVmomi import vmodl

        pc = vmodl.query.PropertyCollector
        for kind, objs in applied.stale.items():
            spec = pc.FilterSpec(
                objectSet=[pc.ObjectSpec(obj=obj, skip=False) for obj in objs.values()],
                propSet=[pc.PropertySpec(type=kind.vim_class(), pathSet=list(kind.props))],
                reportMissingObjectsInResults=True,  # gone since: its ``leave`` comes next
            )
            table = getattr(applied.snapshot, kind.field)
            table.update(retrieve(self._collector, spec, lxml=self.lxml))
