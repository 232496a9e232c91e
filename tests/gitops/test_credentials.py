"""Git credentials from a mounted Secret's folder, used by real git: an HTTPS token against a
smart-HTTP server (git's own http-backend behind Basic auth), an SSH key through the ssh that
``GIT_SSH_COMMAND`` names (a stand-in on PATH that records what it got, then serves the repo
with git-upload-pack as sshd would)."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from reconciler.gitops import GitCheckout, GitOpsError, RemoteHead
from reconciler.gitops.credentials import CREDENTIALS_ENV, HELPER, git_auth

pytestmark = pytest.mark.integration
TOKEN = "glpat-s3cr3t-t0ken"
HTTP_BACKEND = "/usr/lib/git-core/git-http-backend"
USER = {
    "GIT_AUTHOR_NAME": "Ada User",
    "GIT_AUTHOR_EMAIL": "ada@example.com",
    "GIT_COMMITTER_NAME": "Ada User",
    "GIT_COMMITTER_EMAIL": "ada@example.com",
}


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    """A bare repo with one commit on main."""
    seed, bare = tmp_path / "seed", tmp_path / "srv" / "repo.git"
    env = {**os.environ, **USER}
    subprocess.run(["git", "init", "-q", "-b", "main", str(seed)], check=True, env=env)
    (seed / "plans").mkdir()
    (seed / "plans" / "p.yaml").write_text("kind: Plan\nmetadata: {name: p}\n")
    subprocess.run(["git", "-C", str(seed), "add", "-A"], check=True, env=env)
    subprocess.run(["git", "-C", str(seed), "commit", "-qm", "seed"], check=True, env=env)
    subprocess.run(["git", "clone", "-q", "--bare", str(seed), str(bare)], check=True, env=env)
    return bare


class _Server:
    """Smart HTTP for the folder above *bare*, asking for ``Basic git:<token>``."""

    def __init__(self, bare: Path) -> None:
        self.token = TOKEN
        self.seen: list[str] = []  # Authorization headers received
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                self._cgi()

            def do_POST(self) -> None:  # noqa: N802
                self._cgi()

            def _cgi(self) -> None:
                auth = self.headers.get("Authorization", "")
                server.seen.append(auth)
                expected = base64.b64encode(f"git:{server.token}".encode()).decode()
                if auth != f"Basic {expected}":
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="git"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                path, _, query = self.path.partition("?")
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                env = {
                    "PATH": os.environ["PATH"],
                    "GIT_PROJECT_ROOT": str(bare.parent),
                    "GIT_HTTP_EXPORT_ALL": "1",
                    "PATH_INFO": path,
                    "QUERY_STRING": query,
                    "REQUEST_METHOD": self.command,
                    "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                    "CONTENT_LENGTH": str(len(body)),
                    "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
                    "HTTP_GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
                    "REMOTE_USER": "git",
                    "REMOTE_ADDR": "127.0.0.1",
                }
                out = subprocess.run(
                    [HTTP_BACKEND], input=body, env=env, capture_output=True, check=True
                ).stdout
                head, _, payload = out.partition(b"\r\n\r\n")
                headers = [h.split(":", 1) for h in head.decode().split("\r\n") if ":" in h]
                status = next((int(v.split()[0]) for k, v in headers if k == "Status"), 200)
                self.send_response(status)
                for key, value in headers:
                    if key != "Status":
                        self.send_header(key, value.strip())
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/{bare.name}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def https(remote: Path) -> Iterator[_Server]:
    server = _Server(remote)
    yield server
    server.close()


@pytest.fixture
def secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The mounted Secret: a folder of files, group-readable as with fsGroup."""
    folder = tmp_path / "git-credentials"
    folder.mkdir()
    monkeypatch.setenv(CREDENTIALS_ENV, str(folder))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)  # the host's helpers stay out of it
    monkeypatch.delenv("GIT_SSH_COMMAND", raising=False)
    return folder


def _put(folder: Path, name: str, text: str) -> None:
    path = folder / name
    if path.exists():
        path.chmod(0o640)
    path.write_text(text)
    path.chmod(0o440)


