"""A small OpenStack cloud for tests: real Keystone and Glance, our Nova/Cinder/Neutron.

Keystone (PyPI ``keystone`` 30) and Glance (``glance`` 33) run from a virtual environment of
their own (they pin libraries this project does not want), installed once and cached under
``~/.cache/mtv-gitops/openstack-peers-<hash of the pins>/`` (built in a temporary folder and
renamed, so two processes never see half of it). Both run on sqlite and a file store, served by
gunicorn on 127.0.0.1 behind TLS with a CA made for the run, so every client verifies
certificates as it would against a real cloud.

Nova, Cinder and Neutron cannot run here (a message bus, a scheduler, volume drivers); the
stand-ins of :mod:`testpeers.openstack.standins` answer the API paths the plugin uses,
registered in the real Keystone's catalog and checking its real tokens; Cinder's
``os-volume_upload_image`` puts the volume's bytes into the real Glance.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from testpeers.pki import Pki, make_pki
from testpeers.process import dies_with_parent

PINS = ("keystone==30.0.0", "glance==33.0.0", "gunicorn==27.0.1")
REGION = "RegionOne"
ADMIN_PASSWORD = "admin-secret"
SERVICE_PASSWORD = "service-secret"
USER = "migrator"
PASSWORD = "migrator-secret"
PROJECT = "migration"
START_TIMEOUT = 120.0


class PeersUnavailable(RuntimeError):
    """Keystone/Glance could not be installed or started here (the message says why)."""


def _cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mtv-gitops"


def peer_venv(log: Any = print) -> Path:
    """The virtual environment with Keystone, Glance and gunicorn, built once per pins."""
    key = hashlib.sha256("\n".join((sys.version, *PINS)).encode()).hexdigest()[:12]
    root = _cache_root()
    venv = root / f"openstack-peers-{key}"
    if (venv / "ready").exists():
        return venv
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".openstack-peers-{key}.{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    log(f"installing {', '.join(PINS)} into {venv} (about 1-2 minutes, once)")
    try:
        subprocess.run([sys.executable, "-m", "venv", str(tmp)], check=True)
        done = subprocess.run(
            [str(tmp / "bin" / "python"), "-m", "pip", "install", "-q", *PINS],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise PeersUnavailable(f"pip install {' '.join(PINS)} failed: {done.stderr[-2000:]}")
        (tmp / "ready").write_text("\n".join(PINS))
        try:
            tmp.rename(venv)
        except OSError:  # another process finished first: use its
            shutil.rmtree(tmp, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return venv


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Gunicorn:
    """One gunicorn server of the peer venv, in its own process group."""

    name: str
    port: int
    args: list[str]
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen | None = None

    def start(self, tls: Pki) -> None:
        cmd = [
            *self.args[:1],
            "-m",
            "gunicorn",
            "--bind",
            f"127.0.0.1:{self.port}",
            "--certfile",
            str(tls.cert),
            "--keyfile",
            str(tls.key),
            "--worker-class",
            "gthread",
            "--workers",
            "1",
            "--threads",
            "8",
            "--timeout",
            "600",
            *self.args[1:],
        ]
        out = self.log.open("ab")
        self.proc = subprocess.Popen(
            dies_with_parent(cmd),
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        out.close()

    def wait_ready(self, url: str, tls: Pki, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                raise PeersUnavailable(f"{self.name} exited: {self.log.read_text()[-3000:]}")
            try:
                urllib.request.urlopen(url, context=tls.context(), timeout=5).read()
                return
            except urllib.error.HTTPError:
                return  # it answers
            except OSError:
                if time.monotonic() > deadline:
                    raise PeersUnavailable(
                        f"{self.name} did not answer in {timeout:.0f}s: "
                        f"{self.log.read_text()[-3000:]}"
                    ) from None
                time.sleep(0.2)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, sig)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(20)


# Both services run oslo.db on sqlite with 8 threads. oslo.db begins every transaction
# DEFERRED: one that has read and then writes while another thread writes is refused at once
# with "database is locked" (sqlite will not wait on a lock upgrade, it could deadlock), so the
# URL's timeout never applies. Begun IMMEDIATE, a transaction waits for the write lock up to
# that timeout instead. A class-level listener runs before oslo.db's engine-level one, which
# then sees the transaction begun.
SQLITE_BEGIN_IMMEDIATE = """\
import sqlalchemy
from sqlalchemy.engine import Engine


