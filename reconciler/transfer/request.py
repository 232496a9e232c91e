"""One disk's transfer, written once: what both targets copy, and the arguments of the
``mtv-gitops transfer`` process a kubevirt transfer Job runs.

``DiskCopy`` is what to copy and how (the VM's disk, a warm migration's snapshot and round,
streams, chunk size, verification, a bandwidth cap): the local target reads it in process, the
kubevirt target hands it to a Job. ``TransferRequest`` adds what a process of its own needs to
reach the source (the Provider, its credentials by reference, its hosts) and where to write.

Every parameter is declared once, in ``OPTIONS``: the ``transfer`` command's click options are
made from it (``options``), a request becomes a Job's arguments through it (``to_argv``) and
those arguments become the same request again through it (``from_argv``, the command's own
parser). A parameter added there reaches the command, the Job and the round-trip test at once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

MIB = 1024 * 1024


class RequestError(ValueError):
    """A request that cannot be made (a bad value, an unreadable Provider manifest); ``hint``
    names the option to fix."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


@dataclass(frozen=True)
class DiskCopy:
    """What to copy of one source disk and how; the part of a transfer both targets read."""

    vm_id: str
    disk_key: str
    # warm migration: the snapshot the disk is read at (round 0 too), the round (0: the whole
    # disk; N: only what changed since the change id ``since``), and the snapshot's change id
    # recorded with the copy for the next round to start from
    snapshot_id: str = ""
    round: int = 0
    since: str = ""
    change_id: str = ""
    streams: int = 4
    chunk_mib: int = 4
    verify: bool = True
    max_mibps: float | None = None

    @property
    def chunk_size(self) -> int:
        return self.chunk_mib * MIB

    @property
    def max_bytes_per_second(self) -> float | None:
        return self.max_mibps * MIB if self.max_mibps else None

    @property
    def warm(self) -> bool:
        """Whether the copy is part of a warm migration (more rounds may follow)."""
        return bool(self.round or self.change_id or self.snapshot_id)

    def problem(self) -> str:
        """Why the warm fields do not fit together, in the command's words; "" when they do."""
        if self.round and not (self.snapshot_id and self.since):
            return f"round {self.round} needs --snapshot and --since"
        if self.since and not self.round:
            return "--since is for a precopy round (--round 1, 2, ...)"
        return ""


@dataclass(frozen=True)
class TransferRequest:
    """One disk's copy by a process of its own (``mtv-gitops transfer``, a transfer Job): the
    source Provider as that process reaches it, the copy, and where it writes."""

    provider: str  # NS/NAME of the source Provider
    copy: DiskCopy
    output: Path  # a raw image (created sparse) or a block device
    provider_file: Path | None = None  # the Provider manifest; type, url... come from it
    type: str = ""
    url: str = ""
    settings: Mapping[str, str] = field(default_factory=dict)
    secret: str = ""  # NS/NAME of the Provider's spec.secret; its values come from the env
    hosts: Mapping[str, str] = field(default_factory=dict)  # host id: migration-network address
    host_secrets: Mapping[str, str] = field(default_factory=dict)  # host id: NS/NAME
    checkpoints: Path | None = None
    progress_seconds: float = 2.0
    termination_log: Path | None = None

    def to_argv(self) -> list[str]:
        """The ``transfer`` command's arguments that make this request again."""
        argv: list[str] = []
        for opt in OPTIONS:
            argv += opt.to_argv(opt.get(self))
        return argv

    @classmethod
    def from_argv(cls, argv: Sequence[str]) -> TransferRequest:
        """The request the ``transfer`` command makes of ``argv`` (click errors on bad usage)."""
        command = click.Command("transfer", params=options())
        with command.make_context("transfer", list(argv)) as ctx:
            return cls.from_params(ctx.params)

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> TransferRequest:
        """The request of the ``transfer`` command's parsed options (named as in ``OPTIONS``)."""
        top: dict[str, Any] = {}
        copy: dict[str, Any] = {}
        for opt in OPTIONS:
            where, _, name = opt.attr.rpartition(".")
            (copy if where else top)[name] = opt.from_click(params[name])
        return cls(copy=DiskCopy(**copy), **top)

    def with_provider_file(self) -> TransferRequest:
        """Type, url, secret and settings filled from ``provider_file`` (what the options
        give wins; settings are merged, the options' over the manifest's)."""
        if self.provider_file is None:
            return self
        found = _provider_from_file(self.provider_file)
        return dataclasses.replace(
            self,
            type=self.type or found["type"],
            url=self.url or found["url"],
            secret=self.secret or found["secret"],
            settings={**found["settings"], **self.settings},
        )

    def problem(self) -> str:
        """Why the request cannot run, in the command's words; "" when it can."""
        if not self.type:
            return "give the Provider's --type or --provider-file"
        return self.copy.problem()


