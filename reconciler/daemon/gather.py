"""``mtv-gitops gather``: MTV's must-gather for this tool, a ``.tar.gz`` for a support case.

Laid out as the MTV docs' must-gather archive, per namespace::

    must-gather/
      gathered.yaml                                 what was asked, when, by which version
      namespaces/<ns>/crs/<kind>/<name>.yaml        manifests, each with its committed status
      namespaces/<ns>/progress/<plan>/...           the progress store's records (YAML)
      namespaces/<ns>/inventory/<provider>/<vm>.yaml  inventory records of those VMs
      namespaces/<ns>/logs/mtv-gitops-reconciler/current.log   the reconciler's lines
      namespaces/<target>/crs/<kind>/<name>.yaml    PVCs, Jobs, VirtualMachines, pods
      namespaces/<target>/logs/<pod>/current.log    transfer, conversion and hook pods

Filters (a plan, a VM, a namespace, a time window) narrow it; one that matches nothing makes
no archive and says so, as MTV does.  Empty logs are left out.  Every secret value the
reconciler knows (Provider and Host secrets, from the secrets file, the environment, the
cluster or the repo; the git credentials) is replaced by ``<redacted>`` in every file, also
base64-, JSON- and URL-encoded.  Nothing is asked of a source provider or git.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import tarfile
import time
import urllib.parse
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reconciler.daemon.logs import log_files
from reconciler.daemon.observe import destination_targets
from reconciler.daemon.state_dir import CHECKOUT_DIR
from reconciler.gitops.credentials import CREDENTIALS_ENV
from reconciler.inventory.store import InventoryStore
from reconciler.manifests.config import load_config
from reconciler.manifests.emit import dump_yaml
from reconciler.manifests.loader import Desired, Manifest, load_repo
from reconciler.manifests.references import resolve
from reconciler.planner.planner import _label_value  # as the planner labels a VM's objects
from reconciler.progress.store import ProgressStore, VmProgress
from reconciler.secrets.resolver import SecretError, SecretResolver, plaintext_secrets
from reconciler.targets.base import Target, TargetError
from reconciler.targets.local import LocalTarget

ROOT = "must-gather"
REDACTED = "<redacted>"
NOT_SECRET = {"true", "false", "yes", "no"}  # flags such as insecureSkipVerify
MIN_SECRET = 4  # shorter values would redact ordinary words
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class GatherError(Exception):
    """The filters match nothing, or an argument is wrong: no archive is made."""


def parse_duration(text: str) -> float:
    """``90s``, ``30m``, ``2h``, ``7d`` -> seconds."""
    found = _DURATION.match(text.strip())
    if not found:
        raise GatherError(f"--since {text!r}: give a number and a unit, e.g. 30m, 2h or 7d")
    return float(found.group(1)) * _UNITS[found.group(2)]


@dataclass
class Filters:
    plan: str = ""  # NS/NAME or NAME
    vm: str = ""  # a VM's id or name
    namespace: str = ""
    since: float | None = None  # seconds back from now

    def any(self) -> bool:
        return bool(self.plan or self.vm or self.namespace)

    def describe(self) -> str:
        parts = [f"plan {self.plan}"] if self.plan else []
        parts += [f"VM {self.vm}"] if self.vm else []
        parts += [f"namespace {self.namespace}"] if self.namespace else []
        return ", ".join(parts) or "everything"


@dataclass
class _Selected:
    plan: Manifest
    vms: list[tuple[str, str]] = field(default_factory=list)  # (id, name), id may be ""


@dataclass
class Bundle:
    """The archive's files before they are written: path -> text."""

    files: dict[str, str] = field(default_factory=dict)

    def add(self, path: str, text: str) -> None:
        if text.strip():
            self.files[f"{ROOT}/{path}"] = text


