"""The reconciler's side of the rule engine: a worker process with deadlines.

Everything that can go wrong inside a rule (a loop, a crash in native code, an error) comes back
as a value: a failed build, or a per-input error. The worker is killed and started again when it
overruns its deadline or dies, and the bundle is rebuilt, so the next input is served.
"""

from __future__ import annotations

import json
import os
import re
import selectors
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

Modules = Sequence[tuple[str, str]]


@dataclass(frozen=True)
class EvalResult:
    ok: bool
    result: Any = None
    error: str = ""


def _result(reply: dict[str, Any]) -> EvalResult:
    if not reply["ok"]:
        return EvalResult(False, error=reply.get("error", ""))
    out = reply["output"]
    out = out[0] if isinstance(out, list) and out else out
    try:
        return EvalResult(True, out["bindings"]["x"])
    except (KeyError, TypeError):
        return EvalResult(False, error=f"unexpected engine output: {str(out)[:200]}")


# built-ins whose answer is not a function of the input and the rules: a set that calls one is
# evaluated for every document, identical or not
_NOT_PURE = re.compile(
    r"\b(time\.now_ns|rand\.intn|uuid\.rfc4122|http\.send|opa\.runtime|net\.lookup_ip_addr|"
    r"crypto\.x509\.parse_and_verify_certificates|trace|print)\s*\("
)


def pure(modules: Iterable[Sequence[str]]) -> bool:
    """True when a rule set's verdict depends only on the input document (no clock, random,
    network or runtime built-in), so one evaluation of a document serves its copies."""
    return not any(_NOT_PURE.search(source) for _, source in modules)


def once_per_document(
    inputs: Sequence[str], evaluate: Callable[[Sequence[str]], Iterator[EvalResult]]
) -> Iterator[EvalResult]:
    """``evaluate(inputs)``, each distinct document evaluated once and its result given to its
    copies (VMs cloned from one template often have the same projected document). Results come
    in order and lazily, so a caller that stops early (too many deadlines) stops the work too."""
    first: dict[str, int] = {}
    for s in inputs:
        first.setdefault(s, len(first))
    if len(first) == len(inputs):
        yield from evaluate(inputs)
        return
    fresh = evaluate(list(first))
    done: list[EvalResult] = []
    try:
        for s in inputs:
            n = first[s]
            if n == len(done):
                done.append(next(fresh))
            yield done[n]
    finally:
        fresh.close()


class EngineDied(Exception):
    """The worker overran its deadline or exited; it has been stopped."""


class RegoEngine:
    """One worker process holding one compiled rule set."""

    def __init__(self, eval_timeout: float = 5.0, build_timeout: float = 60.0) -> None:
        self.eval_timeout = eval_timeout
        self.build_timeout = build_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._sel: selectors.BaseSelector | None = None
        self._buf = b""  # the start of a reply line not yet complete
        self._lines: deque[bytes] = deque()  # complete reply lines not yet read
        self._built: tuple[list[list[str]], str, str] | None = None
        self.pure = False  # the built set's verdicts depend on the input alone
        self.split = True  # a pure set may be evaluated in groups (groups.py), when exact
        self.grouped = False  # the built set is evaluated in groups
        self.learn = 200  # inputs after which the groups most inputs miss are merged

    # -- process --------------------------------------------------------------------------

    def _start(self) -> subprocess.Popen[bytes]:
        if self._proc is None or self._proc.poll() is not None:
            env = dict(os.environ, PYTHONUNBUFFERED="1")
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "reconciler.validation.worker"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env=env,
            )
            self._sel = selectors.DefaultSelector()
            assert self._proc.stdout is not None
            os.set_blocking(self._proc.stdout.fileno(), False)
            self._sel.register(self._proc.stdout, selectors.EVENT_READ)
            self._buf = b""
            self._lines.clear()
        return self._proc

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.kill()
            proc.wait()
            for f in (proc.stdin, proc.stdout):
                if f is not None:
                    f.close()
        if self._sel is not None:
            self._sel.close()
            self._sel = None

    def __enter__(self) -> RegoEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, req: dict[str, Any], lines: Sequence[str] = ()) -> None:
        proc = self._start()
        assert proc.stdin is not None
        try:
            proc.stdin.write(json.dumps(req).encode() + b"\n")
            if lines:
                proc.stdin.write("\n".join(lines).encode() + b"\n")
            proc.stdin.flush()
        except BrokenPipeError as exc:
            self.close()
            raise EngineDied("the rule engine process exited") from exc

    def _read(self, timeout: float) -> dict[str, Any]:
        assert self._proc is not None and self._proc.stdout is not None and self._sel
        deadline = time.monotonic() + timeout
        while not self._lines:
            left = deadline - time.monotonic()
            if left <= 0:
                self.close()
                raise EngineDied(
                    f"did not finish within {timeout:g} s (a rule loops or is too slow)"
                )
            if not self._sel.select(left):
                continue
            try:  # 64 KiB at most: a read of 1 MiB costs a fresh mapping of 1 MiB each time
                chunk: bytes | None = os.read(self._proc.stdout.fileno(), 1 << 16)
            except BlockingIOError:
                chunk = None
            if chunk == b"" or (chunk is None and self._proc.poll() is not None):
                code = self._proc.wait()
                self.close()
                raise EngineDied(f"the rule engine process exited (code {code})")
            if chunk and b"\n" in chunk:
                # split once per read: taking one line at a time off a long buffer copies
                # the rest of it for every line
                *lines, rest = (self._buf + chunk).split(b"\n")
                self._lines.extend(lines)
                self._buf = rest
            else:
                self._buf += chunk or b""
        line = self._lines.popleft()
        try:
            return json.loads(line)
        except ValueError as exc:
            return {
                "ok": False,
                "error": f"the engine printed a result that is not JSON ({exc}); "
                "regopy 1.5.2 does this when sprintf formats a string made by another "
                "built-in: build the text with concat",
            }

    # -- operations -------------------------------------------------------------------------

    def build(self, modules: Modules, query: str, version_query: str = "") -> EvalResult:
        """Compile ``modules`` for ``query`` (``x = ...``); the result holds the rules version."""
        mods = [[n, s] for n, s in modules]
        try:
            self._send(
                {
                    "op": "build",
                    "modules": mods,
                    "query": query,
                    "version_query": version_query,
                    "split": self.split and pure(mods),
                    "learn": self.learn,
                }
            )
            reply = self._read(self.build_timeout)
        except EngineDied as exc:
            self._built, self.pure, self.grouped = None, False, False
            return EvalResult(False, error=f"compiling the rules: {exc}")
        self._built = (mods, query, version_query) if reply["ok"] else None
        self.pure = bool(reply["ok"]) and pure(mods)
        self.grouped = bool(reply.get("split"))
        return EvalResult(reply["ok"], reply.get("rules_version"), reply.get("error", ""))

    def evaluate(self, inputs: Sequence[str], batch: int = 256) -> Iterator[EvalResult]:
        """The built query for each JSON input (one line, as ``json.dumps`` writes it), in order;
        one bad input costs only itself; identical inputs are evaluated once (pure sets)."""
        if self.pure:
            return once_per_document(inputs, lambda xs: self._evaluate(xs, batch))
        return self._evaluate(inputs, batch)

    def _evaluate(self, inputs: Sequence[str], batch: int) -> Iterator[EvalResult]:
        i = 0
        while i < len(inputs):
            chunk = [s.replace("\n", " ") for s in inputs[i : i + batch]]
            try:
                self._send({"op": "eval", "count": len(chunk)}, chunk)
            except EngineDied as exc:
                yield EvalResult(False, error=str(exc))
                i += 1
                self._rebuild()
                continue
            for _ in chunk:
                try:
                    reply = self._read(self.eval_timeout)
                except EngineDied as exc:
                    yield EvalResult(False, error=f"evaluation {exc}")
                    i += 1
                    self._rebuild()
                    break
                yield _result(reply)
                i += 1

    def _rebuild(self) -> None:
        if self._built is not None:
            mods, query, version_query = self._built
            self.build([(n, s) for n, s in mods], query, version_query)

    def query(self, modules: Modules, query: str, input_json: str | None = None) -> EvalResult:
        """One query on a fresh interpreter (rule tests); ``result`` None means undefined."""
        try:
            self._send(
                {
                    "op": "query",
                    "modules": [list(m) for m in modules],
                    "query": query,
                    "input": input_json,
                }
            )
            reply = self._read(self.build_timeout)
        except EngineDied as exc:
            self._rebuild()
            return EvalResult(False, error=str(exc))
        return EvalResult(reply["ok"], reply.get("result"), reply.get("error", ""))


