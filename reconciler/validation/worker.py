"""The rule engine's own process: regopy is native code, so it never runs in the reconciler.

A rule that loops, a crash in rego-cpp or its habit of printing errors to file descriptor 1 can
then cost at most this process, which the parent kills and restarts (see ``engine.py``).

Protocol: one JSON request per line on stdin; replies as JSON lines on the descriptor that was
stdout when the process started. rego-cpp's own prints are redirected to a scratch file and read
back as the error text of a failed build or query.

Requests:
- ``{"op": "build", "modules": [[name, source], ...], "query": q, "version_query": vq}``
  → ``{"ok": true, "rules_version": v}`` or ``{"ok": false, "error": text}``
- ``{"op": "eval", "count": n}`` followed by n lines, one JSON input each → one line per
  input, in order: ``{"ok": true, "output": <the engine's output document>}`` (the parent takes
  ``bindings.x``) or ``{"ok": false, "error": text}``
- ``{"op": "query", "modules": [...], "query": q, "input": json|null}`` (a fresh interpreter, for
  rule tests) → ``{"ok": true, "result": <x or null when undefined>}`` or an error
"""

from __future__ import annotations

import ctypes
import functools
import json
import os
import sys
import tempfile
import threading
import time
from typing import Any, BinaryIO

from regopy import Interpreter, RegoError
from regopy import rego_shared as c

from reconciler.validation.groups import Group, merge, split
from reconciler.validation.projection import Tree, cut_elements, project


class _Captured:
    """Descriptor 1 pointed at a scratch file, so rego-cpp's prints become error text."""

    def __init__(self) -> None:
        self.proto: BinaryIO = os.fdopen(os.dup(1), "wb")
        self._file = tempfile.TemporaryFile()
        os.dup2(self._file.fileno(), 1)
        sys.stdout = sys.stderr

    def reset(self) -> None:
        # once per query: a syscall to see whether anything was printed, not two to empty it
        if os.lseek(self._file.fileno(), 0, os.SEEK_END) > 0:
            self._file.seek(0)
            self._file.truncate()

    def text(self) -> str:
        self._file.seek(0)
        return self._file.read().decode("utf-8", "replace").strip()


_INT64 = 1 << 63


def set_input_fast(interp: Any, value: Any, escaped: bool = False) -> bool:
    """The input document built node by node with the C calls regopy's own ``set_input`` makes,
    dispatched on the exact type (a third cheaper than regopy's isinstance chain, which matters
    at 10,000 VMs a pass). False, with nothing set, for a value this does not handle.

    With ``escaped``, a string holding a character JSON must escape (``"``, ``\\``, a control
    character) is given as ``json.dumps(s, ensure_ascii=False)`` writes it, the form rego-cpp
    holds a module's literals in: ``input.p == "c:\\\\"`` then holds for the path ``c:\\``, as
    in OPA, and the printed output stays JSON that decodes to the strings. Every other
    character, non-ASCII ones included, is given as itself (counted, compared and printed as
    OPA does), however the document's JSON text wrote it."""
    lib = c.rego
    new_str, obj_item = lib.regoInputString, lib.regoInputObjectItem
    p = c.rego_new_input()
    if escaped:

        def text(s: str) -> bytes:
            # cheaper than a regex search; a non-printable character JSON does not escape
            # (U+00A0, U+007F) goes through json.dumps too, which leaves it as it is
            if "\\" not in s and '"' not in s and s.isprintable():
                return s.encode()
            return json.dumps(s, ensure_ascii=False)[1:-1].encode()
    else:

        def text(s: str) -> bytes:
            return s.encode()

    def add(v: Any) -> None:
        t = type(v)
        if t is str:
            new_str(p, text(v))
        elif t is dict:
            for k, x in v.items():
                new_str(p, text(k))
                add(x)
                obj_item(p)
            lib.regoInputObject(p, len(v))
        elif t is list:
            for x in v:
                add(x)
            lib.regoInputArray(p, len(v))
        elif t is bool:
            lib.regoInputBoolean(p, v)
        elif t is int and -_INT64 <= v < _INT64:
            lib.regoInputInt(p, v)
        elif t is float:
            lib.regoInputFloat(p, v)
        elif v is None:
            lib.regoInputNull(p)
        else:
            raise ValueError(t)

    try:
        add(value)  # a string that is not UTF-8 (a lone surrogate) raises a ValueError too
    except ValueError:
        c.rego_free_input(p)
        return False
    c.rego_set_input(interp._impl, p)  # copies the document
    c.rego_free_input(p)
    return True