def gather(
    repo: Path,
    state_dir: Path,
    cluster: Path,
    secrets: SecretResolver,
    filters: Filters,
    output: Path,
    clock: float | None = None,
) -> tuple[Path, int]:
    """Write the archive to *output*; returns it and how many files it holds.  Raises
    GatherError when a filter matches nothing (and writes nothing)."""
    now = time.time() if clock is None else clock
    root = state_dir / CHECKOUT_DIR if (state_dir / CHECKOUT_DIR / ".git").exists() else repo
    config, _ = load_config(root)
    desired = load_repo(root, config)
    store = ProgressStore(state_dir / "progress.db")
    try:
        selected = _select(desired, store, filters)
        if filters.any() and not selected:
            raise GatherError(
                f"nothing matches {filters.describe()}: no plan or VM of that name in "
                f"{root}; no archive written"
            )
        bundle = Bundle()
        _manifests(bundle, desired, root, selected, filters)
        _progress(bundle, store, selected)
    finally:
        store.close()
    _inventory(bundle, state_dir, desired, selected)
    since = now - filters.since if filters.since else None
    _reconciler_logs(bundle, state_dir, selected, since)
    _targets(bundle, desired, secrets, cluster, selected, filters.since)
    bundle.add(
        "gathered.yaml",
        dump_yaml(
            {
                "gathered": datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "filters": {k: v for k, v in asdict(filters).items() if v},
                "plans": [f"{s.plan.namespace}/{s.plan.name}" for s in selected],
                "version": _version(),
            }
        ),
    )
    secrets_known = known_secrets(desired, secrets)
    _write(output, {p: redact(t, secrets_known) for p, t in bundle.files.items()}, now)
    return output, len(bundle.files)


def _version() -> str:
    from reconciler import __version__

    return __version__


# -- what is selected -------------------------------------------------------------------------


def _select(desired: Desired, store: ProgressStore, f: Filters) -> list[_Selected]:
    out: list[_Selected] = []
    for (ns, name), plan in sorted(desired.of("Plan").items()):
        if f.plan and f.plan not in (f"{ns}/{name}", name):
            continue
        if f.namespace and f.namespace not in (ns, plan.spec.targetNamespace):
            continue
        records = store.vms(f"{ns}/{name}")
        vms: list[tuple[str, str]] = []
        for entry in plan.spec.vms:
            rec = next(
                (
                    r
                    for r in records
                    if r.vm_id == entry.id or (entry.name and r.vm_name == entry.name)
                ),
                None,
            )
            vm_id = entry.id or (rec.vm_id if rec else "")
            vm_name = entry.name or (rec.vm_name if rec else "")
            vms.append((vm_id, vm_name))
        if f.vm:
            vms = [v for v in vms if f.vm in v]
            if not vms:
                continue
        out.append(_Selected(plan, vms))
    return out


def _wanted(sel: _Selected, rec: VmProgress) -> bool:
    return any(rec.vm_id == i or (n and rec.vm_name == n) for i, n in sel.vms)


# -- manifests and status -------------------------------------------------------------------


def _related(desired: Desired, plan: Manifest) -> list[Manifest]:
    """The plan, its Migrations, Providers, maps, hooks and the Hosts of its source."""
    found: dict[tuple[str, str, str], Manifest] = {("Plan", *plan.key): plan}
    spec = plan.spec

    def add(kind: str, ref) -> None:
        if ref is None:
            return
        key = resolve(ref, plan)
        m = desired.get(kind, *key)
        if m is not None:
            found[(kind, *key)] = m

    add("Provider", spec.provider.source)
    add("Provider", spec.provider.destination)
    add("NetworkMap", spec.map.network)
    add("StorageMap", spec.map.storage)
    for entry in spec.vms:
        for h in entry.hooks:
            add("Hook", h.hook)
    source = resolve(spec.provider.source, plan)
    for host in desired.of("Host").values():
        if resolve(host.spec.provider, host) == source:
            found[("Host", *host.key)] = host
    for mig in desired.of("Migration").values():
        if resolve(mig.spec.plan, mig) == plan.key:
            found[("Migration", *mig.key)] = mig
    return list(found.values())


