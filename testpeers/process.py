"""Peers die with the run that started them: a pytest run that is killed (kill -9, a CI timeout)
must not leave a Keystone, a Glance or an imageio daemon listening for hours."""

from __future__ import annotations

import shutil

_SETPRIV = shutil.which("setpriv")


def dies_with_parent(cmd: list[str]) -> list[str]:
    """``cmd`` under ``setpriv --pdeathsig KILL`` (util-linux), which execs it in place, so the
    process keeps its pid and Linux kills it when the thread that started it ends."""
    return [_SETPRIV, "--pdeathsig", "KILL", *cmd] if _SETPRIV else cmd
