"""One transfer request, one list of parameters: a request becomes a Job's arguments and the
``transfer`` command's parser makes the same request of them, for every field."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click
import pytest

from reconciler.cli.transfer_cmd import transfer
from reconciler.transfer.request import OPTIONS, DiskCopy, TransferRequest

COLD = TransferRequest(
    provider="openshift-mtv/ova", copy=DiskCopy("vm-1", "disk-0"), output=Path("/data/disk.img")
)

WARM = TransferRequest(
    provider="openshift-mtv/vcenter",
    provider_file=Path("/etc/provider.yaml"),
    type="vsphere",
    url="https://vc.example/sdk",
    settings={"vddkInitImage": "quay.io/x:1", "sdkEndpoint": "vcenter", "empty": ""},
    secret="openshift-mtv/vc-creds",
    hosts={"host-21": "10.10.0.21", "host-22": "10.10.0.22"},
    host_secrets={"host-21": "openshift-mtv/esx-21"},
    copy=DiskCopy(
        vm_id="vm-42",
        disk_key="2001",
        snapshot_id="snapshot-9",
        round=3,
        since="52 1/8",
        change_id="52 1/9",
        streams=7,
        chunk_mib=2,
        verify=False,
        max_mibps=12.345678901234567,
    ),
    output=Path("/dev/disk0"),
    checkpoints=Path("/checkpoints/transfer.db"),
    progress_seconds=0.25,
    termination_log=Path("/dev/termination-log"),
)


def _fields(obj: object) -> set[str]:
    return {f.name for f in dataclasses.fields(obj)}  # type: ignore[arg-type]


@pytest.mark.parametrize("request_", [COLD, WARM], ids=["cold", "warm"])
def test_a_request_survives_its_arguments(request_: TransferRequest) -> None:
    assert TransferRequest.from_argv(request_.to_argv()) == request_


def test_every_field_differs_from_its_default_in_the_warm_example() -> None:
    """So the round trip above proves each field is written and read back."""
    for name in _fields(WARM) - {"copy"}:
        assert getattr(WARM, name) != getattr(COLD, name), name
    for name in _fields(WARM.copy) - {"vm_id", "disk_key"}:
        assert getattr(WARM.copy, name) != getattr(COLD.copy, name), name


def test_each_field_has_one_option_and_the_command_has_exactly_those() -> None:
    attrs = {o.attr for o in OPTIONS}
    top = _fields(WARM) - {"copy"}
    assert attrs == top | {f"copy.{n}" for n in _fields(WARM.copy)}
    flags = {f for p in transfer.params for f in p.opts + p.secondary_opts}
    declared = {f for o in OPTIONS for f in o.flag.split("/")}
    assert flags == declared


def test_the_warm_example_reads_as_a_job_would_be_told() -> None:
    argv = WARM.to_argv()
    assert argv[argv.index("--round") + 1] == "3"
    assert argv[argv.index("--since") + 1] == "52 1/8"
    assert "--no-verify" in argv and "--verify" not in argv
    assert argv.count("--host") == 2 and argv.count("--host-secret") == 1
    # copy parameters the image must not default on its own are always written
    assert "--streams" in COLD.to_argv() and "--chunk-mib" in COLD.to_argv()
    assert "--round" not in COLD.to_argv() and "--snapshot" not in COLD.to_argv()


def test_bad_arguments_are_usage_errors() -> None:
    argv = COLD.to_argv()
    with pytest.raises(click.BadParameter, match="NAMESPACE/NAME"):
        TransferRequest.from_argv(["--provider", "nons", *argv[2:]])
    with pytest.raises(click.BadParameter, match="ID=ADDRESS"):
        TransferRequest.from_argv([*argv, "--host", "host-1"])


def test_warm_fields_are_checked_together() -> None:
    assert WARM.problem() == ""
    assert "give the Provider's --type" in COLD.problem()
    typed = dataclasses.replace(COLD, type="ova")
    assert typed.problem() == ""
    no_since = dataclasses.replace(typed, copy=dataclasses.replace(WARM.copy, since=""))
    assert no_since.problem() == "round 3 needs --snapshot and --since"
    stray = dataclasses.replace(typed, copy=DiskCopy("v", "d", since="52 1/8"))
    assert "--since is for a precopy round" in stray.problem()