def split_ref(value: str, hint: str) -> tuple[str, str]:
    """``NS/NAME`` as (namespace, name)."""
    ns, _, name = value.partition("/")
    if not ns or not name:
        raise RequestError(f"{value!r}: give NAMESPACE/NAME", hint)
    return ns, name


@dataclass(frozen=True)
class Option:
    """One parameter: the request attribute it fills (``copy.x`` for a DiskCopy field), its
    command-line declaration and how its value is written as arguments."""

    attr: str
    flag: str  # "--name", or "--name/--no-name" for a switch
    help: str = ""
    metavar: str | None = None
    type: Any = None
    pairs: str = ""  # repeatable KEY=VALUE, its metavar; the request holds a mapping
    empty_ok: bool = False  # a pair's value may be empty
    always: bool = False  # written even at its default (a Job's image may default otherwise)
    check: Callable[[str, str], Any] | None = None  # validates a value; raises RequestError

    @property
    def name(self) -> str:
        return self.attr.rpartition(".")[2]

    @property
    def default(self) -> Any:
        where, _, name = self.attr.rpartition(".")
        (f,) = [
            f for f in dataclasses.fields(DiskCopy if where else TransferRequest) if f.name == name
        ]
        if f.default is not dataclasses.MISSING:
            return f.default
        if f.default_factory is not dataclasses.MISSING:
            return f.default_factory()
        return dataclasses.MISSING

    def get(self, request: TransferRequest) -> Any:
        where, _, name = self.attr.rpartition(".")
        return getattr(request.copy if where else request, name)

    def click_option(self) -> click.Option:
        default = self.default
        kwargs: dict[str, Any] = {"help": self.help}
        if default is dataclasses.MISSING:
            kwargs["required"] = True
        elif self.pairs:
            kwargs["multiple"] = True
        else:
            kwargs["default"] = default
            kwargs["show_default"] = default not in (None, "")
        if self.type is not None:
            kwargs["type"] = self.type
        if self.metavar or self.pairs:
            kwargs["metavar"] = self.metavar or self.pairs
        if self.check is not None or self.pairs:
            kwargs["callback"] = self._callback
        return click.Option([self.flag, self.name], **kwargs)

    def _callback(self, ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        """Bad values are usage errors naming the option, as click's own are."""
        try:
            if self.pairs:
                return self._pairs(value)
            if self.check is not None and value:
                self.check(value, self.flag)
        except RequestError as exc:
            raise click.BadParameter(str(exc), ctx, param) from None
        return value

    def _pairs(self, items: Sequence[str]) -> dict[str, str]:
        out = {}
        for item in items:
            key, eq, value = item.partition("=")
            if not eq or not key or not (value or self.empty_ok):
                raise RequestError(f"{item!r}: give {self.pairs}", self.flag)
            if self.check is not None:
                self.check(value, self.flag)
            out[key] = value
        return out

    def from_click(self, value: Any) -> Any:
        if self.pairs:
            return dict(value)  # made a mapping by the callback already
        return value

    def to_argv(self, value: Any) -> list[str]:
        if self.pairs:
            return [a for k, v in sorted(value.items()) for a in (self.flag, f"{k}={v}")]
        if "/" in self.flag:  # a switch: --x/--no-x
            on, off = self.flag.split("/")
            return [] if value == self.default and not self.always else [on if value else off]
        if value is None or value == "" or (value == self.default and not self.always):
            return []
        return [self.flag, repr(value) if isinstance(value, float) else str(value)]


_PATH = click.Path(path_type=Path, dir_okay=False)

OPTIONS: tuple[Option, ...] = (
    Option("provider", "--provider", "The source Provider.", "NS/NAME", check=split_ref),
    Option(
        "provider_file",
        "--provider-file",
        "The Provider manifest (type, url, settings, secret come from it).",
        type=_PATH,
    ),
    Option(
        "type",
        "--type",
        "The Provider's spec.type (a type an installed source plugin answers for).",
    ),
    Option("url", "--url", "The Provider's spec.url."),
    Option("settings", "--setting", "spec.settings; repeatable.", pairs="KEY=VALUE", empty_ok=True),
    Option(
        "secret",
        "--secret",
        "The Provider's spec.secret; its keys come from MTV_GITOPS_SECRET_<NS>_<NAME>_<KEY> "
        "(or the secrets file of $MTV_GITOPS_SECRETS).",
        "NS/NAME",
        check=split_ref,
    ),
    Option(
        "hosts",
        "--host",
        "A source host's migration-network address (from a Host manifest); repeatable.",
        pairs="ID=ADDRESS",
    ),
    Option(
        "host_secrets",
        "--host-secret",
        "That host's credentials Secret, read like --secret; repeatable.",
        pairs="ID=NS/NAME",
        check=split_ref,
    ),
    Option("copy.vm_id", "--vm", "The source VM's id."),
    Option("copy.disk_key", "--disk", "The disk's key in the inventory."),
    Option(
        "output", "--output", "Raw image to write (created sparse) or block device.", type=_PATH
    ),
    Option(
        "checkpoints",
        "--checkpoints",
        "Progress file for resuming. Default: .mtv-gitops-transfer.db beside --output (a block "
        "device has no 'beside': give it, or the copy cannot resume).",
        type=_PATH,
    ),
    Option("copy.streams", "--streams", type=click.IntRange(1, 64), always=True),
    Option("copy.chunk_mib", "--chunk-mib", type=click.IntRange(1, 64), always=True),
    Option("copy.verify", "--verify/--no-verify", "Re-read and compare."),
    Option("copy.max_mibps", "--max-mibps", type=click.FloatRange(min=0, min_open=True)),
    Option("progress_seconds", "--progress-seconds", "Between progress lines.", type=float),
    Option(
        "termination_log",
        "--termination-log",
        "Where to write the outcome for Kubernetes (the container's terminationMessagePath).",
        type=_PATH,
    ),
    Option(
        "copy.snapshot_id",
        "--snapshot",
        "Read the disk as this snapshot of the VM holds it (warm migration; the source must "
        "support snapshots and changed block tracking).",
        "ID",
    ),
    Option(
        "copy.round",
        "--round",
        "Warm precopy round: 0 copies the disk whole; N >= 1 copies only the areas changed "
        "since --since, onto the copy earlier rounds left (needs --snapshot and --since).",
        type=click.IntRange(0),
    ),
    Option(
        "copy.since",
        "--since",
        "Round >= 1: the change id (of the previous round's snapshot) the changed areas are "
        "counted from.",
        "CHANGE_ID",
    ),
    Option(
        "copy.change_id",
        "--change-id",
        "The change id of --snapshot, recorded with the copy (round 0) or the round, for the "
        "next round to start from.",
        "ID",
    ),
)


def options() -> list[click.Parameter]:
    """The ``transfer`` command's options, one per ``OPTIONS`` entry."""
    return [opt.click_option() for opt in OPTIONS]


def _provider_from_file(path: Path) -> dict[str, Any]:
    """type, url, settings and secret of the Provider manifest in ``path``."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    try:
        doc = YAML(typ="safe").load(path.read_text()) or {}
    except (OSError, YAMLError) as exc:
        raise RequestError(f"cannot read {path}: {exc}", "--provider-file") from None
    if not isinstance(doc, dict) or doc.get("kind") != "Provider":
        raise RequestError(f"{path} is not a Provider manifest", "--provider-file")
    spec = doc.get("spec") or {}
    meta = doc.get("metadata") or {}
    secret = spec.get("secret") or {}
    return {
        "type": spec.get("type", ""),
        "url": spec.get("url", ""),
        "settings": {str(k): str(v) for k, v in (spec.get("settings") or {}).items()},
        "secret": (
            f"{secret.get('namespace') or meta.get('namespace', '')}/{secret['name']}"
            if secret.get("name")
            else ""
        ),
    }
