"""Talking to the user's git remote: a private checkout, status commits, proposals, polling."""

from reconciler.gitops._git import GitOpsError
from reconciler.gitops.checkout import GitCheckout
from reconciler.gitops.remote_watch import RemoteHead

__all__ = ["GitCheckout", "GitOpsError", "RemoteHead"]
