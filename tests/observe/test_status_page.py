"""The daemon's read-only status page, in a real browser: headless Chromium (Debian's, driven
by chromedriver over the W3C WebDriver protocol) loads ``/`` while a migration runs; the test
reads the DOM (phases, progress bars, rate), checks that user strings are escaped and a secret
value never shown, and saves a screenshot as a test artifact."""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.daemon import DaemonOutput
from tests.support.workspace import CLI, plan_yaml, small_vm, throttle, wait_until

pytestmark = pytest.mark.integration
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))
PASSWORD = "Pa55-w0rd-never-shown"
INJECTION = "<script>document.title='pwned'</script>"
ARTIFACTS = Path(os.environ.get("MTV_GITOPS_TEST_ARTIFACTS", "/tmp/mtv-gitops-test-artifacts"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Browser:
    """chromedriver and one headless Chromium session, spoken to in plain WebDriver JSON."""

    def __init__(self) -> None:
        driver, chromium = shutil.which("chromedriver"), shutil.which("chromium")
        if driver is None or chromium is None:
            pytest.fail("chromium/chromedriver missing: `make install` installs them")
        self.url = f"http://127.0.0.1:{_free_port()}"
        self.proc = subprocess.Popen(
            [driver, f"--port={self.url.rsplit(':', 1)[1]}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(lambda: self._ready(), timeout=60)
        args = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
        caps = {"browserName": "chrome", "goog:chromeOptions": {"binary": chromium, "args": args}}
        session = self._call("POST", "/session", {"capabilities": {"alwaysMatch": caps}})
        self.session = f"/session/{session['sessionId']}"
        self._call("POST", f"{self.session}/window/rect", {"width": 1280, "height": 900})

    def _ready(self) -> bool:
        try:
            return bool(self._call("GET", "/status").get("ready"))
        except OSError:
            return False

    def _call(self, method: str, path: str, body: dict | None = None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        with _DIRECT.open(req, timeout=120) as resp:
            return json.loads(resp.read())["value"]

    def open(self, url: str) -> None:
        self._call("POST", f"{self.session}/url", {"url": url})

    def run(self, script: str):
        return self._call("POST", f"{self.session}/execute/sync", {"script": script, "args": []})

    def screenshot(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(self._call("GET", f"{self.session}/screenshot")))

    def close(self) -> None:
        try:
            self._call("DELETE", self.session)
        finally:
            self.proc.terminate()
            self.proc.wait(timeout=60)


READ_DOM = """
return {
  title: document.title,
  scripts: document.scripts.length,
  refresh: (document.querySelector("meta[http-equiv=refresh]") || {}).content || "",
  buttons: document.querySelectorAll("button, form, input").length,
  text: document.body.innerText,
  plans: [...document.querySelectorAll("section.plan")].map(s => ({
    plan: s.dataset.plan,
    conditions: [...s.querySelectorAll("li.condition")].map(li => li.innerText),
    vms: [...s.querySelectorAll("tr.vm")].map(tr => ({
      id: tr.dataset.vmId, phase: tr.dataset.phase,
      name: tr.querySelector(".name").innerText,
      bars: [...tr.querySelectorAll("progress")].map(p => [p.value, p.max]),
      rates: [...tr.querySelectorAll(".rate")].map(r => r.innerText),
      etas: [...tr.querySelectorAll(".eta")].map(r => r.innerText),
    })),
  })),
};
"""


@pytest.fixture
def browser() -> Iterator[Browser]:
    b = Browser()
    yield b
    b.close()


def test_the_status_page_in_a_browser_while_a_migration_runs(workspace_factory, browser) -> None:
    ws = workspace_factory(
        [small_vm("web-1", 1, data_mib=24, capacity_mib=128), small_vm("db-2", 2, data_mib=24)]
    )
    throttle(ws, 2)  # the copy lasts while the browser looks at it
    # a second plan naming a VM that does not exist: its condition quotes the user's strings
    bad = plan_yaml("bad-plan", [INJECTION, PASSWORD], target_ns="bad-vms")
    ws.user_commit({"plans/bad-plan.yaml": bad}, "a plan with odd VM names")
    secrets = ws.root / "secrets.yaml"
    secrets.write_text(f"openshift-mtv/extra:\n  password: {PASSWORD}\n")
    proc = subprocess.Popen(
        [*CLI, "daemon", str(ws.clone), "--interval", "1", "--state-dir", str(ws.state)]
        + ["--cluster", str(ws.cluster), "--health-port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "200", "MTV_GITOPS_SECRETS": str(secrets)},
    )
    out = DaemonOutput(proc)
    try:
        out.wait_for(lambda lines: any("health and metrics on" in x for x in lines), "serving")
        url = next(x for x in out.lines if "health and metrics on" in x).split()[-1] + "/"
        seen: dict = {}

        def copying() -> bool:
            browser.open(url)
            seen.update(browser.run(READ_DOM))
            demo = [p for p in seen["plans"] if p["plan"] == "openshift-mtv/demo-plan"]
            vms = demo[0]["vms"] if demo else []
            return any(v["phase"] == "CopyDisks" and v["rates"] and v["bars"] for v in vms)

        wait_until(copying, timeout=240, why=lambda: json.dumps(seen, indent=1))
        browser.screenshot(ARTIFACTS / "status-page.png")

        plans = {p["plan"]: p for p in seen["plans"]}
        demo = plans["openshift-mtv/demo-plan"]
        assert {v["name"] for v in demo["vms"]} == {"web-1", "db-2"}
        # the VM copying() saw (with two copying, the other may not have its first bar yet)
        running = next(v for v in demo["vms"] if v["phase"] == "CopyDisks" and v["bars"])
        value, maximum = running["bars"][0]
        assert 0 <= value <= maximum and maximum > 0
        assert running["rates"][0].endswith("/s") and running["etas"][0].endswith("left")
        assert any("Executing" in c for c in demo["conditions"])
        # user strings are text, never markup; the secret value is never shown
        bad = plans["openshift-mtv/bad-plan"]
        assert any(INJECTION in c for c in bad["conditions"])
        assert seen["title"] == "mtv-gitops status" and seen["scripts"] == 0
        assert PASSWORD not in seen["text"] and "<redacted>" in seen["text"]
        # read-only and self-refreshing
        assert seen["buttons"] == 0 and seen["refresh"] == "5"
        with _DIRECT.open(url, timeout=30) as resp:
            raw = resp.read().decode()
        assert PASSWORD not in raw and INJECTION not in raw
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    assert (ARTIFACTS / "status-page.png").stat().st_size > 1000
