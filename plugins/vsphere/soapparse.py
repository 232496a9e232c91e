"""PropertyCollector calls whose answers lxml reads into plain records, over pyvmomi's own stub.

pyvmomi deserializes with expat and a Python callback per element, and builds every data object
through its checked ``__setattr__``: for a 5,000-VM inventory that was most of a full read's
time. The inventory's three calls (RetrievePropertiesEx, ContinueRetrievePropertiesEx,
WaitForUpdatesEx) go instead through :func:`invoke`: pyvmomi serializes the request and lends
its connection (its pool, TLS context and thumbprint check, session cookie); lxml parses the
answer as it arrives from the socket (:func:`fetch`), and :class:`Parser` turns it into plain
records, typed by pyvmomi's own tables. :func:`ask` sends a call without waiting for its answer
(:func:`receive` reads it), so calls to several collectors travel side by side on connections
of their own while this thread reads whichever answer came first (:func:`first_ready`):

- a data object is a dict of its set fields plus ``_type`` (its WSDL name, ``VirtualDisk``);
  unset fields and empty arrays are absent;
- a managed object reference is a pyvmomi managed object bound to the stub (usable for calls);
- an array is a list; enums and strings are ``str``, numbers ``int`` / ``float``, booleans
  ``bool``, dates ``datetime``, binary ``bytes``.

:func:`plain` gives the same records from pyvmomi's objects: the reference the tests compare
this parser with, and the path :func:`invoke` takes when told not to use lxml. A fault answer
(HTTP 500) is deserialized by pyvmomi and raised as pyvmomi raises it (``vim.fault.*``,
``vmodl.fault.*``), so callers catch the same exceptions either way.
"""

from __future__ import annotations

import base64
import gc
import io
import select
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from http.client import HTTPException, IncompleteRead
from typing import Any

from pyVmomi import Iso8601, SoapAdapter, VmomiSupport
from pyVmomi.SoapAdapter import LocalizedMethodFault
from pyVmomi.VmomiSupport import (
    DataObject,
    GetWsdlType,
    GuessWsdlType,
    ManagedMethod,
    ManagedObject,
    binary,
)

XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"
SOAP_BODY = "{http://schemas.xmlsoap.org/soap/envelope/}Body"
_MO, _LIST, _FAULT, _DATA, _STR, _BOOL, _INT, _FLOAT, _OTHER = range(9)


def plain(value: Any) -> Any:
    """pyvmomi's objects as the plain records :class:`Parser` builds (see the module doc)."""
    if value is None or isinstance(value, ManagedObject):
        return value
    if isinstance(value, DataObject):
        out: dict[str, Any] = {"_type": type(value)._wsdlName}
        for prop in value._GetPropertyList():
            v = getattr(value, prop.name)
            if v is None or (not v and isinstance(v, list) and issubclass(prop.type, list)):
                continue  # unset; an empty array field is unset too (not so an anyType one)
            out[prop.name] = plain(v)
        return out
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, bytes):
        return bytes(value)
    return value  # datetime, type


@lru_cache(maxsize=4096)
def wsdl_class(wsdl_name: str) -> Any:
    """pyvmomi's class for a record's ``_type`` (``VirtualMachineVideoCard`` ->
    ``vim.vm.device.VirtualVideoCard``), None for a name it does not know."""
    try:
        return GetWsdlType(VmomiSupport.XMLNS_VMODL_BASE, wsdl_name)
    except KeyError:
        try:
            return GuessWsdlType(wsdl_name)
        except KeyError:
            return None


def is_a(record: Any, cls: Any) -> bool:
    """Whether a data object record is a ``cls`` (a pyvmomi class), subtypes included, as
    ``isinstance`` is for pyvmomi's objects (a ``VirtualVmxnet3`` is a
    ``VirtualEthernetCard``)."""
    if not isinstance(record, dict):
        return False
    t = wsdl_class(record.get("_type", ""))
    return isinstance(t, type) and issubclass(t, cls)


@lru_cache(maxsize=4096)
def _wsdl_type(ns: str, name: str) -> Any:
    try:
        return GetWsdlType(ns, name)
    except KeyError:
        if name.endswith("ManagedObjectReference"):
            return GetWsdlType(VmomiSupport.XMLNS_VMODL_BASE, name[: -len("Reference")])
        return GuessWsdlType(name)