def _engine_error(out: _Captured, fallback: str, interp: Any = None) -> str:
    """What rego-cpp said: its prints, else the interpreter's last error (never ``str(Output)``
    of a failed query, which crashes regopy 1.5.2)."""
    text = out.text()
    if not text and interp is not None:
        text = (c.rego_get_error(interp._impl) or "").strip()
    return text or fallback


def set_input(interp: Any, doc: str, value: Any, escapes: bool | None = None) -> None:
    """``doc`` (whose parsed value is ``value``) as the engine's input, each string in the one
    form rego-cpp holds a literal in (``set_input_fast``), whether the text wrote a character
    raw or as an escape (a ``\\u0022`` is a ``"``, a ``\\u00e9`` an ``é``). A text without a
    backslash has no string that needs escaping (``escapes``: whether it has one, for a value
    cut from it). A value the fast path cannot give (an integer past 64 bits, a lone
    surrogate) goes in as a term."""
    if escapes is None:
        escapes = "\\" in doc
    if set_input_fast(interp, value, escaped=escapes):
        return
    try:
        interp.set_input_term(json.dumps(value, ensure_ascii=False))
    except UnicodeEncodeError:
        interp.set_input_term(json.dumps(value))


def _run(out: _Captured, interp: Any, bundle: Any, value: Any, escapes: bool) -> tuple[bool, str]:
    """One built query on one document: (True, the engine's output text, or "undefined") or
    (False, why it failed)."""
    out.reset()
    set_input(interp, "", value, escapes)
    impl = c.rego_bundle_query(interp._impl, bundle._impl)
    try:
        ok = c.rego_output_ok(impl)
        text = _output_text(impl) if ok else ""
    finally:
        c.rego_free_output(impl)
    if not ok:
        return False, _engine_error(out, "query failed", interp)
    return True, text


_OUTPUT = ctypes.create_string_buffer(1 << 16)  # reused: a new buffer per query costs more


def _output_text(impl: Any) -> str:
    """The output's JSON text (``rego_output_string`` without a new buffer each time)."""
    size = c.rego.regoOutputJSONSize(impl)
    buf = _OUTPUT if size <= len(_OUTPUT) else ctypes.create_string_buffer(size)
    if c.rego.regoOutputJSON(impl, buf, size) != c.Code.OK:
        return c.rego_output_string(impl)  # says what went wrong
    return ctypes.string_at(buf, size).split(b"\0", 1)[0].decode("utf-8")


UNDEFINED = "validate is undefined for this input"
_CACHE_LIMIT = 50_000  # answers remembered per group; forgotten all at once past this
_LEARN = 200  # documents after which the groups most documents miss are merged
_PER_VM = 9  # a group missed by more than this many tenths of them is merged


