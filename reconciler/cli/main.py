"""``mtv-gitops``: lint, plan, reconcile and watch a GitOps repo of Forklift manifests.

Exit codes: 0 all good; 1 the repo has errors or a VM failed; 2 bad usage; 3 git or a provider
could not be reached; 4 another reconciler holds the state folder (--no-wait).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.markup import escape

from reconciler import __version__
from reconciler.cli.render import console, err_console
from reconciler.daemon.state_dir import cluster_dir_for, state_dir_for

if TYPE_CHECKING:
    from reconciler.inventory.model import Inventory

EXIT_PROBLEMS, EXIT_UNREACHABLE = 1, 3

repo_arg = click.argument("repo", metavar="REPO")
state_opt = click.option(
    "--state-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Private state (progress store, git checkout). Default: REPO/.git/mtv-gitops, "
    "or $MTV_GITOPS_STATE.",
)
cluster_opt = click.option(
    "--cluster",
    type=click.Path(path_type=Path),
    default=None,
    help="Root folder of the embedded local target. Default: STATE_DIR/cluster, "
    "or $MTV_GITOPS_CLUSTER.",
)
secrets_opt = click.option(
    "--secrets",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    default=None,
    help="YAML file of provider credentials ('<ns>/<name>:' -> stringData keys). "
    "Default: $MTV_GITOPS_SECRETS.",
)


class _Cli(click.Group):
    """``plan REPO`` is the dry run; ``plan duplicate REPO PLAN`` its one subcommand."""

    def resolve_command(self, ctx: click.Context, args: list[str]):
        if len(args) > 1 and args[0] == "plan" and args[1] == "duplicate":
            return "plan duplicate", plan_duplicate, args[2:]
        return super().resolve_command(ctx, args)


@click.group(cls=_Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mtv-gitops")
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    envvar="MTV_GITOPS_LOG_FORMAT",
    help="text: messages and progress as they are printed now; json: one JSON object per "
    "line on stdout, with plan, migration, vm and phase fields on the lines about them.",
)
@click.pass_context
def cli(ctx: click.Context, log_format: str) -> None:
    """Migrate VMs to KubeVirt from Forklift-compatible manifests kept in git.

    Push Provider, NetworkMap, StorageMap, Plan and Migration manifests (as in the MTV 2.4
    docs) to a repo; the reconciler validates them, copies the disks and commits status back
    under status/.  Start with `mtv-gitops demo`.
    """
    from reconciler.daemon.logs import configure

    ctx.obj = {"log_format": log_format}
    configure(log_format)


def _log_format() -> str:
    ctx = click.get_current_context(silent=True)
    while ctx is not None and not isinstance(ctx.obj, dict):
        ctx = ctx.parent
    return (ctx.obj or {}).get("log_format", "text") if ctx is not None else "text"


@cli.command()
@repo_arg
@secrets_opt
def lint(repo: str, secrets: Path | None) -> None:
    """Check the manifests and the custom rules (rules/<provider>/) in the working tree REPO.

    Every problem is printed as file:line:column with what was expected.  Exits 1 when there
    are errors.
    """
    from reconciler.manifests.lint import lint_repo
    from reconciler.secrets.resolver import SecretResolver
    from reconciler.validation.lint import lint_rules

    root = _local_tree(repo)
    report = lint_repo(root, SecretResolver(secrets))
    rule_errors, rule_warnings, rule_notes = lint_rules(root)
    errors = [str(e) for e in report.errors] + rule_errors
    warnings = [str(w) for w in report.warnings] + rule_warnings
    for e in errors:
        console.print(f"[red]error[/] {escape(e)}")
    for w in warnings:
        console.print(f"[yellow]warning[/] {escape(w)}")
    for n in rule_notes:
        console.print(f"note {escape(n)}")
    counts = {k: len(v) for k, v in sorted(report.desired.objects.items()) if v}
    summary = ", ".join(f"{n} {k}" for k, n in counts.items()) or "no objects"
    console.print(f"{summary}; {len(errors)} error(s), {len(warnings)} warning(s)")
    sys.exit(EXIT_PROBLEMS if errors else 0)


@cli.command()
@repo_arg
@state_opt
@cluster_opt
@secrets_opt
def plan(repo: str, state_dir: Path | None, cluster: Path | None, secrets: Path | None) -> None:
    """Dry run: what reconciling the working tree REPO would create, copy and power off.

    Reads the providers' inventory; changes nothing anywhere.  `mtv-gitops plan duplicate
    REPO PLAN --name NEW` copies a Plan (see `mtv-gitops plan duplicate --help`).
    """
    from reconciler.daemon.dry_run import dry_run
    from reconciler.secrets.resolver import SecretResolver

    root = _local_tree(repo)
    state = state_dir_for(repo, state_dir)
    report = dry_run(root, state, cluster_dir_for(state, cluster), SecretResolver(secrets))
    for line in report.lines:
        console.print(line, markup=False)
    sys.exit(EXIT_PROBLEMS if report.problems else 0)


@click.command("duplicate")
@repo_arg
@click.argument("plan_ref", metavar="PLAN")
@click.option("--name", required=True, help="The new Plan's name.")
@click.option("--namespace", default=None, help="The new Plan's namespace. Default: PLAN's.")
@click.option(
    "--target-namespace", default=None, help="Where the new Plan puts the VMs. Default: PLAN's."
)
def plan_duplicate(
    repo: str, plan_ref: str, name: str, namespace: str | None, target_namespace: str | None
) -> None:
    """Write a copy of PLAN ([NS/]NAME) beside it: the same VMs, maps and hooks, comments
    kept, not archived.  For moving VMs to another namespace or editing an archived plan.

    Prints the git commands that commit it; nothing is committed or pushed.
    """
    from reconciler.manifests.config import load_config
    from reconciler.manifests.duplicate import DuplicateError, duplicate_plan

    root = _local_tree(repo)
    try:
        made = duplicate_plan(
            root, plan_ref, name, namespace, target_namespace, load_config(root)[0]
        )
    except DuplicateError as exc:
        err_console.print(f"cannot duplicate: {exc}", markup=False, style="red")
        sys.exit(EXIT_PROBLEMS)
    rel = made.path.relative_to(root.resolve()) if made.path.is_absolute() else made.path
    console.print(f"wrote Plan {made.namespace}/{made.name} to {made.path}", markup=False)
    console.print("commit and push it:", markup=False)
    console.print(f"  git -C {root} add {rel}", markup=False)
    msg = f"Plan {made.namespace}/{made.name}: duplicate of {plan_ref}"
    console.print(f"  git -C {root} commit -m '{msg}'", markup=False)
    console.print(f"  git -C {root} push", markup=False)


wait_opt = click.option(
    "--wait/--no-wait",
    default=True,
    show_default=True,
    help="When another reconciler uses the same state folder: wait for it (saying who it is), "
    "or exit at once with code 4.",
)


@cli.command()
@repo_arg
@click.option("--once", is_flag=True, help="Run exactly one pass, then exit.")
@click.option("--branch", default=None, help="Branch to follow. Default: the remote's HEAD.")
@click.option("--no-verify", is_flag=True, help="Skip the digest check after each disk copy.")
@state_opt
@cluster_opt
@secrets_opt
@wait_opt
def reconcile(
    repo: str,
    once: bool,
    branch: str | None,
    no_verify: bool,
    state_dir: Path | None,
    cluster: Path | None,
    secrets: Path | None,
    wait: bool,
) -> None:
    """Make the world match REPO's remote branch, then commit status back.

    REPO is your clone (its origin remote is used), a bare repo or a remote URL.  Without
    --once, passes repeat until no migration has work left.
    """
    from reconciler.daemon.loop import run_until_idle

    code = run_until_idle(
        _settings(repo, branch, state_dir, cluster, secrets, no_verify),
        once=once,
        wait=wait,
        **_echoes(),
    )
    sys.exit(code)


@cli.command()
@repo_arg
@click.option("--interval", default=30.0, show_default=True, help="Seconds between polls.")
@click.option("--branch", default=None, help="Branch to follow. Default: the remote's HEAD.")
@state_opt
@cluster_opt
@secrets_opt
@wait_opt
@click.option(
    "--leader-elect",
    is_flag=True,
    help="Reconcile only while holding a coordination.k8s.io Lease, so that one of several "
    "replicas works at a time (in-cluster config in a pod, else your kubeconfig).",
)
@click.option("--lease-name", default="mtv-gitops", show_default=True, help="The Lease's name.")
@click.option(
    "--lease-namespace",
    default=None,
    help="The Lease's namespace. Default: $POD_NAMESPACE, else the pod's service account "
    "namespace, else 'default'.",
)
@click.option(
    "--lease-duration",
    type=click.IntRange(min=1),
    default=15,
    show_default=True,
    help="Seconds a standby waits, after the Lease last changed, before it takes over.",
)
@click.option(
    "--renew-deadline",
    type=float,
    default=10.0,
    show_default=True,
    help="Seconds the leader keeps trying to renew before it stops reconciling.",
)
@click.option(
    "--retry-period",
    type=float,
    default=2.0,
    show_default=True,
    help="Seconds between attempts to take or renew the Lease.",
)
@click.option(
    "--health-port",
    type=click.IntRange(min=0, max=65535),
    default=None,
    help="Serve /healthz, /readyz and /metrics on this port (0: any free port). Default: off.",
)
@click.option(
    "--health-address", default="127.0.0.1", show_default=True, help="Address to serve them on."
)
@click.option(
    "--stuck-after",
    type=float,
    default=1800.0,
    show_default=True,
    help="Seconds without a sign of life (a poll, a step, a copied chunk) after which "
    "/healthz fails.",
)
def daemon(
    repo: str,
    interval: float,
    branch: str | None,
    state_dir: Path | None,
    cluster: Path | None,
    secrets: Path | None,
    wait: bool,
    leader_elect: bool,
    lease_name: str,
    lease_namespace: str | None,
    lease_duration: int,
    renew_deadline: float,
    retry_period: float,
    health_port: int | None,
    health_address: str,
    stuck_after: float,
) -> None:
    """Reconcile REPO continuously.

    Polls the remote branch every --interval seconds and, when REPO is a local clone, watches
    it so a push from it is picked up at once.  Commits that only touch status/ never start a
    pass.  Stop with Ctrl-C or SIGTERM; a pass stopped mid-copy resumes on the next start.

    In a cluster (deploy/ in the project), run two replicas with --leader-elect: one
    reconciles, the other stands by and takes over when the first dies.  Git credentials come
    from the folder named by $MTV_GITOPS_GIT_CREDENTIALS (a mounted Secret).
    """
    from reconciler.daemon.health import Health, HealthServer
    from reconciler.daemon.loop import run_daemon

    settings = _settings(repo, branch, state_dir, cluster, secrets, False)
    elector = None
    if leader_elect:
        from reconciler.daemon.leader import (
            LeaderElector,
            LeaseSettings,
            default_namespace,
            lease_api,
        )

        try:
            lease = LeaseSettings(
                name=lease_name,
                namespace=lease_namespace or default_namespace(),
                lease_duration=lease_duration,
                renew_deadline=renew_deadline,
                retry_period=retry_period,
            )
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
        try:
            api = lease_api()
        except Exception as exc:  # noqa: BLE001 - the kubernetes client's config errors vary
            err_console.print(
                f"error no cluster for leader election: {exc}", markup=False, style="red"
            )
            sys.exit(EXIT_UNREACHABLE)
        elector = LeaderElector(api, lease)
    health = Health(stuck_after=stuck_after)
    server = None
    if health_port is not None:
        try:
            server = HealthServer(health, health_address, health_port).start()
        except OSError as exc:
            raise click.UsageError(
                f"cannot serve health on {health_address}:{health_port}: {exc}"
            ) from None
        _echoes()["echo"](f"health and metrics on {server.url}")
    try:
        code = run_daemon(
            settings, interval, **_echoes(), elector=elector, health=health, wait=wait
        )
    finally:
        if server is not None:
            server.stop()
    sys.exit(code)


@cli.command()
@repo_arg
@state_opt
@click.option("--json", "as_json", is_flag=True, help="Print the status documents as JSON.")
def status(repo: str, state_dir: Path | None, as_json: bool) -> None:
    """Show plans and VMs with phase and progress, from the status the reconciler committed."""
    import json

    from reconciler.status.reader import read_status

    docs, where = read_status(repo, state_dir_for(repo, state_dir))
    if as_json:
        click.echo(json.dumps(docs, indent=2, default=str))
        return
    if not docs:
        console.print(f"No status yet in {where}: run `mtv-gitops reconcile {repo}` first.")
        return
    from reconciler.cli.render import status_tables

    console.print(f"[dim]status from {where}[/]")
    for table in status_tables(docs):
        console.print(table)
    errors = [e for d in docs if d.get("kind") == "Repo" for e in d.get("errors", [])]
    for e in errors:
        console.print(f"[red]error[/] {escape(str(e))}")


@cli.command()
@click.option(
    "--workspace",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder for the demo's remote, clone, source files and cluster "
    "[default: /tmp/mtv-gitops-demo; with --warm, /tmp/mtv-gitops-demo-warm].",
)
@click.option("--no-verify", is_flag=True, help="Skip the digest check (on by default).")
@click.option(
    "--warm",
    is_flag=True,
    help="Instead: a warm migration of a running VM from a simulated source (the bundled one "
    "is built from Debian's golang-go and govmomi, installed as root): precopy rounds of what "
    "the guest writes, a reviewer merging the cutover branch, the downtime and the bytes copied "
    "during it.",
)
def demo(workspace: Path | None, no_verify: bool, warm: bool) -> None:
    """Make a demo source (OVA files, from the bundled plugin), a git remote and a clone, then
    migrate its VMs to the local target (with --warm: one running VM from the vCenter
    simulator, cut over by merging a branch)."""
    workspace = workspace or Path("/tmp/mtv-gitops-demo-warm" if warm else "/tmp/mtv-gitops-demo")
    if warm:
        from reconciler.cli.demo_warm import run_warm_demo

        sys.exit(run_warm_demo(workspace, verify=not no_verify))
    from reconciler.cli.demo import run_demo

    sys.exit(run_demo(workspace, verify=not no_verify))


@cli.command()
@repo_arg
@click.option("--provider", "-p", required=True, help="Provider name (or namespace/name).")
@click.option("--json", "as_json", is_flag=True, help="Print the inventory as JSON.")
@click.option(
    "--cached",
    is_flag=True,
    help="Do not contact the provider: show what the reconciler's last pass read (from the "
    "inventory store in STATE_DIR).",
)
@state_opt
@secrets_opt
def inventory(
    repo: str,
    provider: str,
    as_json: bool,
    cached: bool,
    state_dir: Path | None,
    secrets: Path | None,
) -> None:
    """List what a source Provider of the working tree REPO has: VMs, networks, storage."""
    from reconciler.daemon.observe import connect_provider
    from reconciler.manifests.config import load_config
    from reconciler.manifests.loader import load_repo
    from reconciler.secrets.resolver import SecretError, SecretResolver, plaintext_secrets
    from reconciler.sources import SourceError

    root = _local_tree(repo)
    config, _ = load_config(root)
    desired = load_repo(root, config)
    matches = [
        m
        for (ns, name), m in desired.of("Provider").items()
        if provider in (name, f"{ns}/{name}") and m.spec.type != "openshift"
    ]
    if len(matches) != 1:
        names = ", ".join(sorted(f"{ns}/{n}" for ns, n in desired.of("Provider")))
        raise click.BadParameter(
            f"{provider!r} names {len(matches)} source Providers (there are: {names or 'none'})",
            param_hint="--provider",
        )
    if cached:
        from reconciler.inventory.store import InventoryStore

        key = f"{matches[0].namespace}/{matches[0].name}"
        store = InventoryStore(state_dir_for(repo, state_dir) / "inventory.db")
        found = store.load(key)
        store.close()
        if found is None:
            err_console.print(
                f"error no inventory of {key} is stored yet: run `mtv-gitops reconcile` (or "
                "drop --cached to ask the provider)",
                markup=False,
                style="red",
            )
            sys.exit(EXIT_PROBLEMS)
        err_console.print(f"inventory of {key} as read at {found.read_at}", markup=False)
        _print_inventory(found.inventory, as_json)
        return
    resolver = SecretResolver(secrets)
    resolver.plaintext = plaintext_secrets(desired)
    try:
        conn = connect_provider(matches[0], resolver)
        try:
            inv = conn.inventory()
        finally:
            conn.close()
    except (SourceError, SecretError) as exc:
        err_console.print(f"error {exc}", markup=False, style="red")
        sys.exit(EXIT_UNREACHABLE)
    _print_inventory(inv, as_json)


def _print_inventory(inv: Inventory, as_json: bool) -> None:
    import dataclasses
    import json

    if as_json:
        click.echo(json.dumps(dataclasses.asdict(inv), indent=2, default=str))
        return
    from reconciler.cli.render import inventory_tables

    for table in inventory_tables(inv):
        console.print(table)


@cli.command()
@click.argument("address", metavar="HOST[:PORT]")
def fingerprint(address: str) -> None:
    """Print the SHA-1 fingerprint of the TLS certificate at HOST[:PORT] (default port 443).

    The format is the MTV docs' (`AA:BB:...`), what `openssl s_client | openssl x509
    -fingerprint -sha1` prints: put it in a vSphere Provider's secret as `thumbprint` to pin
    that certificate. Check it against what your vCenter shows before you trust it.
    """
    from reconciler.sources import SourceError, sha1_fingerprint

    host, _, port = address.rpartition(":") if ":" in address else (address, "", "443")
    try:
        click.echo(sha1_fingerprint(host, int(port)))
    except (SourceError, ValueError) as exc:
        err_console.print(f"error {exc}", markup=False, style="red")
        sys.exit(EXIT_UNREACHABLE)


from reconciler.cli.convert_cmd import convert_guest  # noqa: E402 - idem
from reconciler.cli.rules_cmd import rules  # noqa: E402 - registered after the core commands
from reconciler.cli.transfer_cmd import transfer  # noqa: E402 - idem

cli.add_command(rules)
cli.add_command(transfer)
cli.add_command(convert_guest)


def _local_tree(repo: str) -> Path:
    root = Path(repo)
    if not root.is_dir():
        raise click.BadParameter(
            f"{repo} is not a folder (a working tree is needed)", param_hint="REPO"
        )
    return root


@cli.command()
@repo_arg
@click.option("--plan", "plan_", default="", help="Only this plan: NAMESPACE/NAME (or NAME).")
@click.option("--vm", default="", help="Only this VM: its id or its name, as the Plan lists it.")
@click.option("--namespace", default="", help="Only plans in (or migrating into) NAMESPACE.")
@click.option("--since", default="", help="Only log lines of the last DURATION (e.g. 30m, 2h, 7d).")
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    default=Path("must-gather.tar.gz"),
    show_default=True,
    help="The archive to write.",
)
@state_opt
@cluster_opt
@secrets_opt
def gather(
    repo: str,
    plan_: str,
    vm: str,
    namespace: str,
    since: str,
    output: Path,
    state_dir: Path | None,
    cluster: Path | None,
    secrets: Path | None,
) -> None:
    """Collect what support needs into a .tar.gz, laid out like MTV's must-gather.

    Manifests with their status, the progress store's records, inventory records, the
    reconciler's log lines and, from the target, PVCs, Jobs, VirtualMachines and pod logs,
    per namespace.  Every secret value the reconciler knows is redacted.  A filter that
    matches nothing writes no archive (exit 1).  Asks no source provider and no git remote.
    """
    from reconciler.daemon.gather import Filters, GatherError, parse_duration
    from reconciler.daemon.gather import gather as run_gather
    from reconciler.secrets.resolver import SecretResolver

    state = state_dir_for(repo, state_dir)
    try:
        filters = Filters(plan_, vm, namespace, parse_duration(since) if since else None)
        path, count = run_gather(
            Path(repo),
            state,
            cluster_dir_for(state, cluster),
            SecretResolver(secrets),
            filters,
            output,
        )
    except GatherError as exc:
        err_console.print(f"error {exc}", markup=False, style="red")
        sys.exit(EXIT_PROBLEMS)
    console.print(f"wrote {path} ({count} files; secret values redacted)", markup=False)


def _echoes() -> dict:
    """Plain text out (no markup): messages quote user data that may contain brackets; with
    --log-format json, log lines instead."""
    from reconciler.daemon.logs import echoes

    return echoes(
        _log_format(),
        lambda text: console.print(text, markup=False),
        lambda text: err_console.print(text, markup=False, style="red"),
    )


def _settings(repo, branch, state_dir, cluster, secrets, no_verify):
    from reconciler.cli.render import RichReporter
    from reconciler.daemon.logs import JSON, keep_in
    from reconciler.daemon.reconcile import Settings
    from reconciler.secrets.resolver import SecretResolver

    state = state_dir_for(repo, state_dir)
    keep_in(state)  # the JSON log that `gather` reads, whatever the console shows
    return Settings(
        source=repo,
        state_dir=state,
        cluster=cluster_dir_for(state, cluster),
        branch=branch,
        secrets=SecretResolver(secrets),
        # in JSON the pipeline's events reach stdout as log lines (no progress bars)
        reporter=None if _log_format() == JSON else RichReporter(),
        verify=False if no_verify else None,
    )


def main() -> None:
    try:
        cli(standalone_mode=True)
    except KeyboardInterrupt:
        err_console.print("interrupted; progress is saved and the next run resumes")
        sys.exit(130)