def _manifests(
    bundle: Bundle, desired: Desired, root: Path, selected: list[_Selected], f: Filters
) -> None:
    """Each related object as its manifest with its committed status (never a Secret)."""
    seen: set[tuple[str, str, str]] = set()
    objects = [m for s in selected for m in _related(desired, s.plan)]
    if not f.any():  # everything: every object of the repo
        objects = [m for kind in sorted(desired.objects) for m in desired.of(kind).values()]
    for m in objects:
        if m.kind == "Secret" or (m.kind, *m.key) in seen:
            continue
        seen.add((m.kind, *m.key))
        doc: dict[str, Any] = json.loads(json.dumps(m.doc, default=str))
        status = root / "status" / m.kind.lower() / m.namespace / f"{m.name}.yaml"
        if status.is_file():
            from ruamel.yaml import YAML

            committed = YAML(typ="safe").load(status.read_text()) or {}
            if isinstance(committed, dict) and committed.get("status") is not None:
                doc["status"] = committed["status"]
        bundle.add(f"namespaces/{m.namespace}/crs/{m.kind.lower()}/{m.name}.yaml", dump_yaml(doc))
    repo_status = root / "status" / "repo.yaml"
    if repo_status.is_file():
        bundle.add("repo-status.yaml", repo_status.read_text())


# -- the progress store -----------------------------------------------------------------------


def _progress(bundle: Bundle, store: ProgressStore, selected: list[_Selected]) -> None:
    for sel in selected:
        key = f"{sel.plan.namespace}/{sel.plan.name}"
        base = f"namespaces/{sel.plan.namespace}/progress/{sel.plan.name}"
        for rec in store.vms(key):
            if _wanted(sel, rec):
                bundle.add(f"{base}/vms/{_safe(rec.vm_id)}.yaml", dump_yaml(asdict(rec)))
        migrations = [asdict(m) for m in store.migrations(key)]
        if migrations:
            bundle.add(f"{base}/migrations.yaml", dump_yaml({"migrations": migrations}))


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name) or "_"


# -- inventory --------------------------------------------------------------------------------


def _inventory(bundle: Bundle, state_dir: Path, desired: Desired, selected) -> None:
    path = state_dir / "inventory.db"
    if not path.exists():
        return
    inventories = InventoryStore(path)
    try:
        for sel in selected:
            ns, name = resolve(sel.plan.spec.provider.source, sel.plan)
            cached = inventories.load(f"{ns}/{name}")
            if cached is None:
                continue
            for vm_id, vm_name in sel.vms:
                vm = cached.inventory.find_vm(vm_id or None, vm_name or None)
                if vm is not None:
                    doc = {"provider": f"{ns}/{name}", "readAt": cached.read_at, "vm": asdict(vm)}
                    rel = f"namespaces/{ns}/inventory/{name}/{_safe(vm.id)}.yaml"
                    bundle.add(rel, dump_yaml(json.loads(json.dumps(doc, default=str))))
    finally:
        inventories.close()


# -- logs -------------------------------------------------------------------------------------


def _reconciler_logs(
    bundle: Bundle, state_dir: Path, selected: list[_Selected], since: float | None
) -> None:
    """The JSON lines the reconciler kept that concern the selected plans and VMs."""
    lines: dict[str, list[str]] = {}
    plans = {f"{s.plan.namespace}/{s.plan.name}": s for s in selected}
    for path in log_files(state_dir):
        for raw in path.read_text(errors="replace").splitlines():
            try:
                line = json.loads(raw)
            except ValueError:
                continue
            sel = plans.get(line.get("plan", ""))
            if sel is None:
                continue
            if line.get("vm_id") or line.get("vm"):
                if not any(line.get("vm_id") == i or line.get("vm") == n for i, n in sel.vms):
                    continue
            if since is not None and _line_time(line) < since:
                continue
            lines.setdefault(sel.plan.namespace, []).append(raw)
    for ns, found in lines.items():
        bundle.add(
            f"namespaces/{ns}/logs/mtv-gitops-reconciler/current.log", "\n".join(found) + "\n"
        )


def _line_time(line: dict[str, Any]) -> float:
    try:
        return datetime.fromisoformat(str(line.get("time", ""))).timestamp()
    except ValueError:
        return 0.0


# -- the target -------------------------------------------------------------------------------