class _Split:
    """The rule set evaluated as groups of files (``groups.py``), each group's answer
    remembered by the part of the document it reads: VMs that share a cluster, a host or a
    guest OS share those groups' answers. The answer per VM is the whole set's.

    Every query costs the engine a fixed setup, so once ``_LEARN`` documents have shown which
    groups read parts that differ for nearly every VM (its name, its disks), those groups are
    built into one and asked once per VM: any union of groups answers as its groups do."""

    def __init__(self, groups: list[Group], learn: int = _LEARN) -> None:
        self.learn = learn
        self.groups: list[Group] = []
        self.built: list[tuple[Any, Any]] = []
        # per group: the part's JSON -> (True, value) or (False, error) or (None, raw output)
        # (None: a group whose parts differ for nearly every document, not remembered)
        self.cache: list[dict[str, tuple[bool | None, Any]] | None] = []
        self.misses: list[int] = []
        self.seen = 0
        for g in groups:
            self._add(g)

    def _add(self, g: Group, at: int | None = None, remember: bool = True) -> None:
        interp = Interpreter()
        for name, source in g.modules:
            interp.add_module(name, source)
        bundle = interp.build(g.query)
        if not bundle.ok():
            raise ValueError(f"group of {g.modules[0][0]} does not build")
        at = len(self.groups) if at is None else at
        self.groups.insert(at, g)
        self.built.insert(at, (interp, bundle))
        self.cache.insert(at, {} if remember else None)
        self.misses.insert(at, 0)

    def _learn(self) -> None:
        """The groups missed by most documents so far, built into one (kept first when the
        ``validate`` group is among them)."""
        every = [n for n, m in enumerate(self.misses) if m * 10 > self.seen * _PER_VM]
        if len(every) < 2:
            return
        try:
            merged = merge([self.groups[n] for n in every])
            self._add(merged, 0, remember=False)
        except (RegoError, ValueError):
            return  # the groups as they are still give the set's answer
        for n in sorted(every, reverse=True):
            for table in (self.groups, self.built, self.cache, self.misses):
                del table[n + 1]
        if not merged.main:  # the validate group stays first
            at = next(n for n, g in enumerate(self.groups) if g.main)
            for table in (self.groups, self.built, self.cache, self.misses):
                table.insert(0, table.pop(at))

    def _answer(self, out: _Captured, n: int, value: Any, escapes: bool) -> tuple[bool | None, Any]:
        """Group ``n``'s answer for the document: (True, its concerns as canonical JSON texts;
        for the ``validate`` group also the rest of the object as JSON), (False, why it
        failed) or (None, an output the engine printed that is not JSON)."""
        g = self.groups[n]
        cache = self.cache[n]
        if cache is not None:
            key = repr(_shape(value, g.tree, g.keys))
            found = cache.get(key)
            if found is not None:
                return found
        self.misses[n] += 1
        part = project(value, g.tree, g.keys)
        interp, bundle = self.built[n]
        ok, text = _run(out, interp, bundle, part, escapes)
        if not ok:
            found = (False, text)
        elif text.strip() == "undefined":
            found = (False, UNDEFINED if g.main else "concerns is undefined for this input")
        else:
            try:
                parsed = json.loads(text)
                x = (parsed[0] if isinstance(parsed, list) else parsed)["bindings"]["x"]
                items = x["concerns"] if g.main else x
                canon = [json.dumps(c, sort_keys=True, ensure_ascii=False) for c in items]
                if g.main:
                    rest = json.dumps({k: v for k, v in x.items() if k != "concerns"})
                    found = (True, (rest, canon))
                else:
                    found = (True, canon)
            except (ValueError, LookupError, TypeError, AttributeError):
                found = (None, text)  # the parent says why it cannot be read
        if cache is not None:
            if len(cache) >= _CACHE_LIMIT:
                cache.clear()
            cache[key] = found
        return found

    def reply(self, out: _Captured, doc: str) -> str | dict[str, Any]:
        """The validate document of one input, as the whole set gives it."""
        self.seen += 1
        if self.seen == self.learn:
            self._learn()
        value = json.loads(doc)
        escapes = "\\" in doc  # without a backslash in the text no string needs escaping
        rest, concerns = "{}", []
        for n in range(len(self.groups)):
            ok, found = self._answer(out, n, value, escapes)
            if ok is None:
                return '{"ok": true, "output": ' + found + "}"
            if not ok:
                return {"ok": False, "error": found}
            if n == 0:
                rest, concerns = found[0], list(found[1])
            else:
                concerns += found
        items = ", ".join(dict.fromkeys(concerns))  # a set: one of each
        head = rest[:-1] + ", " if rest != "{}" else "{"
        return (
            '{"ok": true, "output": {"bindings": {"x": ' + head + '"concerns": [' + items + "]}}}}"
        )


_ABSENT = object()


def _shape(value: Any, tree: Tree | None, keys: frozenset[str] | None) -> Any:
    """What ``project(value, tree, keys)`` keeps, as a nest of tuples: equal shapes, equal
    projections (scalars are taken as they are, without building the projected objects)."""
    if tree is None or type(value) is not dict:
        return ("=", value)
    out: list[Any] = []
    for k, sub in tree.items():
        if k not in value:
            out.append(_ABSENT)
            continue
        x = value[k]
        if sub and type(x) is dict:
            out.append(_shape(x, sub, keys))
        elif keys is not None and type(x) in (list, dict):
            out.append(("=", cut_elements(x, keys)))
        else:
            out.append(("=", x))
    return tuple(out)


_FLUSH_EVERY = 0.005  # seconds a reply of a batch may wait in the buffer


