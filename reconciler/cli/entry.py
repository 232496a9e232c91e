"""The ``mtv-gitops`` console script: ``transfer`` (what every transfer Job runs) starts
without importing the rest of the command line (rich, the reconcile pipeline, the other
commands), everything else is ``reconciler.cli.main``."""

from __future__ import annotations

import gc
import os
import sys


def main() -> None:
    """Dispatch: ``mtv-gitops transfer ...`` straight to its command, the rest to the group."""
    if len(sys.argv) > 1 and sys.argv[1] == "transfer":
        from reconciler.cli.transfer_cmd import transfer
        from reconciler.daemon.logs import configure

        # what the group's callback does for its --log-format option (only its envvar can
        # reach a command started this way)
        configure(os.environ.get("MTV_GITOPS_LOG_FORMAT") or "text")
        gc.freeze()  # what was imported lives as long as the process: never scan it again
        transfer.main(sys.argv[2:], prog_name="mtv-gitops transfer")
        return
    from reconciler.cli.main import main as full

    full()
