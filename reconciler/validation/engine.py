"""The reconciler's side of the rule engine: a worker process with deadlines.

Everything that can go wrong inside a rule (a loop, a crash in native code, an error) comes back
as a value: a failed build, or a per-input error. The worker is killed and started again when it
overruns its deadline or dies, and the bundle is rebuilt, so the next input is served.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

Modules = Sequence[tuple[str, str]]


@dataclass(frozen=True)
class EvalResult:
    ok: bool
    result: Any = None
    error: str = ""


class EngineDied(Exception):
    """The worker overran its deadline or exited; it has been stopped."""


class RegoEngine:
    """One worker process holding one compiled rule set."""

    def __init__(self, eval_timeout: float = 5.0, build_timeout: float = 60.0) -> None:
        self.eval_timeout = eval_timeout
        self.build_timeout = build_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._sel: selectors.BaseSelector | None = None
        self._buf = b""
        self._built: tuple[list[list[str]], str, str] | None = None

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

    def _send(self, req: dict[str, Any]) -> None:
        proc = self._start()
        assert proc.stdin is not None
        try:
            proc.stdin.write(json.dumps(req).encode() + b"\n")
            proc.stdin.flush()
        except BrokenPipeError as exc:
            self.close()
            raise EngineDied("the rule engine process exited") from exc

    def _read(self, timeout: float) -> dict[str, Any]:
        assert self._proc is not None and self._proc.stdout is not None and self._sel
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                self.close()
                raise EngineDied(
                    f"did not finish within {timeout:g} s (a rule loops or is too slow)"
                )
            if not self._sel.select(left):
                continue
            chunk = self._proc.stdout.read(1 << 20)
            if chunk == b"" or (chunk is None and self._proc.poll() is not None):
                code = self._proc.wait()
                self.close()
                raise EngineDied(f"the rule engine process exited (code {code})")
            self._buf += chunk or b""
        line, _, self._buf = self._buf.partition(b"\n")
        return json.loads(line)

    # -- operations -------------------------------------------------------------------------

    def build(self, modules: Modules, query: str, version_query: str = "") -> EvalResult:
        """Compile ``modules`` for ``query`` (``x = ...``); the result holds the rules version."""
        mods = [[n, s] for n, s in modules]
        try:
            self._send(
                {"op": "build", "modules": mods, "query": query, "version_query": version_query}
            )
            reply = self._read(self.build_timeout)
        except EngineDied as exc:
            self._built = None
            return EvalResult(False, error=f"compiling the rules: {exc}")
        self._built = (mods, query, version_query) if reply["ok"] else None
        return EvalResult(reply["ok"], reply.get("rules_version"), reply.get("error", ""))

    def evaluate(self, inputs: Sequence[str], batch: int = 256) -> Iterator[EvalResult]:
        """The built query for each JSON input, in order; one bad input costs only itself."""
        i = 0
        while i < len(inputs):
            chunk = inputs[i : i + batch]
            try:
                self._send({"op": "eval", "inputs": list(chunk)})
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
                yield EvalResult(reply["ok"], reply.get("result"), reply.get("error", ""))
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