@lru_cache(maxsize=4096)
def _compatible(t: Any, version: Any) -> Any:
    return VmomiSupport.GetCompatibleType(t, version) if version else t


@lru_cache(maxsize=8192)
def _prop(cls: Any, name: str) -> tuple[str, Any, bool]:
    info = cls._GetPropertyInfo(name)
    return info.name, info.type, issubclass(info.type, list)


@lru_cache(maxsize=4096)
def _required(cls: Any) -> dict[str, Any]:
    """A record's start: its ``_type`` and the defaults pyvmomi gives the required fields an
    answer leaves out (``""``, ``0``, ``False``), as its deserializer starts from ``cls()``."""
    out: dict[str, Any] = {"_type": cls._wsdlName}
    for name, value in vars(cls()).items():
        if value is not None and not isinstance(value, list):
            out[name] = plain(value)
    return out


def _kind(t: Any) -> int:
    if not isinstance(t, type):
        return _OTHER
    for base, kind in (
        (ManagedObject, _MO),
        (list, _LIST),
        (Exception, _FAULT),  # a MethodFault, a DataObject too
        (DataObject, _DATA),
        (bool, _BOOL),
        (str, _STR),  # enums, PropertyPath and URI included
        (int, _INT),
        (float, _FLOAT),
    ):
        if issubclass(t, base):
            return kind
    return _OTHER


def _split(value: str, nsmap: Any) -> tuple[str, str]:
    prefix, _, name = value.rpartition(":")
    return nsmap.get(prefix or None, ""), name


def _text(text: str | None) -> str:
    return text or ""


def _bool(text: str | None) -> bool:
    text = text or ""
    if text == "1" or text.lower() == "true":
        return True
    if text == "0" or text.lower() == "false":
        return False
    raise TypeError(f"not a boolean: {text!r}")


_SKIP, _REF = object(), object()
_CONVERT = {_STR: _text, _INT: int, _BOOL: _bool, _FLOAT: float, _MO: _REF}
_DYNAMIC = frozenset({ManagedMethod, VmomiSupport.PropertyPath, type})  # xsi:type ignored


