"""A real GitOps setup per test (``tests/support/workspace.py``): OVA files, a bare remote, a
user clone and the mtv-gitops CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.workspace import Workspace, make_workspace


@pytest.fixture
def workspace_factory(tmp_path: Path):
    def make(vms: list[dict], **build_kw) -> Workspace:
        return make_workspace(tmp_path, vms, **build_kw)

    return make
