"""kmock's KubernetesEmulator (an in-memory API server) on 127.0.0.1, run in its own thread and
event loop so that the synchronous kubernetes client, and other processes, can talk to it."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import kmock
from kubernetes import client


class Emulator:
    """Start with :meth:`start`, end with :meth:`stop` (idempotent: a test may stop it early to
    play an API server that went away)."""

    def __init__(self) -> None:
        self.url = ""
        self.emulator: kmock.KubernetesEmulator | None = None
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._done: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="kmock", daemon=True)

    def start(self) -> Emulator:
        self._thread.start()
        if not self._ready.wait(30) or self._error is not None:
            raise RuntimeError(f"kmock did not start: {self._error!r}")
        return self

    def _run(self) -> None:
        try:
            self._loop.run_until_complete(self._serve())
        except BaseException as exc:  # noqa: BLE001 - reported to start()
            self._error = exc
            self._ready.set()
        finally:
            self._loop.close()

    async def _serve(self) -> None:
        self._done = asyncio.Event()
        async with kmock.KubernetesEmulator() as emu, kmock.Server(emu) as server:
            self.emulator, self.url = emu, str(server.url).rstrip("/")
            self._ready.set()
            await self._done.wait()

    def stop(self) -> None:
        if self._thread.is_alive() and self._done is not None:
            self._loop.call_soon_threadsafe(self._done.set)
            self._thread.join(30)

    def api_client(self) -> Any:
        cfg = client.Configuration()
        cfg.host = self.url
        cfg.api_key["BearerToken"] = "Bearer test-token"
        return client.ApiClient(cfg)

    def kubeconfig(self, path: Path) -> Path:
        """A kubeconfig file that points at the emulator, for a subprocess."""
        path.write_text(
            "apiVersion: v1\nkind: Config\n"
            f"clusters: [{{name: kmock, cluster: {{server: '{self.url}'}}}}]\n"
            "users: [{name: test, user: {token: test-token}}]\n"
            "contexts: [{name: kmock, context: {cluster: kmock, user: test}}]\n"
            "current-context: kmock\n"
        )
        return path