def test_https_token_from_the_secret_folder(https: _Server, secret: Path, tmp_path) -> None:
    with pytest.raises(GitOpsError) as refused:
        RemoteHead.poll(https.url, "main", timeout=30)  # no token yet: fails, never prompts
    _put(secret, "token", TOKEN + "\n")
    head = RemoteHead.poll(https.url, "main", timeout=30)
    assert len(head) == 40
    checkout = GitCheckout(https.url, tmp_path / "checkout", "main")  # a fetch (POST) too
    assert checkout.sync() == head
    assert (tmp_path / "checkout" / "plans" / "p.yaml").is_file()
    assert TOKEN not in str(refused.value)

    # the Secret is rotated (kubelet swaps the files): the next call uses the new token
    https.token = "rotated-token"
    with pytest.raises(GitOpsError) as stale:
        RemoteHead.poll(https.url, "main", timeout=30)
    assert TOKEN not in str(stale.value)
    _put(secret, "username", "git")
    _put(secret, "password", "rotated-token")  # password wins over token, as basic-auth says
    assert RemoteHead.poll(https.url, "main", timeout=30) == head


def test_ssh_key_and_known_hosts_from_the_secret_folder(
    remote: Path, secret: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_bin, record = tmp_path / "bin", tmp_path / "ssh-calls.jsonl"
    fake_bin.mkdir()
    ssh = fake_bin / "ssh"
    ssh.write_text(
        f"#!{sys.executable}\n"
        "import json, os, stat, sys\n"
        "args = sys.argv[1:]\n"
        "key = args[args.index('-i') + 1]\n"
        "call = {'args': args, 'key_mode': stat.S_IMODE(os.stat(key).st_mode),\n"
        "        'key': open(key).read()}\n"
        f"open({str(record)!r}, 'a').write(json.dumps(call) + '\\n')\n"
        "os.execvp('sh', ['sh', '-c', args[-1]])\n"  # what sshd would run
    )
    ssh.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake_bin}:{os.environ['PATH']}")
    _put(secret, "ssh-privatekey", "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END")
    _put(secret, "known_hosts", "git.example.com ssh-ed25519 AAAAC3Nza\n")

    url = f"ssh://git@git.example.com{remote}"
    head = RemoteHead.poll(url, "main", timeout=30)
    assert len(head) == 40
    [call] = [json.loads(line) for line in record.read_text().splitlines()]
    args = call["args"]
    key = Path(args[args.index("-i") + 1])
    assert key.parent != secret  # a private copy: ssh refuses a group-readable key
    assert call["key_mode"] == 0o600
    assert stat.S_IMODE(key.parent.stat().st_mode) == 0o700
    assert call["key"].endswith("-----END\n")  # OpenSSH needs the final newline
    assert f"UserKnownHostsFile={secret / 'known_hosts'}" in args
    assert "StrictHostKeyChecking=yes" in args and "IdentitiesOnly=yes" in args
    assert "BatchMode=yes" in args


def test_nothing_changes_without_the_folder_and_a_given_ssh_command_wins(tmp_path) -> None:
    assert git_auth({}) == git_auth({CREDENTIALS_ENV: ""})
    assert not git_auth({}).config and not git_auth({}).env
    folder = tmp_path / "secret"
    folder.mkdir()
    (folder / "ssh-privatekey").write_text("key\n")
    own = {CREDENTIALS_ENV: str(folder), "GIT_SSH_COMMAND": "ssh -F /etc/my-ssh-config"}
    assert "GIT_SSH_COMMAND" not in git_auth(own).env  # GitPython passes the user's through
    assert not git_auth(own).config  # no token file: no credential helper either


def test_the_helper_answers_https_only_and_never_prints_a_broken_value(tmp_path) -> None:
    folder = tmp_path / "secret"
    folder.mkdir()
    (folder / "token").write_text(TOKEN)
    helper = [sys.executable, "-I", str(HELPER), str(folder), "get"]

    def ask(request: str) -> subprocess.CompletedProcess:
        return subprocess.run(helper, input=request, capture_output=True, text=True)

    out = ask("protocol=https\nhost=git.example.com\n\n")
    assert out.stdout == f"username=git\npassword={TOKEN}\n"
    assert ask("protocol=ssh\nhost=git.example.com\n\n").stdout == ""
    (folder / "token").write_text("two\nlines")
    bad = ask("protocol=https\nhost=git.example.com\n\n")
    assert bad.returncode == 1 and bad.stdout == "" and "two" not in bad.stderr