class Worker:
    def __init__(self) -> None:
        self.out = _Captured()
        self.interp: Any = None
        self.bundle: Any = None
        self.split: _Split | None = None
        self._lock = threading.Lock()
        self._waiting = threading.Event()  # replies written and not yet flushed
        threading.Thread(target=self._flusher, daemon=True).start()

    def reply(self, msg: dict[str, Any] | str, flush: bool = True) -> None:
        data = msg if isinstance(msg, str) else json.dumps(msg)
        with self._lock:
            self.out.proto.write(data.encode() + b"\n")
            if flush:
                self._waiting.clear()
                self.out.proto.flush()
            else:
                self._waiting.set()

    def _flush(self) -> None:
        with self._lock:
            self._waiting.clear()
            self.out.proto.flush()

    def _flusher(self) -> None:
        """Replies of a batch are flushed every few milliseconds, not one by one (a write and a
        wake-up of the parent per VM cost more than its verdict once most verdicts come from
        the groups' memory). Regopy's calls release the GIL, so this runs while a rule loops:
        the replies before a VM that overruns its deadline still reach the parent, and the
        deadline falls on that VM."""
        while self._waiting.wait():  # idle: no wake-ups
            time.sleep(_FLUSH_EVERY)
            self._flush()

    def _interpreter(self, modules: list[list[str]]) -> Any:
        interp = Interpreter()
        for name, source in modules:
            interp.add_module(name, source)
        return interp

    def build(self, req: dict[str, Any]) -> None:
        self.out.reset()
        self.interp = self.bundle = self.split = None
        try:
            interp = self._interpreter(req["modules"])
            bundle = interp.build(req["query"])
            if not bundle.ok():
                self.reply({"ok": False, "error": _engine_error(self.out, "build failed")})
                return
            version = None
            if req.get("version_query"):
                interp.set_input_term("{}")
                out = interp.query(req["version_query"])
                if out.ok() and len(out):
                    version = json.loads(out.binding("x").json())
        except (RegoError, ValueError) as exc:
            self.reply({"ok": False, "error": _engine_error(self.out, str(exc))})
            return
        self.interp, self.bundle = interp, bundle
        self.split = self._split(req)
        self.reply({"ok": True, "rules_version": version, "split": self.split is not None})

    def _split(self, req: dict[str, Any]) -> _Split | None:
        """The set as groups when the parent allows it (a pure set) and the split is exact."""
        if not req.get("split"):
            return None
        groups = split([(n, s) for n, s in req["modules"]], req["query"])
        if not groups or len(groups) < 2:
            return None
        try:
            return _Split(groups, int(req.get("learn") or _LEARN))
        except (RegoError, ValueError):
            self.out.reset()
            return None

    def eval(self, req: dict[str, Any], stdin: BinaryIO) -> None:
        # regopy's Output parses the engine's JSON in Python and binding() prints it again; the
        # low-level calls hand the engine's own text straight through (the parent parses it once)

        # read the whole batch first: the parent writes it all before it reads a reply
        docs = [stdin.readline().decode() for _ in range(req["count"])]
        reply = functools.partial(self.reply, flush=False)
        for doc in docs:
            self.out.reset()
            if self.bundle is None:
                reply({"ok": False, "error": "no rule set built"})
                continue
            try:
                if self.split is not None:
                    reply(self.split.reply(self.out, doc))
                    continue
                ok, text = _run(self.out, self.interp, self.bundle, json.loads(doc), "\\" in doc)
                if not ok:
                    reply({"ok": False, "error": text})
                elif text.strip() == "undefined":
                    reply({"ok": False, "error": UNDEFINED})
                else:
                    reply('{"ok": true, "output": ' + text + "}")
            except Exception as exc:  # noqa: BLE001 - anything a rule does is a per-VM result
                reply({"ok": False, "error": _engine_error(self.out, repr(exc))})
        self._flush()  # the batch is done: its last replies go now

    def query(self, req: dict[str, Any]) -> None:
        self.out.reset()
        try:
            interp = self._interpreter(req["modules"])
            interp.set_input_term(req.get("input") or "{}")
            out = interp.query(req["query"])
            if not out.ok():
                self.reply({"ok": False, "error": _engine_error(self.out, "query failed", interp)})
                return
            result = json.loads(out.binding("x").json()) if len(out) else None
            self.reply({"ok": True, "result": result})
        except Exception as exc:  # noqa: BLE001 - reported to the caller, never raised
            self.reply({"ok": False, "error": _engine_error(self.out, repr(exc))})

    def serve(self, stdin: BinaryIO) -> None:
        while line := stdin.readline():
            req = json.loads(line)
            if req["op"] == "eval":
                self.eval(req, stdin)
            else:
                getattr(self, req["op"])(req)


def main() -> None:
    Worker().serve(sys.stdin.buffer)


if __name__ == "__main__":
    main()