class Parser:
    """Plain records from the lxml elements of one answer; references bound to ``stub``.

    Caches how each ``xsi:type`` resolves and each reference (a host named by 2,000 VMs is
    one object), so the per-element work is a few dict lookups."""

    def __init__(self, stub: Any) -> None:
        self.stub = stub
        self.version = getattr(stub, "version", None)
        self.types: dict[str, Any] = {}
        self.xsi: dict[str, tuple[Any, int]] = {}  # xsi:type text -> its shape
        self.kinds: dict[Any, tuple[Any, int]] = {}
        self.plans: dict[Any, dict[Any, Any]] = {}  # type -> child tag -> how to read it
        self.refs: dict[tuple[str, str], Any] = {}
        self.guids = bool(stub is not None and stub.SupportServerGUIDs())

    def _resolve(self, value: str, el: Any) -> Any:
        t = self.types.get(value)
        if t is None:
            t = self.types[value] = _compatible(_wsdl_type(*_split(value, el.nsmap)), self.version)
        return t

    def _shape(self, t: Any) -> tuple[Any, int]:
        shape = self.kinds.get(t)
        if shape is None:
            c = _compatible(t, self.version)
            shape = self.kinds[t] = (c, _kind(c))
        return shape

    def _field(self, t: Any, tag: Any) -> Any:
        """How a child element ``tag`` of a ``t`` is read: (field, declared type, whether an
        array, the converter of an untyped scalar leaf or None, whether a fault below it is
        wrapped); _SKIP for a comment."""
        if not isinstance(tag, str):
            return _SKIP
        name = tag[tag.index("}") + 1 :] if tag[0] == "{" else tag
        attr, ptype, is_list = _prop(t, name)
        _, kind = self._shape(ptype.Item if is_list else ptype)
        conv = _CONVERT.get(kind)
        return attr, ptype, is_list, conv, not (t is LocalizedMethodFault and name == "fault")

    def _ref(self, el: Any) -> Any:
        """A managed object reference, one object per answer for each (type, moid)."""
        key = (el.get("type"), el.text or "")
        ref = self.refs.get(key)
        if ref is None:
            cls = self._resolve(key[0], el)
            guid = None if self.guids else el.get("serverGuid")
            ref = self.refs[key] = cls(key[1], self.stub, guid)
        return ref

    def value(self, el: Any, declared: Any, as_localized: bool = True) -> Any:
        """The record of ``el``, a value declared as ``declared``, resolved as pyvmomi's
        deserializer does: its ``xsi:type`` wins (except for dynamic types, an array typed
        as an array, and the leaves of scalar and reference fields, which have no subtypes),
        an untyped element of an array-valued field is one item, and a fault below the top
        is wrapped as a LocalizedMethodFault."""
        shape = self.kinds.get(declared)
        t, kind = shape if shape is not None else self._shape(declared)
        xsi = el.get(XSI_TYPE)
        if xsi is not None:
            if declared not in _DYNAMIC:
                dyn = self.xsi.get(xsi)
                if dyn is None:
                    dyn = self.xsi[xsi] = self._shape(self._resolve(xsi, el))
                if not (kind == _LIST and dyn[1] == _LIST):
                    t, kind = dyn
        elif kind == _LIST:
            t, kind = self._shape(t.Item)
        if kind == _FAULT:
            if as_localized:
                t = LocalizedMethodFault
            kind = _DATA
        if kind == _DATA:
            out = dict(_required(t))
            plan = self.plans.get(t)
            if plan is None:
                plan = self.plans[t] = {}
            for c in el:
                tag = c.tag
                f = plan.get(tag)
                if f is None:
                    f = plan[tag] = self._field(t, tag)
                if f is _SKIP:
                    continue
                attr, ptype, is_list, conv, localized = f
                # a leaf of a scalar or reference field is read by its declared type, without
                # looking for an ``xsi:type``: the WSDL gives those types no subtypes to name
                # (a reference's class is its ``type``), and the lookup was a tenth of the walk
                if conv is not None:
                    if conv is _REF:
                        v = self._ref(c)
                    else:
                        v = conv(c.text)  # an untyped leaf of a scalar field: most elements
                else:
                    v = self.value(c, ptype, localized)
                if is_list and not isinstance(v, list):
                    items = out.get(attr)
                    if items is None:
                        out[attr] = [v]
                    else:
                        items.append(v)
                else:
                    out[attr] = v
            in_localized = t is LocalizedMethodFault
            if in_localized:  # as pyvmomi: the fault itself, with the message as its msg
                fault = dict(out.get("fault") or {})
                fault.pop("msg", None)
                if out.get("localizedMessage") is not None:
                    fault["msg"] = out["localizedMessage"]
                return fault
            return out
        if kind == _STR:
            return el.text or ""
        if kind == _MO:
            return self._ref(el)
        if kind == _LIST:
            item = t.Item
            return [self.value(c, item) for c in el if isinstance(c.tag, str)]
        if kind == _INT:
            return int(el.text)
        if kind == _BOOL:
            return _bool(el.text)
        if kind == _FLOAT:
            return float(el.text)
        return _other(t, el.text or "", el)


def _other(t: Any, data: str, el: Any) -> Any:
    if t is type:
        return _wsdl_type(*_split(data, el.nsmap)) if data else None
    if t is binary:
        return base64.b64decode(data)
    if t is datetime:
        parsed = Iso8601.ParseISO8601(data)
        if not parsed:
            raise TypeError(f"not a date: {data!r}")
        return parsed
    if t is ManagedMethod:
        raise TypeError("a method in a property answer")
    return t(data)


def _xml_parser() -> Any:
    from lxml import etree

    return etree.XMLParser(
        resolve_entities=False, no_network=True, huge_tree=True, collect_ids=False
    )


@contextmanager
def _gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off while an answer's records are built: they are
    millions of new dicts and lists without a single cycle, and the collections their
    allocations trigger (each over every object the process holds) cost a tenth or more of
    the parse. Left alone when it is off already."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@dataclass(frozen=True)