def _targets(
    bundle: Bundle,
    desired: Desired,
    secrets: SecretResolver,
    cluster: Path,
    selected: list[_Selected],
    since: float | None,
) -> None:
    local = LocalTarget(cluster)
    dests = destination_targets(desired, secrets, local)
    for sel in selected:
        found = dests.get(resolve(sel.plan.spec.provider.destination, sel.plan), local)
        if isinstance(found, str):
            bundle.add(
                f"namespaces/{sel.plan.namespace}/logs/mtv-gitops-gather/current.log",
                f"the destination of plan {sel.plan.name} was not read: {found}\n",
            )
            continue
        _target(bundle, found, sel, since)


def _target(bundle: Bundle, target: Target, sel: _Selected, since: float | None) -> None:
    ns = sel.plan.spec.targetNamespace
    for vm_id, _name in sel.vms:
        if not vm_id:
            continue
        labels = {"plan": sel.plan.name[:63], "vmID": _label_value(vm_id)}
        try:
            got = target.gather(ns, labels, since)
        except TargetError as exc:
            bundle.add(
                f"namespaces/{ns}/logs/mtv-gitops-gather/current.log",
                f"{target.describe()}: {exc}\n",
            )
            continue
        for obj in got.objects:
            kind = str(obj.get("kind", "object")).lower()
            name = (obj.get("metadata") or {}).get("name", "unnamed")
            bundle.add(f"namespaces/{ns}/crs/{kind}/{name}.yaml", dump_yaml(obj))
        for pod, text in got.logs.items():
            bundle.add(f"namespaces/{ns}/logs/{pod}/current.log", text)


# -- redaction --------------------------------------------------------------------------------


def known_secrets(desired: Desired, secrets: SecretResolver) -> set[str]:
    """Every secret value the reconciler could have read: the Secrets that Providers and
    Hosts name (wherever they are kept), the whole secrets file, Secrets kept in the repo,
    and the git credentials."""
    values: set[str] = set()
    refs: set[tuple[str, str]] = set()
    for kind in ("Provider", "Host"):
        for m in desired.of(kind).values():
            ref = m.spec.secret
            if ref is not None:
                refs.add((ref.namespace or m.namespace, ref.name))
    for ns, name in sorted(refs):
        try:
            values.update(secrets.resolve(ns, name).values())
        except SecretError:
            pass
    try:
        values.update(secrets.file_values())
    except SecretError:
        pass
    for found in plaintext_secrets(desired).values():
        values.update(found.values())
    folder = os.environ.get(CREDENTIALS_ENV, "")
    if folder and Path(folder).is_dir():
        for path in Path(folder).iterdir():
            if path.is_file():
                try:
                    values.add(path.read_text().strip())
                except (OSError, UnicodeDecodeError):
                    continue
    return {v for v in values if _is_secret(v)}


def _is_secret(value: str) -> bool:
    return len(value.strip()) >= MIN_SECRET and value.strip().lower() not in NOT_SECRET


def _variants(value: str) -> set[str]:
    """The value as it could appear in a file: as is, each long line of a multi-line value
    (a YAML dump re-indents it), base64, JSON- and URL-encoded."""
    out = {value, value.strip()}
    out |= {line.strip() for line in value.splitlines() if len(line.strip()) >= 8}
    out.add(base64.b64encode(value.encode()).decode())
    out.add(json.dumps(value)[1:-1])
    out.add(urllib.parse.quote(value, safe=""))
    out.add(urllib.parse.quote_plus(value))
    return {v for v in out if len(v) >= MIN_SECRET}


def redact(text: str, secrets: set[str]) -> str:
    """*text* with every variant of every secret value replaced by ``<redacted>``."""
    variants = sorted({v for s in secrets for v in _variants(s)}, key=len, reverse=True)
    for v in variants:
        if v in text:
            text = text.replace(v, REDACTED)
    return text


# -- the archive ------------------------------------------------------------------------------


def _write(output: Path, files: dict[str, str], now: float) -> None:
    """The .tar.gz, written to a temporary name and renamed: never half an archive."""
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.part")
    with tarfile.open(tmp, "w:gz") as tar:
        for path in sorted(files):
            data = files[path].encode()
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mtime = int(now)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    tmp.replace(output)
