"""A faster reader of PropertyCollector answers: lxml parses the SOAP, pyvmomi's types shape it.

Kept for ``bench_vsphere_parse.py`` (d), which proves it builds objects that serialize exactly
as pyvmomi's own deserializer's, and measures both.  The plugin reads with
``plugins/vsphere/soapparse.py`` instead: plain records, cheaper still than these objects.

pyvmomi deserializes with expat and a Python callback per element, and builds every data
object through its checked ``__setattr__``; for a 5,000-VM inventory that is most of this
process's CPU.  This module walks an lxml tree of the same bytes and builds the same pyvmomi
objects (the same classes, fields and values) with the type lookups cached and the checks left
out: the types come from pyvmomi's own tables, as its deserializer takes them.
"""

from __future__ import annotations

import base64
from datetime import datetime
from functools import lru_cache
from typing import Any

from pyVmomi import Iso8601
from pyVmomi.VmomiSupport import DataObject, Enum, ManagedMethod, ManagedObject, binary

# the type lookups the plugin's reader uses, shared (its caches too)
from plugins.vsphere.soapparse import _compatible, _prop, _wsdl_type
from plugins.vsphere.soapparse import _split as _split_type

XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"
XSD = "http://www.w3.org/2001/XMLSchema"


@lru_cache(maxsize=4096)
def _defaults(cls: Any) -> tuple[dict[str, Any], tuple[tuple[str, Any], ...]]:
    """A fresh instance's fields: the scalar defaults, and the array fields (made anew)."""
    scalars: dict[str, Any] = {}
    arrays = []
    for k, v in vars(cls()).items():
        if isinstance(v, list):
            arrays.append((k, type(v)))
        else:
            scalars[k] = v
    return scalars, tuple(arrays)


def _new(cls: Any) -> Any:
    obj = cls.__new__(cls)
    scalars, arrays = _defaults(cls)
    d = obj.__dict__
    d.update(scalars)
    for k, t in arrays:
        d[k] = t()
    return obj


def _is(t: Any, base: Any) -> bool:
    return isinstance(t, type) and issubclass(t, base)


_MO, _LIST, _DATA, _SCALAR = range(4)


def _kind(t: Any) -> int:
    if not isinstance(t, type):
        return _SCALAR
    if issubclass(t, ManagedObject):
        return _MO
    if issubclass(t, list):
        return _LIST
    if issubclass(t, DataObject):
        return _DATA
    return _SCALAR


class Reader:
    """Builds pyvmomi objects from lxml elements, managed objects bound to ``stub``.

    One reader serves one answer: it caches how each ``xsi:type`` and ``type`` attribute
    resolves, as the answer binds its namespace prefixes once (on the envelope)."""

    def __init__(self, stub: Any) -> None:
        self.stub = stub
        self.version = getattr(stub, "version", None)
        self.types: dict[str, Any] = {}
        self.kinds: dict[Any, int] = {}
        self.props: dict[tuple[Any, str], tuple[str, Any, bool]] = {}
        self.dynamic: dict[Any, bool] = {}

    def _resolve(self, value: str, el: Any) -> Any:
        t = self.types.get(value)
        if t is None:
            t = _wsdl_type(*_split_type(value, el.nsmap))
            if self.version:
                t = _compatible(t, self.version)
            self.types[value] = t
        return t

    def value(self, el: Any, declared: Any) -> Any:
        t = declared
        xsi = el.get(XSI_TYPE)
        if xsi is not None:
            dyn_ignored = self.dynamic.get(declared)
            if dyn_ignored is None:
                dyn_ignored = self.dynamic[declared] = _dynamic_ignored(declared)
            if not dyn_ignored:
                dyn = self._resolve(xsi, el)
                if not (_is(dyn, list) and _is(declared, list)):
                    t = dyn
        kind = self.kinds.get(t)
        if kind is None:
            if self.version:
                t2 = _compatible(t, self.version)
            else:
                t2 = t
            kind = self.kinds[t] = _kind(t2)
        if xsi is None and kind == _LIST:
            t = t.Item
            kind = self.kinds.get(t)
            if kind is None:
                kind = self.kinds[t] = _kind(t)
        if self.version:
            t = _compatible(t, self.version)
        if kind == _DATA:
            obj = _new(t)
            d = obj.__dict__
            props = self.props
            for c in el:
                tag = c.tag
                name = tag[tag.index("}") + 1 :] if tag[0] == "{" else tag
                p = props.get((t, name))
                if p is None:
                    p = props[(t, name)] = _prop(t, name)
                attr, ptype, is_list = p
                v = self.value(c, ptype)
                if is_list and not isinstance(v, list):
                    d[attr].append(v)
                else:
                    d[attr] = v
            return obj
        if kind == _SCALAR:
            return _scalar(t, el.text or "", el)
        if kind == _MO:
            cls = self._resolve(el.get("type"), el)
            return cls(el.text or "", self.stub, el.get("serverGuid"))
        arr = t()
        item = t.Item
        for c in el:
            arr.append(self.value(c, item))
        return arr


def _dynamic_ignored(t: Any) -> bool:
    from pyVmomi.SoapAdapter import isDynamicType

    return isDynamicType(t)


def _scalar(t: Any, data: str, el: Any) -> Any:
    if t is str:
        return data
    if t is bool:
        low = data.lower()
        if data == "1" or low == "true":
            return True
        if data == "0" or low == "false":
            return False
        raise TypeError(data)
    if t is type:
        return _wsdl_type(*_split_type(data, el.nsmap)) if data else None
    if t is ManagedMethod:
        raise TypeError("a method in a property answer")
    if t is binary:
        return binary(base64.b64decode(data))
    if t is datetime:
        parsed = Iso8601.ParseISO8601(data)
        if not parsed:
            raise TypeError(data)
        return parsed
    if _is(t, Enum):
        return getattr(t, data)
    return t(data)
