"""A git credential helper that answers ``get`` for HTTP(S) from a folder of files.

git runs it as ``python -I _credential_helper.py FOLDER get`` (see ``credentials.py``).  It is a
standalone script on purpose: stdlib only, nothing of the project imported, so it starts fast
and runs the same in any environment.  The password goes to git on stdout and nowhere else;
an error names the problem, never a value.
"""

from __future__ import annotations

import sys
from pathlib import Path

DEFAULT_USERNAME = "git"  # GitHub and GitLab accept any user name beside a token


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except (FileNotFoundError, IsADirectoryError):
        return ""


def main(argv: list[str]) -> int:
    """Answer git's ``get``; ``store`` and ``erase`` have nothing to do (the files are the
    store)."""
    if len(argv) != 3 or argv[2] != "get":
        return 0
    request = dict(line.split("=", 1) for line in sys.stdin.read().splitlines() if "=" in line)
    if request.get("protocol") not in ("http", "https"):
        return 0
    folder = Path(argv[1])
    password = _read(folder / "password") or _read(folder / "token")
    if not password:
        return 0
    username = _read(folder / "username") or DEFAULT_USERNAME
    if any(c in value for value in (username, password) for c in "\n\r\0"):
        print(f"mtv-gitops: a value in {folder} has a line break; not used", file=sys.stderr)
        return 1
    sys.stdout.write(f"username={username}\npassword={password}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
