"""The NFS server fixture (nfs-ganesha in user space, ``testpeers/nfs.py``) and a helper that
moves a workspace's OVAs onto the share."""

from __future__ import annotations

import io
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from testpeers.nfs import NfsServer, available

__all__ = ["NfsServer", "move_to_share", "nfs_server_fixture"]


def nfs_server_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NfsServer]:
    """The session's server (conftest's ``nfs_server``); skips where ganesha is missing."""
    reason = available()
    if reason:
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("nfs")
    root.chmod(0o755)
    server = NfsServer(root)
    try:
        server.start()
        yield server
    finally:
        server.close()


def move_to_share(ws: Any, server: NfsServer) -> str:
    """Move a workspace's OVA folder onto the share and point its OVA Provider there (a user
    commit, Forklift's ``<server>:/<export>`` form); ``ws.ova`` then names the shared folder,
    so ``ws.add_ova`` writes new OVAs onto the share. Returns the Provider's new url."""
    from ruamel.yaml import YAML

    shared = server.export / ws.root.name
    shutil.copytree(ws.ova, shared)
    for p in [shared, *shared.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    shutil.rmtree(ws.ova)
    ws.ova = shared
    url = server.url(shared)
    yaml = YAML(typ="rt")
    path = ws.clone / "providers" / "providers.yaml"
    docs = list(yaml.load_all(path.read_text()))
    assert docs[0]["spec"]["type"] == "ova"
    docs[0]["spec"]["url"] = url
    out = io.StringIO()
    yaml.dump_all(docs, out)
    ws.user_commit({"providers/providers.yaml": out.getvalue()}, "the OVAs moved to the NFS share")
    return url
