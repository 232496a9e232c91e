"""The "Warm migration" table of ``mtv-gitops status`` and the warm status in ``--json``."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from rich.console import Console

from reconciler.cli import render
from reconciler.cli.main import cli
from reconciler.cli.render import human_bytes, status_tables
from reconciler.status.projection import dump, status_path, warm_status
from tests.support.warm_status import (
    BRANCH,
    after_a_failure,
    completed,
    paused_after_round_0,
    round_in_flight,
)


def _vm(name: str, phase: str, warm: dict[str, Any] | None, result: str = "") -> dict[str, Any]:
    vm: dict[str, Any] = {"id": f"vm-{name}", "name": name, "phase": phase, "pipeline": []}
    if warm is not None:
        vm["warm"] = warm_status(warm, finished=bool(result))
    if result:
        vm["conditions"] = [
            {"type": result, "status": "True", "category": "Advisory", "message": "."}
        ]
    return vm


def _plan(name: str, *vms: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "forklift.konveyor.io/v1beta1",
        "kind": "Plan",
        "metadata": {"name": name, "namespace": "vs-vms"},
        "status": {
            "conditions": [
                {"type": "Ready", "status": "True", "category": "Required", "message": "ok"}
            ],
            "migration": {"vms": list(vms)},
        },
    }


def _text(tables: list) -> str:
    con = Console(file=io.StringIO(), width=250, record=True, highlight=False)
    for t in tables:
        con.print(t)
    return con.export_text()


def _warm_rows(text: str) -> list[str]:
    """The table's body lines, one per VM (cells fit a line at this width)."""
    head = text.index("Warm migration")
    return [line for line in text[head:].splitlines() if "vs-vms/" in line]


def test_no_warm_table_for_cold_vms() -> None:
    tables = status_tables([_plan("cold", _vm("db", "Completed", None, "Succeeded"))])
    assert [t.title for t in tables] == ["Plans", "VMs"]


def test_each_stage_of_a_warm_vm_in_the_table() -> None:
    docs = [
        _plan(
            "warm",
            _vm("paused", "CopyingPaused", paused_after_round_0()),
            _vm("copying", "Precopy", round_in_flight()),
            _vm("failing", "CopyingPaused", after_a_failure()),
            _vm("done", "Completed", completed(), "Succeeded"),
        )
    ]
    tables = status_tables(docs)
    assert [t.title for t in tables] == ["Plans", "VMs", "Warm migration"]
    paused, copying, failing, done = _warm_rows(_text(tables))

    assert "0 done" in paused and "2025-03-01T11:00:05Z" in paused
    assert f"merge branch {BRANCH}" in paused

    assert "1 done" in copying
    assert "#1 ended 2025-03-01T11:00:09Z: 2 extent(s), 68 KiB" in copying
    assert "round 2 copying since 2025-03-01T12:00:06Z" in _text(tables)
    assert "2025-03-01T12:00:09Z" in copying  # the next precopy

    assert "1 done, 1 failed (1 in a row)" in failing
    assert "snapshot [busy] on host" in _text(tables)  # brackets shown, not read as markup

    assert "3 done, 1 failed" in done and "in a row" not in done
    assert "final ended 2025-03-01T13:10:03Z: 3 extent(s), 192 KiB" in done
    assert "done: downtime 1.2 s, 192 KiB copied" in done
    assert "2025-03-01T13:00:07Z" not in done  # no next precopy after cutover


def test_cutover_scheduled_under_way_and_stopped() -> None:
    scheduled = after_a_failure()
    scheduled["cutoverAt"] = "2025-03-01T13:10:00Z"
    running = completed()
    for key in ("downtimeSeconds", "cutoverBytes"):
        del running[key]
    running["precopies"].pop()
    running["current"] = {
        "round": 3,
        "snapshot": "snapshot-3",
        "start": "2025-03-01T13:10:02Z",
        "final": True,
    }
    docs = [
        _plan(
            "warm",
            _vm("scheduled", "CopyingPaused", scheduled),
            _vm("running", "CopyFinalDelta", running),
            _vm("stopped", "CopyFinalDelta", running, "Failed"),
        )
    ]
    text = _text(status_tables(docs))
    s, r, f = _warm_rows(text)
    assert "scheduled at 2025-03-01T13:10:00Z" in s
    assert "in progress: source off since 2025-03-01T13:10:01Z" in r
    assert "final round copying since 2025-03-01T13:10:02Z" in text
    assert "stopped (failed): source off since 2025-03-01T13:10:01Z" in f


def test_user_text_is_never_read_as_markup() -> None:
    w = paused_after_round_0()
    del w["cutoverBranch"]
    w["cutoverInstruction"] = "cutover proposal not pushed yet: [bold]denied[/bold]"
    text = _text(status_tables([_plan("warm", _vm("[red]x[/red]", "CopyingPaused", w))]))
    assert "[red]x[/red]" in text
    assert "cutover proposal not pushed yet: [bold]denied[/bold]" in text


def test_human_bytes() -> None:
    assert human_bytes(0) == "0 B"
    assert human_bytes(1023) == "1023 B"
    assert human_bytes(196608) == "192 KiB"
    assert human_bytes(1536 * 1024) == "1.5 MiB"
    assert human_bytes(3 * 1024**4) == "3 TiB"


def test_the_status_command_shows_the_table_and_json_holds_the_warm_status(
    tmp_path: Path, monkeypatch
) -> None:
    doc = _plan("warm", _vm("done", "Completed", completed(), "Succeeded"))
    path = tmp_path / status_path("Plan", "vs-vms", "warm")
    path.parent.mkdir(parents=True)
    path.write_text(dump(doc))
    monkeypatch.setattr(render.console, "_width", 250)
    args = [str(tmp_path), "--state-dir", str(tmp_path / "state")]

    out = CliRunner().invoke(cli, ["status", *args])
    assert out.exit_code == 0, out.output
    assert "Warm migration" in out.output
    assert "done: downtime 1.2 s, 192 KiB copied" in out.output

    out = CliRunner().invoke(cli, ["status", "--json", *args])
    assert out.exit_code == 0, out.output
    [plan] = json.loads(out.output)
    [vm] = plan["status"]["migration"]["vms"]
    assert vm["warm"] == warm_status(completed(), finished=True)
    assert vm["warm"]["cutover"]["downtimeSeconds"] == 1.2
