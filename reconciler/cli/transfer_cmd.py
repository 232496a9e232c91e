"""``mtv-gitops transfer``: copy one source disk into a file or block device, resumably.

This is what a kubevirt target's transfer Job runs, one disk per Job, with the PVC mounted at
``--output``. Its options are ``reconciler.transfer.request.OPTIONS`` (the target writes a
Job's arguments from the same table); what the process does is ``reconciler.transfer.job``.
This module adds what the transfer package may not reach itself: the credentials (from the
environment or the secrets file) and the source plugin that connects.

Warm migration runs one Job per round on the same output and checkpoints: round 0 copies the
disk whole as a snapshot holds it (``--snapshot``) and records the snapshot's change id
(``--change-id``); round N (``--round N``, 1, 2, ...) asks the source for the areas changed
between ``--since`` and the snapshot and copies only the chunks they touch, on top of what the
earlier rounds left. A round needs the checkpoints of the full copy (they say what the target
holds); a round killed midway resumes with the same areas, one already done ends at once.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from reconciler.transfer.request import RequestError, TransferRequest, options, split_ref


def _connect(request: TransferRequest) -> Any:
    """The source connection the request needs: credentials resolved, its plugin asked; a warm
    one when the request reads a snapshot."""
    from reconciler.plugin_manager import connect_one
    from reconciler.secrets.resolver import SecretError, SecretResolver
    from reconciler.sources import SourceError, warm_source
    from reconciler.transfer.job import Refused

    try:
        values = (
            SecretResolver().resolve(*split_ref(request.secret, "--secret"))
            if request.secret
            else {}
        )
        hosts: dict[str, dict[str, Any]] = {}
        for host_id, address in request.hosts.items():
            ref = request.host_secrets.get(host_id)
            secret = SecretResolver().resolve(*split_ref(ref, "--host-secret")) if ref else {}
            hosts[host_id] = {"ipAddress": address, "secret": secret}
    except SecretError as exc:
        raise Refused(str(exc)) from None
    conn = connect_one(request.type, request.url, values, dict(request.settings), hosts)
    if not request.copy.snapshot_id:
        return conn
    try:
        return warm_source(conn)
    except SourceError as exc:
        conn.close()
        raise Refused(f"--snapshot {request.copy.snapshot_id}: {exc}") from None


def _command(func: Any) -> click.Command:
    command = click.command("transfer")(func)
    command.params.extend(options())
    return command


@_command
def transfer(**params: Any) -> None:
    """Copy disk --disk of VM --vm from the source Provider into --output.

    Prints a JSON progress line every --progress-seconds, resumes from --checkpoints, verifies
    the copy by its digest. Exit codes: 0 copied; 1 failed (another attempt may help); 2 bad
    usage; 4 failed for good (the output is full, or does not read back what was written).

    Warm migration: --snapshot ID --change-id C copies round 0 (the whole disk at the
    snapshot); --round N --snapshot ID --since PREV --change-id C copies round N, only what
    changed between PREV and the snapshot, into the output earlier rounds filled, with the
    same --checkpoints.
    """
    from reconciler.sources import SourceError
    from reconciler.transfer import job

    try:
        request = TransferRequest.from_params(params).with_provider_file()
    except RequestError as exc:
        raise click.BadParameter(str(exc), param_hint=exc.hint) from None
    problem = request.problem()
    if problem:
        raise click.UsageError(problem)
    sys.exit(job.main(request, _connect, expected=(SourceError,)))