@sqlalchemy.event.listens_for(Engine, "begin")
def _begin_immediate(conn):
    if conn.dialect.name == "sqlite" and "in_transaction" not in conn.info:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
        conn.info["in_transaction"] = True

"""

KEYSTONE_WSGI = (
    SQLITE_BEGIN_IMMEDIATE
    + """\
import sys

sys.argv = sys.argv[:1]  # keystone parses the command line: hide gunicorn's
from keystone.wsgi.api import application  # noqa: E402,F401
"""
)

GLANCE_WSGI = SQLITE_BEGIN_IMMEDIATE + "from glance.wsgi.api import application  # noqa: F401\n"


@dataclass
class Cloud:
    """Keystone and Glance running, the stand-ins registered; what tests connect with."""

    folder: Path
    tls: Pki
    keystone: Gunicorn
    glance: Gunicorn
    standins: Any = None
    project_id: str = ""
    user_id: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def auth_url(self) -> str:
        return f"https://127.0.0.1:{self.keystone.port}/v3"

    @property
    def glance_url(self) -> str:
        return f"https://127.0.0.1:{self.glance.port}"

    def secret(self, **extra: str) -> dict[str, str]:
        """An MTV OpenStack Provider Secret for the migrator user, CA included."""
        return {
            "username": USER,
            "password": PASSWORD,
            "domainName": "Default",
            "projectName": PROJECT,
            "regionName": REGION,
            "cacert": self.tls.ca_pem,
        } | extra

    def admin(self) -> Any:
        """An openstacksdk Connection as Keystone's bootstrap admin."""
        import openstack

        return openstack.connect(
            auth_url=self.auth_url,
            username="admin",
            password=ADMIN_PASSWORD,
            project_name="admin",
            user_domain_name="Default",
            project_domain_name="Default",
            region_name=REGION,
            cacert=str(self.tls.ca_cert),
        )

    def user(self) -> Any:
        """An openstacksdk Connection as the migrator (what the plugin sees, read directly)."""
        import openstack

        return openstack.connect(
            auth_url=self.auth_url,
            username=USER,
            password=PASSWORD,
            project_name=PROJECT,
            user_domain_name="Default",
            project_domain_name="Default",
            region_name=REGION,
            cacert=str(self.tls.ca_cert),
        )

    def restart_glance(self) -> None:
        """Stop Glance and start it again on the same port (a download in flight breaks)."""
        self.glance.stop(signal.SIGKILL)
        self.glance.start(self.tls)
        self.glance.wait_ready(self.glance_url + "/versions", self.tls)

    def stop(self) -> None:
        if self.standins is not None:
            self.standins.stop()
        self.glance.stop()
        self.keystone.stop()