class RegoPool:
    """Several engines holding the same rule set, one per core, sharing the inputs."""

    def __init__(
        self, size: int | None = None, eval_timeout: float = 5.0, build_timeout: float = 60.0
    ) -> None:
        self.size = max(1, size or min(2, os.cpu_count() or 1))
        self.engines = [RegoEngine(eval_timeout, build_timeout) for _ in range(self.size)]
        self._threads = ThreadPoolExecutor(self.size, thread_name_prefix="rego")

    @property
    def eval_timeout(self) -> float:
        return self.engines[0].eval_timeout

    @eval_timeout.setter
    def eval_timeout(self, value: float) -> None:
        for e in self.engines:
            e.eval_timeout = value

    def close(self) -> None:
        for e in self.engines:
            e.close()
        self._threads.shutdown(wait=True)

    def __enter__(self) -> RegoPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def split(self) -> bool:
        return self.engines[0].split

    @split.setter
    def split(self, value: bool) -> None:
        for e in self.engines:
            e.split = value

    @property
    def grouped(self) -> bool:
        return all(e.grouped for e in self.engines)

    def build(self, modules: Modules, query: str, version_query: str = "") -> EvalResult:
        """Build in the first engine; the others follow only when it succeeded."""
        first = self.engines[0].build(modules, query, version_query)
        if first.ok:
            for e in self._threads.map(
                lambda e: e.build(modules, query, version_query), self.engines[1:]
            ):
                if not e.ok:
                    return e
        return first

    def query(self, modules: Modules, query: str, input_json: str | None = None) -> EvalResult:
        return self.engines[0].query(modules, query, input_json)

    def evaluate(self, inputs: Sequence[str], batch: int = 256) -> Iterator[EvalResult]:
        """As ``RegoEngine.evaluate``, the inputs split between the engines in rounds."""
        if all(e.pure for e in self.engines):
            return once_per_document(inputs, lambda xs: self._evaluate(xs, batch))
        return self._evaluate(inputs, batch)

    def _evaluate(self, inputs: Sequence[str], batch: int) -> Iterator[EvalResult]:
        if self.size == 1:
            yield from self.engines[0]._evaluate(inputs, batch)
            return
        step = batch * self.size * 4
        for start in range(0, len(inputs), step):
            part = inputs[start : start + step]
            share = -(-len(part) // self.size)
            slices = [part[i * share : (i + 1) * share] for i in range(self.size)]
            done = self._threads.map(
                lambda pair: list(pair[0]._evaluate(pair[1], batch)),
                [(e, s) for e, s in zip(self.engines, slices, strict=True) if s],
            )
            for results in list(done):
                yield from results


Engine = RegoEngine | RegoPool  # what building and evaluating needs; either will do
