"""A KubeVirt destination whose certificate is not trusted says which Provider and what fixes it."""

from __future__ import annotations

import http.server
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.targets.base import TargetError
from reconciler.targets.destination import destination_target
from reconciler.targets.local import LocalTarget


class _Api(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the http.server name
        body = b'{"kind": "Namespace", "metadata": {"name": "x"}}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class _CountingServer(http.server.ThreadingHTTPServer):
    """Counts the connections clients open (a TLS handshake each, failed or not)."""

    connections = 0

    def get_request(self):
        type(self).connections += 1
        return super().get_request()


@pytest.fixture
def self_signed_api(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """An HTTPS server on 127.0.0.1 with a certificate of its own making; (url, its PEM)."""
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    _CountingServer.connections = 0
    server = _CountingServer(("127.0.0.1", 0), _Api)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", cert.read_text()
    finally:
        server.shutdown()
        server.server_close()


def _target(url: str, secret: dict[str, str], tmp_path: Path):
    return destination_target(
        "openshift-mtv/remote-cluster",
        url,
        "openshift-mtv/remote-token",
        {"token": "sa-token", **secret},
        {},
        LocalTarget(tmp_path / "cluster"),
        environ={},
    )


def test_an_untrusted_certificate_names_the_provider_and_the_fix(self_signed_api, tmp_path) -> None:
    url, _ = self_signed_api
    with pytest.raises(TargetError) as err:
        _target(url, {}, tmp_path).api.get("/api/v1/namespaces/x")
    text = str(err.value)
    assert "destination Provider openshift-mtv/remote-cluster" in text
    assert "not trusted" in text
    assert "'cacert'" in text and 'insecureSkipVerify: "true"' in text
    assert "sa-token" not in text
    assert "HTTPSConnectionPool" not in text and "Max retries" not in text  # urllib3's raw text
    assert _CountingServer.connections == 1  # refused at once: no retry of an untrusted server


def test_the_secrets_cacert_makes_it_trusted(self_signed_api, tmp_path) -> None:
    url, pem = self_signed_api
    got = _target(url, {"cacert": pem}, tmp_path).api.get("/api/v1/namespaces/x")
    assert got["metadata"]["name"] == "x"