def _manage_start(
    python: Path, module: str, conf: Path, *args: str, env: dict[str, str]
) -> subprocess.Popen:
    code = f"import sys; from {module} import main; sys.exit(main())"
    return subprocess.Popen(
        [str(python), "-c", code, "--config-file", str(conf), *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _manage_wait(proc: subprocess.Popen, what: str) -> None:
    _, err = proc.communicate()
    if proc.returncode != 0:
        raise PeersUnavailable(f"{what} failed: {err[-3000:]}")


def _manage(python: Path, module: str, conf: Path, *args: str, env: dict[str, str]) -> None:
    proc = _manage_start(python, module, conf, *args, env=env)
    _manage_wait(proc, f"{module} {' '.join(args)}")


def start_cloud(folder: Path, log: Any = print) -> Cloud:
    """Install (once), configure and start Keystone and Glance; register the stand-ins."""
    from testpeers.openstack.standins import Standins

    started = time.monotonic()
    venv = peer_venv(log)
    python = venv / "bin" / "python"
    folder.mkdir(parents=True, exist_ok=True)
    tls = make_pki(folder / "tls", "cloud")
    kport, gport = free_port(), free_port()
    auth_url = f"https://127.0.0.1:{kport}/v3"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env["PATH"] = f"{venv / 'bin'}:{env.get('PATH', '')}"

    # -- Glance --------------------------------------------------------------------------
    gdir = folder / "glance"
    gdir.mkdir()
    for sub in ("images", "staging", "tasks", "locks"):
        (gdir / sub).mkdir()
    shutil.copy(venv / "etc" / "glance" / "glance-api-paste.ini", gdir / "glance-api-paste.ini")
    gconf = gdir / "glance-api.conf"
    gconf.write_text(
        textwrap.dedent(f"""\
        [DEFAULT]
        use_stderr = true
        enabled_backends = fs:file
        [glance_store]
        default_backend = fs
        [fs]
        filesystem_store_datadir = {gdir}/images
        [os_glance_staging_store]
        filesystem_store_datadir = {gdir}/staging
        [os_glance_tasks_store]
        filesystem_store_datadir = {gdir}/tasks
        [database]
        # a busy machine holds sqlite's write lock past its default 5 s: wait, never fail
        # an image's upload with "database is locked"
        connection = sqlite:///{gdir}/glance.db?timeout=120
        [keystone_authtoken]
        www_authenticate_uri = {auth_url}
        auth_url = {auth_url}
        cafile = {tls.ca_cert}
        auth_type = password
        project_domain_name = Default
        user_domain_name = Default
        project_name = service
        username = glance
        password = {SERVICE_PASSWORD}
        [paste_deploy]
        flavor = keystone
        config_file = {gdir}/glance-api-paste.ini
        [oslo_concurrency]
        lock_path = {gdir}/locks
        """)
    )
    genv = env | {"OS_GLANCE_CONFIG_DIR": str(gdir)}
    # Glance's schema is made while Keystone is set up
    glance_sync = _manage_start(python, "glance.cmd.manage", gconf, "db_sync", env=genv)
    # -- Keystone ------------------------------------------------------------------------
    kdir = folder / "keystone"
    kdir.mkdir()
    kconf = kdir / "keystone.conf"
    kconf.write_text(
        textwrap.dedent(f"""\
        [DEFAULT]
        use_stderr = true
        [database]
        connection = sqlite:///{kdir}/keystone.db?timeout=120
        [token]
        provider = fernet
        [fernet_tokens]
        key_repository = {kdir}/fernet-keys
        [fernet_receipts]
        key_repository = {kdir}/fernet-keys
        [credential]
        key_repository = {kdir}/credential-keys
        """)
    )
    (kdir / "keystone_wsgi.py").write_text(KEYSTONE_WSGI)
    kenv = env | {"OS_KEYSTONE_CONFIG_FILES": str(kconf)}
    user, group = _owner()
    manage = "keystone.cmd.manage"
    owner = ("--keystone-user", user, "--keystone-group", group)
    steps = [
        (_manage_start(python, manage, kconf, *args, env=kenv), f"keystone-manage {args[0]}")
        for args in (("db_sync",), ("fernet_setup", *owner), ("credential_setup", *owner))
    ]
    for proc, what in steps:
        _manage_wait(proc, what)
    _manage(
        python,
        manage,
        kconf,
        "bootstrap",
        "--bootstrap-password",
        ADMIN_PASSWORD,
        "--bootstrap-admin-url",
        auth_url,
        "--bootstrap-internal-url",
        auth_url,
        "--bootstrap-public-url",
        auth_url,
        "--bootstrap-region-id",
        REGION,
        env=kenv,
    )
    _manage_wait(glance_sync, "glance-manage db_sync")
    keystone = Gunicorn(
        "keystone",
        kport,
        [str(python), "--chdir", str(kdir), "keystone_wsgi:application"],
        kenv,
        folder / "keystone.log",
    )
    (gdir / "glance_wsgi.py").write_text(GLANCE_WSGI)
    glance = Gunicorn(
        "glance",
        gport,
        [str(python), "--chdir", str(gdir), "glance_wsgi:application"],
        genv,
        folder / "glance.log",
    )
    cloud = Cloud(folder, tls, keystone, glance)
    try:
        keystone.start(tls)
        keystone.wait_ready(auth_url, tls)
        admin = cloud.admin()
        service = admin.identity.create_project(name="service", domain_id="default")
        glance_user = admin.identity.create_user(
            name="glance", password=SERVICE_PASSWORD, domain_id="default"
        )
        admin_role = admin.identity.find_role("admin")
        member_role = admin.identity.find_role("member")
        admin.identity.assign_project_role_to_user(service, glance_user, admin_role)
        project = admin.identity.create_project(name=PROJECT, domain_id="default")
        migrator = admin.identity.create_user(name=USER, password=PASSWORD, domain_id="default")
        admin.identity.assign_project_role_to_user(project, migrator, member_role)
        cloud.project_id, cloud.user_id = project.id, migrator.id
        _endpoint(admin, "glance", "image", cloud.glance_url)
        glance.start(tls)
        glance.wait_ready(cloud.glance_url + "/versions", tls)
        cloud.standins = Standins(cloud)
        cloud.standins.start()
        for name, kind, url in cloud.standins.catalog():
            _endpoint(admin, name, kind, url)
        admin.close()
    except BaseException:
        cloud.stop()
        raise
    log(f"Keystone and Glance up in {time.monotonic() - started:.0f}s")
    return cloud


def _endpoint(admin: Any, name: str, kind: str, url: str) -> None:
    service = admin.identity.create_service(name=name, type=kind)
    for interface in ("public", "internal", "admin"):
        admin.identity.create_endpoint(
            service_id=service.id, interface=interface, url=url, region_id=REGION
        )


def _owner() -> tuple[str, str]:
    import grp
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name


MiB = 1024 * 1024


def pattern(n: int, seed: int) -> bytes:
    """``n`` bytes nobody would mistake for zeros or for another seed's."""
    block = hashlib.sha256(f"mtv-gitops-{seed}".encode()).digest() * 128  # 4 KiB
    return (block * (n // len(block) + 1))[:n]


def seed(cloud: Cloud) -> dict[str, Any]:
    """The project's content the tests share: a flavor, two networks, two volume types, a
    running server "web" with a bootable root volume and a data volume (two NICs, data with
    holes between), a stopped server "db" with one volume."""
    s = cloud.standins
    fast = s.add_type("fast")
    flavor = s.add_flavor("m1.small", vcpus=2, ram_mb=2048, disk_gb=0)
    private, private_sub = s.add_network("private", "10.0.0.0/24")
    storage, storage_sub = s.add_network("storage", "10.1.0.0/24")
    default = s.add_security_group("default")
    root = s.add_volume(
        "web-root",
        1,
        [(0, pattern(MiB, 1)), (700 * MiB + 123, pattern(70_000, 2))],
        bootable=True,
    )
    data = s.add_volume("web-data", 1, [(5 * MiB, pattern(3 * MiB, 3))], volume_type="fast")
    web = s.add_server(
        "web",
        flavor,
        [root, data],
        [
            (private, private_sub, "10.0.0.10", "fa:16:3e:00:00:01"),
            (storage, storage_sub, "10.1.0.10", "fa:16:3e:00:00:02"),
        ],
        [default],
    )
    db_root = s.add_volume("db-root", 1, [(GIB - 4096, pattern(4096, 4))], bootable=True)
    db = s.add_server(
        "db",
        flavor,
        [db_root],
        [(private, private_sub, "10.0.0.11", "fa:16:3e:00:00:03")],
        [default],
        status="SHUTOFF",
    )
    return {
        "web": web,
        "db": db,
        "flavor": flavor,
        "fast": fast,
        "networks": [private, storage],
        "volumes": {"web": [root, data], "db": [db_root]},
    }


GIB = 1024**3


def volume_bytes(cloud: Cloud, volume_id: str) -> bytes:
    return cloud.standins.path(volume_id).read_bytes()


def openstack_cloud_fixture(tmp_path_factory: Any) -> Any:
    """Body of the session fixture ``openstack_cloud`` (tests/conftest.py): started once,
    seeded, stopped at the end; a test fails with the reason when it cannot start."""
    import pytest

    if shutil.which("openssl") is None or shutil.which("qemu-img") is None:
        pytest.fail("openssl / qemu-img not installed (make system-deps)", pytrace=False)
    try:
        cloud = start_cloud(tmp_path_factory.mktemp("openstack-cloud"))
    except PeersUnavailable as exc:
        pytest.fail(f"Keystone/Glance could not start: {exc}", pytrace=False)
    try:
        cloud.extra["seed"] = seed(cloud)
        yield cloud
    finally:
        cloud.stop()