class Parsed:
    """An answer lxml has parsed, its records not built yet: what the next call needs (a
    page's ``token``) is read from it first, so that call can travel while these records are
    built."""

    stub: Any
    ret: Any  # the returnval element; None when the answer has none
    result_type: Any

    @classmethod
    def of(cls, stub: Any, root: Any, result_type: Any) -> Parsed:
        body_el = root.find(SOAP_BODY)
        response = body_el[0] if body_el is not None and len(body_el) else None
        if response is None:
            raise HTTPException("a SOAP answer without a body")
        ret = next((c for c in response if isinstance(c.tag, str)), None)
        return cls(stub, ret, result_type)

    def text(self, name: str) -> str | None:
        """The text of the returnval's child element ``name`` (``token``), None without one."""
        el = None if self.ret is None else self.ret.find("{*}" + name)
        return None if el is None else el.text or ""

    def records(self) -> Any:
        """The returnval as a plain record (None when there is none)."""
        if self.ret is None:
            return None
        with _gc_paused():
            return Parser(self.stub).value(self.ret, self.result_type)


def parse_response(stub: Any, body: bytes, result_type: Any) -> Any:
    """The ``returnval`` of a SOAP answer as a plain record (None when there is none)."""
    from lxml import etree

    return Parsed.of(stub, etree.fromstring(body, _xml_parser()), result_type).records()


def streams(mo: Any) -> bool:
    """Whether calls of ``mo`` can go through :func:`fetch`: a pyvmomi SOAP stub is behind it."""
    return isinstance(mo._stub, SoapAdapter.SoapStubAdapter)


def invoke(mo: Any, method: str, *args: Any, lxml: bool = True) -> Any:
    """Call ``method`` of the managed object ``mo``; its answer as a plain record.

    With ``lxml`` (and a pyvmomi ``SoapStubAdapter`` behind ``mo``), the request travels over
    the stub's own connection and lxml reads the answer as it arrives (:func:`call`);
    otherwise pyvmomi makes the call and :func:`plain` converts what it returns."""
    if not lxml or not streams(mo):
        return plain(getattr(mo, method)(*args))
    return call(mo, method, *args)


CHUNK = 1 << 18  # bytes handed to lxml at a time, at most: one read of the socket


def _send(mo: Any, method: str, args: tuple[Any, ...]) -> tuple[Any, Any]:
    """Send one call over the stub's connection as pyvmomi would: the connection and the
    answer (its status and headers read, its body not yet)."""
    return _response(ask(mo, method, *args))


@dataclass(frozen=True)
class Pending:
    """A call sent over one of the stub's connections whose answer has not been read: vCenter
    works on it meanwhile, side by side with other pending calls on other connections."""

    mo: Any
    method: str
    conn: Any

    def fileno(self) -> int:
        """The connection's socket, for ``select``: readable once the answer starts."""
        return self.conn.sock.fileno()

    def cancel(self) -> None:
        """Give the call up: its connection, with an answer on the way, is closed, not
        pooled."""
        self.conn.close()


def ask(mo: Any, method: str, *args: Any) -> Pending:
    """Send ``method`` of ``mo`` over a connection of its stub's pool, as pyvmomi would, and
    return without waiting for the answer (:func:`receive` reads it)."""
    stub = mo._stub
    info = type(mo)._GetMethodInfo(method)
    headers = {
        "Cookie": stub.cookie,
        "SOAPAction": stub.versionId,
        "Content-Type": f"text/xml; charset={SoapAdapter.XML_ENCODING}",
        "User-Agent": "mtv-gitops (pyvmomi)",
    }
    if stub._customHeaders:
        headers.update(stub._customHeaders)
    if stub._acceptCompressedResponses:
        headers["Accept-Encoding"] = "gzip, deflate"
    req = stub.SerializeRequest(mo, info, list(args))
    for modifier in stub.requestModifierList:
        req = modifier(req)
    conn = stub.GetConnection()
    try:
        conn.request("POST", stub.path, req, headers)
    except (OSError, HTTPException):
        _sick(stub, conn)
        raise
    return Pending(mo, method, conn)


def first_ready(pending: list[Pending]) -> Pending:
    """The pending call whose answer started arriving first (waits for one)."""
    ready, _, _ = select.select(pending, [], [])
    return ready[0]


def _response(p: Pending) -> tuple[Any, Any]:
    """A pending call's connection and answer: its status and headers read, its body not."""
    stub, conn = p.mo._stub, p.conn
    try:
        resp = conn.getresponse()
    except (OSError, HTTPException):
        _sick(stub, conn)
        raise
    cookie = resp.getheader("Set-Cookie") or resp.getheader("set-cookie")
    if cookie:
        stub.cookie = cookie
    if resp.status not in (200, 500):
        conn.close()
        raise HTTPException(f"{resp.status} {resp.reason}")
    return conn, resp


def _sick(stub: Any, conn: Any) -> None:
    """As pyvmomi after a failed exchange: the server is probably sick, drop the pooled
    connections too."""
    conn.close()
    stub.DropConnections()


def _inflater(resp: Any) -> Any:
    encoding = (resp.getheader("Content-Encoding") or "identity").lower()
    if encoding not in ("gzip", "deflate"):
        return None
    return zlib.decompressobj(16 + zlib.MAX_WBITS if encoding == "gzip" else 0)


def _stream(resp: Any, sink: Any) -> None:
    """Hand ``sink`` the answer's body (decompressed) piece by piece as the socket gives it;
    an answer cut short raises IncompleteRead, as ``resp.read()`` does."""
    inflate = _inflater(resp)
    while True:
        chunk = resp.read1(CHUNK)
        if not chunk:
            break
        sink(inflate.decompress(chunk) if inflate is not None else chunk)
    if resp.length:  # the connection ended before Content-Length bytes came
        raise IncompleteRead(b"", resp.length)
    resp.read()  # b"", and the answer marked as read: the connection can carry the next call
    if inflate is not None:
        sink(inflate.flush())
        if not inflate.eof:
            raise IncompleteRead(b"")


def call(mo: Any, method: str, *args: Any) -> Any:
    """Call ``method`` of ``mo`` over its pyvmomi stub's connection: the answer's records
    (:func:`fetch`)."""
    return fetch(mo, method, *args).records()


def fetch(mo: Any, method: str, *args: Any) -> Parsed:
    """Call ``method`` of ``mo`` over its pyvmomi stub's connection; lxml parses the answer
    while it arrives (:func:`receive`)."""
    return receive(ask(mo, method, *args))


def receive(p: Pending) -> Parsed:
    """The answer to a call :func:`ask` sent, parsed by lxml while it arrives, so the parse
    overlaps the server's sending instead of following it. The records are built later,
    from the whole answer (a broken answer yields nothing); a fault (HTTP 500) is raised as
    pyvmomi raises it."""
    stub = p.mo._stub
    result_type = type(p.mo)._GetMethodInfo(p.method).result
    conn, resp = _response(p)
    if resp.status == 500:
        answer(stub, 500, _read_all(stub, conn, resp), result_type)  # raises the fault
    parser = _xml_parser()
    try:
        _stream(resp, parser.feed)
        root = parser.close()
    except (OSError, HTTPException):
        _sick(stub, conn)
        raise
    except BaseException:
        conn.close()  # an answer lxml refuses: what is left of it is never read
        raise
    stub.ReturnConnection(conn)
    return Parsed.of(stub, root, result_type)


def _read_all(stub: Any, conn: Any, resp: Any) -> bytes:
    pieces: list[bytes] = []
    try:
        _stream(resp, pieces.append)
    except (OSError, HTTPException):
        _sick(stub, conn)
        raise
    stub.ReturnConnection(conn)
    return b"".join(pieces)


def post(mo: Any, method: str, *args: Any) -> tuple[int, bytes]:
    """Send one call over the stub's connection as pyvmomi would: its HTTP status and the
    answer's bytes (decompressed)."""
    conn, resp = _send(mo, method, args)
    return resp.status, _read_all(mo._stub, conn, resp)


def answer(stub: Any, status: int, body: bytes, result_type: Any) -> Any:
    """An answer's record (status 200), or its fault raised as pyvmomi raises it (500)."""
    if status == 500:
        deserializer = SoapAdapter.SoapResponseDeserializer(stub)
        fault = deserializer.Deserialize(io.BytesIO(body), result_type)
        if isinstance(fault, BaseException):
            raise fault
        raise HTTPException(f"a SOAP fault that is no fault: {type(fault).__name__}")
    return parse_response(stub, body, result_type)
