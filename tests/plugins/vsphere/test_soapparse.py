"""lxml's reading of PropertyCollector answers gives exactly the records pyvmomi's deserializer
gives (made plain), on hand-written answers with odd values and on govmomi's simulator: full
reads, incremental passes, extraConfig, snapshots, unicode names; faults are raised as pyvmomi
raises them. Answers are read as they arrive: a local HTTP server sends them in awkward pieces
(split inside characters, entities and tags; chunked, by length, compressed), cut short, broken
and as faults."""

from __future__ import annotations

import gzip
import io
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.client import HTTPException
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from plugins.vsphere import session
from plugins.vsphere.inventory import pages, read_all, retrieve
from plugins.vsphere.soapparse import (
    answer,
    ask,
    first_ready,
    invoke,
    parse_response,
    plain,
    receive,
)
from plugins.vsphere.updates import InventoryCache
from reconciler.sources import sha1_fingerprint
from tests.support.vsphere import Simulator, start_simulator

ENVELOPE = """<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenc="http://schemas.xmlsoap.org/soap/encoding/"
 xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"
 xmlns:xsd="http://www.w3.org/2001/XMLSchema"
 xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<soapenv:Body>{}</soapenv:Body>
</soapenv:Envelope>"""

RETRIEVED = """<RetrievePropertiesExResponse xmlns="urn:vim25"><returnval>
<token>t-1</token>
<objects>
<obj type="VirtualMachine">vm-1</obj>
<propSet><name>name</name><val xsi:type="xsd:string">Ünïcode ☃ &amp; &lt;b&gt; 名前</val></propSet>
<propSet><name>config.extraConfig</name><val xsi:type="ArrayOfOptionValue">
 <OptionValue xsi:type="OptionValue"><key>scsi0:0.ctkEnabled</key>
 <value xsi:type="xsd:string">TRUE</value></OptionValue></val></propSet>
<propSet><name>datastore</name><val xsi:type="ArrayOfManagedObjectReference">
 <ManagedObjectReference type="Datastore"
  xsi:type="ManagedObjectReference">ds-1</ManagedObjectReference>
</val></propSet>
<propSet><name>config.template</name><val xsi:type="xsd:boolean">false</val></propSet>
<propSet><name>config.hardware.memoryMB</name><val xsi:type="xsd:int">2048</val></propSet>
<propSet><name>summary.storage.committed</name><val xsi:type="xsd:long">12345678901</val></propSet>
<propSet><name>summary.quickStats.overallCpuDemand</name>
 <val xsi:type="xsd:short">-3</val></propSet>
<propSet><name>runtime.bootTime</name>
 <val xsi:type="xsd:dateTime">2026-12-03T13:00:00.5Z</val></propSet>
<propSet><name>runtime.powerState</name>
 <val xsi:type="VirtualMachinePowerState">poweredOff</val></propSet>
<propSet><name>guest.ipAddress</name><val xsi:type="xsd:string"></val></propSet>
<propSet><name>config.tools.pendingCustomization</name>
 <val xsi:type="xsd:base64Binary">AAEC/w==</val></propSet>
<propSet><name>snapshot</name><val xsi:type="VirtualMachineSnapshotInfo">
 <currentSnapshot type="VirtualMachineSnapshot">snapshot-2</currentSnapshot>
 <rootSnapshotList><snapshot type="VirtualMachineSnapshot">snapshot-2</snapshot>
 <vm type="VirtualMachine">vm-1</vm><name>only one</name><!-- a comment -->
 <createTime>2026-12-03T12:00:00Z</createTime><state>poweredOff</state><quiesced>0</quiesced>
 <id>1</id></rootSnapshotList></val></propSet>
<propSet><name>config.hardware.device</name><val xsi:type="ArrayOfVirtualDevice">
 <VirtualDevice xsi:type="VirtualDisk"><key>2000</key>
 <deviceInfo><label>Hard disk 1</label><summary>1 GB</summary></deviceInfo>
 <backing xsi:type="VirtualDiskFlatVer2BackingInfo"><fileName>[ds] é/é.vmdk</fileName>
 <datastore type="Datastore">ds-1</datastore><diskMode>persistent</diskMode>
 <thinProvisioned>true</thinProvisioned></backing>
 <controllerKey>1000</controllerKey><unitNumber>0</unitNumber><capacityInKB>1048576</capacityInKB>
 </VirtualDevice>
 <VirtualDevice xsi:type="VirtualVmxnet3"><key>4000</key>
 <backing xsi:type="VirtualEthernetCardDistributedVirtualPortBackingInfo"><port>
 <switchUuid>50 1a</switchUuid><portgroupKey>dvportgroup-1</portgroupKey></port></backing>
 <macAddress>00:50:56:00:00:01</macAddress></VirtualDevice>
</val></propSet>
<missingSet><path>guest.net</path><fault><fault xsi:type="NoPermission">
 <object type="VirtualMachine">vm-1</object><privilegeId>System.Read</privilegeId></fault>
 <localizedMessage>no</localizedMessage></fault></missingSet>
</objects>
<objects><obj type="VirtualMachine">vm-2</obj></objects>
</returnval></RetrievePropertiesExResponse>"""

UPDATES = """<WaitForUpdatesExResponse xmlns="urn:vim25"><returnval>
<version>7</version>
<filterSet><filter type="PropertyFilter">filter-1</filter>
<objectSet><kind>modify</kind><obj type="VirtualMachine">vm-1</obj>
<changeSet><name>name</name><op>assign</op><val xsi:type="xsd:string">ü</val></changeSet>
<changeSet><name>snapshot</name><op>remove</op></changeSet>
<changeSet><name>config.hardware.device</name><op>assign</op>
<val xsi:type="ArrayOfVirtualDevice"/></changeSet>
<missingSet><path>guest.ipAddress</path><fault><fault xsi:type="NotAuthenticated">
<object type="VirtualMachine">vm-1</object><privilegeId>System.View</privilegeId></fault>
</fault></missingSet>
</objectSet>
<objectSet><kind>leave</kind><obj type="VirtualMachine">vm-2</obj></objectSet>
</filterSet>
<truncated>true</truncated>
</returnval></WaitForUpdatesExResponse>"""


def reference(body: bytes, result_type: Any) -> Any:
    """What pyvmomi's own deserializer reads from ``body``, made plain."""
    from pyVmomi import SoapAdapter

    return plain(
        SoapAdapter.SoapResponseDeserializer(None).Deserialize(io.BytesIO(body), result_type)
    )


def result_type(method: str) -> Any:
    from pyVmomi import vmodl

    return vmodl.query.PropertyCollector._GetMethodInfo(method).result


@pytest.mark.parametrize(
    ("method", "answer"),
    [
        ("RetrievePropertiesEx", RETRIEVED),
        ("WaitForUpdatesEx", UPDATES),
        ("WaitForUpdatesEx", '<WaitForUpdatesExResponse xmlns="urn:vim25"/>'),
    ],
)
def test_odd_answers_read_as_pyvmomi_reads_them(method: str, answer: str) -> None:
    body = ENVELOPE.format(answer).encode()
    got = parse_response(None, body, result_type(method))
    assert got == reference(body, result_type(method))


def test_the_records_are_plain_and_typed() -> None:
    from datetime import datetime

    body = ENVELOPE.format(RETRIEVED).encode()
    res = parse_response(None, body, result_type("RetrievePropertiesEx"))
    vm = {p["name"]: p["val"] for p in res["objects"][0]["propSet"]}
    assert vm["name"] == "Ünïcode ☃ & <b> 名前" and vm["guest.ipAddress"] == ""
    assert vm["config.extraConfig"] == [
        {"_type": "OptionValue", "key": "scsi0:0.ctkEnabled", "value": "TRUE"}
    ]
    assert [d._moId for d in vm["datastore"]] == ["ds-1"]
    assert vm["config.template"] is False and type(vm["config.hardware.memoryMB"]) is int
    assert vm["summary.storage.committed"] == 12345678901
    assert isinstance(vm["runtime.bootTime"], datetime)
    assert type(vm["runtime.powerState"]) is str and vm["runtime.powerState"] == "poweredOff"
    assert vm["config.tools.pendingCustomization"] == b"\x00\x01\x02\xff"
    (root,) = vm["snapshot"]["rootSnapshotList"]
    assert root["name"] == "only one" and root["quiesced"] is False
    assert "childSnapshotList" not in root  # an empty array is absent, as an unset field
    disk, nic = vm["config.hardware.device"]
    assert disk["backing"]["fileName"] == "[ds] é/é.vmdk" and disk["capacityInKB"] == 1048576
    assert nic["backing"]["port"]["portgroupKey"] == "dvportgroup-1"
    assert res["objects"][0]["missingSet"][0]["fault"]["msg"] == "no"  # as pyvmomi makes it
    assert res["objects"][1] == {"_type": "ObjectContent", "obj": res["objects"][1]["obj"]}


FAULT = """<soapenv:Fault><faultcode>ServerFaultCode</faultcode>
<faultstring>the collector version is not valid</faultstring>
<detail><{name}Fault xmlns="urn:vim25" xsi:type="{name}"/></detail></soapenv:Fault>"""


@pytest.mark.parametrize(
    ("name", "fault"),
    [
        ("InvalidCollectorVersion", "vmodl.query.InvalidCollectorVersion"),
        ("NotAuthenticated", "vim.fault.NotAuthenticated"),
        ("RequestCanceled", "vmodl.fault.RequestCanceled"),
    ],
)
def test_a_fault_answer_is_raised_as_pyvmomi_raises_it(name: str, fault: str) -> None:
    """Faults the simulator does not send (it has no collector versions to refuse)."""
    from pyVmomi import VmomiSupport

    body = ENVELOPE.format(FAULT.format(name=name)).encode()
    with pytest.raises(VmomiSupport.GetVmodlType(fault)) as raised:
        answer(None, 500, body, result_type("WaitForUpdatesEx"))
    assert raised.value.msg == "the collector version is not valid"


# -- on govmomi's simulator --------------------------------------------------------------


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    """A simulator of this module's own: the tests rename, reconfigure and snapshot VMs."""
    s = start_simulator(hosts=2, vms=3, datastores=2, clusters=1, password="soap-Secret-3")
    yield s
    s.stop()


def login(sim: Simulator) -> Any:
    return session.connect(sim.url, sim.secret(thumbprint=sha1_fingerprint(sim.host, sim.port)))


@pytest.fixture(scope="module")
def si(sim: Simulator) -> Any:
    return login(sim)


def wait(task: Any) -> Any:
    from pyVim.task import WaitForTask

    WaitForTask(task)
    return task.info.result


def every_vm_property(si: Any, lxml: bool) -> dict[str, dict]:
    """Whole ``config``, ``summary``, ``guest`` and ``runtime`` of every VM: nearly every type
    of value vSphere has (dates, enums, longs, nested arrays, extraConfig, references)."""
    from pyVmomi import vim

    from plugins.vsphere.inventory import Kind, view_spec

    content = si.RetrieveContent()
    view = content.viewManager.CreateContainerView(content.rootFolder, [vim.VirtualMachine], True)
    paths = ("config", "summary", "guest", "runtime", "snapshot", "datastore", "network", "name")
    kind = Kind("vms", "VirtualMachine", paths)
    try:
        return retrieve(content.propertyCollector, view_spec(view, kind), page=2, lxml=lxml)
    finally:
        view.Destroy()


@pytest.mark.integration
def test_a_full_read_equals_pyvmomis_on_the_simulator(si: Any) -> None:
    assert read_all(si) == read_all(si, lxml=False)
    with InventoryCache(si) as fast, InventoryCache(si, lxml=False) as slow:
        assert fast.snapshot() == slow.snapshot()
    every = every_vm_property(si, lxml=True)
    assert len(every) == 6 and every == every_vm_property(si, lxml=False)


@pytest.mark.integration
def test_odd_values_and_changes_read_alike_both_ways(si: Any) -> None:
    from pyVmomi import vim

    with InventoryCache(si) as fast, InventoryCache(si, lxml=False) as slow:
        first = fast.snapshot()
        assert first == slow.snapshot()
        a, b = (first.vms[m]["_obj"] for m in sorted(first.vms)[:2])
        extra = [
            vim.option.OptionValue(key="scsi0:0.ctkEnabled", value="TRUE"),
            vim.option.OptionValue(key="guestinfo.note", value="ünï <&> ☃"),
        ]
        wait(a.Rename_Task("Ünïcode ☃ & <b> 名前"))
        wait(a.ReconfigVM_Task(vim.vm.ConfigSpec(extraConfig=extra)))
        wait(b.CreateSnapshot_Task(name="one", description="", memory=False, quiesce=False))
        second = fast.snapshot()
        assert not fast.last.full and fast.last.changed >= 2
        assert second == slow.snapshot()
        # not compared with a fresh read: the simulator sets the disks' changeId at a snapshot
        # without reporting it, a change no incremental reader can see
        assert read_all(si) == read_all(si, lxml=False)
        assert second.vms[a._moId]["name"] == "Ünïcode ☃ & <b> 名前"
        (root,) = second.vms[b._moId]["snapshot"]["rootSnapshotList"]  # an array of one
        assert root["name"] == "one"
    every = every_vm_property(si, lxml=True)
    assert every == every_vm_property(si, lxml=False)
    options = {o["key"]: o["value"] for o in every[a._moId]["config"]["extraConfig"]}
    assert options["guestinfo.note"] == "ünï <&> ☃"


@pytest.mark.integration
@pytest.mark.parametrize("lxml", [True, False])
def test_faults_are_raised_as_pyvmomi_raises_them(sim: Simulator, lxml: bool) -> None:
    from pyVmomi import vim, vmodl

    mine = login(sim)
    content = mine.RetrieveContent()
    collector = content.propertyCollector.CreatePropertyCollector()
    options = vmodl.query.PropertyCollector.WaitOptions(maxWaitSeconds=0)
    assert not invoke(collector, "WaitForUpdatesEx", "", options, lxml=lxml).get("filterSet")
    collector.Destroy()
    with pytest.raises(vmodl.fault.ManagedObjectNotFound):
        invoke(collector, "WaitForUpdatesEx", "", options, lxml=lxml)
    with pytest.raises(vmodl.fault.MethodNotFound):  # the simulator never pages
        invoke(content.propertyCollector, "ContinueRetrievePropertiesEx", "no-such", lxml=lxml)
    content.sessionManager.Logout()
    with pytest.raises(vim.fault.NotAuthenticated):
        invoke(collector, "WaitForUpdatesEx", "", options, lxml=lxml)


# -- an answer read as it arrives, over a real HTTP connection ------------------------------


@dataclass
class Reply:
    """What the test server sends for the next call: ``body`` cut in pieces of ``sizes`` (in
    turn); with ``cut``, the connection is closed halfway through (an answer cut short)."""

    body: bytes
    sizes: tuple[int, ...] = (65536,)
    status: int = 200
    framing: str = "chunked"  # "chunked", "length" or "gzip" (chunked, compressed)
    cut: bool = False


class Answers(ThreadingHTTPServer):
    """A SOAP endpoint that answers each POST with the next :class:`Reply`, each piece written
    (and, chunked, framed) on its own so the reader gets the body in those pieces."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.replies: list[Reply] = []
        self.requests: list[bytes] = []  # the SOAP requests, in the order they came
        self.arrived = threading.Condition()

    def wait_for(self, n: int) -> bool:
        """Whether ``n`` requests have come (waits for them, 30 s at most)."""
        with self.arrived:
            return self.arrived.wait_for(lambda: len(self.requests) >= n, timeout=30)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Answers

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        request = self.rfile.read(int(self.headers["Content-Length"]))
        with self.server.arrived:
            self.server.requests.append(request)
            self.server.arrived.notify_all()
        reply = self.server.replies.pop(0)
        body = gzip.compress(reply.body) if reply.framing == "gzip" else reply.body
        self.send_response(reply.status)
        self.send_header("Content-Type", "text/xml; charset=utf-8")
        if reply.framing == "length":
            self.send_header("Content-Length", str(len(body)))
        else:
            self.send_header("Transfer-Encoding", "chunked")
        if reply.framing == "gzip":
            self.send_header("Content-Encoding", "gzip")
        self.end_headers()
        end = len(body) // 2 if reply.cut else len(body)
        at, turn = 0, 0
        while at < end:
            piece = body[at : min(end, at + reply.sizes[turn % len(reply.sizes)])]
            at, turn = at + len(piece), turn + 1
            try:
                if reply.framing == "length":
                    self.wfile.write(piece)
                else:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                self.wfile.flush()
            except ConnectionError:  # the reader gave up on a broken answer
                self.close_connection = True
                return
        if reply.cut:
            self.close_connection = True
            return
        if reply.framing != "length":
            self.wfile.write(b"0\r\n\r\n")


@pytest.fixture
def answers() -> Iterator[Answers]:
    server = Answers()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def collector_on(server: Answers) -> Any:
    """A PropertyCollector reference whose calls go, over plain HTTP, to ``server``."""
    from pyVmomi import SoapAdapter, VmomiSupport, vmodl

    stub = SoapAdapter.SoapStubAdapter(
        host="127.0.0.1",
        port=-server.server_address[1],  # pyvmomi: a negative port is plain HTTP
        version=VmomiSupport.newestVersions.GetName("vim"),
    )
    return vmodl.query.PropertyCollector("propertyCollector", stub)


def some_call() -> tuple[list[Any], Any]:
    """RetrievePropertiesEx's arguments (the test server answers whatever it is asked)."""
    from pyVmomi import vim, vmodl

    pc = vmodl.query.PropertyCollector
    return [
        pc.FilterSpec(
            objectSet=[pc.ObjectSpec(obj=vim.VirtualMachine("vm-1"))],
            propSet=[pc.PropertySpec(type=vim.VirtualMachine, pathSet=["name"])],
        )
    ], pc.RetrieveOptions()


def wait_options() -> Any:
    from pyVmomi import vmodl

    return vmodl.query.PropertyCollector.WaitOptions(maxWaitSeconds=0)


AWKWARD = [
    (1,),  # every multi-byte character, entity and tag split
    (2, 3, 5, 7, 11, 13),
    (4093,),
]


@pytest.mark.parametrize("framing", ["chunked", "length", "gzip"])
@pytest.mark.parametrize("sizes", AWKWARD, ids=["1", "primes", "4093"])
def test_an_answer_read_as_it_arrives_equals_pyvmomis(
    answers: Answers, framing: str, sizes: tuple[int, ...]
) -> None:
    collector = collector_on(answers)
    retrieved, updates = (ENVELOPE.format(a).encode() for a in (RETRIEVED, UPDATES))
    answers.replies += [Reply(retrieved, sizes, framing=framing), Reply(updates, sizes)]
    got = invoke(collector, "RetrievePropertiesEx", *some_call())
    assert got == reference(retrieved, result_type("RetrievePropertiesEx"))
    assert got["objects"][0]["propSet"][0]["val"] == "Ünïcode ☃ & <b> 名前"
    # the same connection carries the next call
    got = invoke(collector, "WaitForUpdatesEx", "6", wait_options())
    assert got == reference(updates, result_type("WaitForUpdatesEx"))


@pytest.mark.parametrize("framing", ["chunked", "length", "gzip"])
def test_an_answer_cut_short_raises_and_the_next_call_works(answers: Answers, framing: str) -> None:
    collector = collector_on(answers)
    body = ENVELOPE.format(RETRIEVED).encode()
    answers.replies += [
        Reply(body, (7,), framing=framing, cut=True),
        Reply(body, (7,), framing=framing),
    ]
    with pytest.raises(HTTPException):  # IncompleteRead, as resp.read() raises it
        invoke(collector, "RetrievePropertiesEx", *some_call())
    assert invoke(collector, "RetrievePropertiesEx", *some_call()) == reference(
        body, result_type("RetrievePropertiesEx")
    )


def test_a_fault_arriving_in_pieces_is_raised_as_pyvmomi_raises_it(answers: Answers) -> None:
    from pyVmomi import vim

    collector = collector_on(answers)
    fault = ENVELOPE.format(FAULT.format(name="NotAuthenticated")).encode()
    answers.replies.append(Reply(fault, (1, 2, 3), status=500))
    with pytest.raises(vim.fault.NotAuthenticated) as raised:
        invoke(collector, "WaitForUpdatesEx", "", wait_options())
    assert raised.value.msg == "the collector version is not valid"


def test_an_answer_broken_mid_stream_raises_and_the_next_call_works(answers: Answers) -> None:
    from lxml import etree

    collector = collector_on(answers)
    body = ENVELOPE.format(UPDATES).encode()
    broken = body[: len(body) // 2] + b"</returnval>&nope;<" + body[len(body) // 2 :]
    answers.replies += [Reply(broken, (5,)), Reply(body, (5,))]
    with pytest.raises(etree.XMLSyntaxError):
        invoke(collector, "WaitForUpdatesEx", "6", wait_options())
    got = invoke(collector, "WaitForUpdatesEx", "6", wait_options())
    assert got == reference(body, result_type("WaitForUpdatesEx"))


def page(method: str, token: str | None, *moids: str) -> bytes:
    """One page of a RetrievePropertiesEx answer: each VM's name (and a unicode one)."""
    objects = "".join(
        f'<objects><obj type="VirtualMachine">{m}</obj><propSet><name>name</name>'
        f'<val xsi:type="xsd:string">{m} ☃ &amp;</val></propSet></objects>'
        for m in moids
    )
    token_el = f"<token>{token}</token>" if token else ""
    answer = f'<{method}Response xmlns="urn:vim25"><returnval>{token_el}{objects}</returnval>'
    return ENVELOPE.format(answer + f"</{method}Response>").encode()


def test_pages_are_asked_for_in_turn_with_their_tokens(answers: Answers) -> None:
    collector = collector_on(answers)
    bodies = [
        page("RetrievePropertiesEx", "t-1", "vm-1", "vm-2"),
        page("ContinueRetrievePropertiesEx", "t-2", "vm-3"),
        page("ContinueRetrievePropertiesEx", None, "vm-4", "vm-5"),
    ]
    answers.replies += [Reply(b, (3, 1000)) for b in bodies]
    spec, _ = some_call()
    got = retrieve(collector, spec[0], page=2)
    assert {m: p["name"] for m, p in got.items()} == {f"vm-{i}": f"vm-{i} ☃ &" for i in range(1, 6)}
    assert all(p["_obj"]._moId == m for m, p in got.items())
    first, *rest = answers.requests
    assert b"<RetrievePropertiesEx " in first and b"<maxObjects>2</maxObjects>" in first
    assert [b"ContinueRetrievePropertiesEx" in r for r in rest] == [True, True]
    assert [b">t-1</token>" in rest[0], b">t-2</token>" in rest[1]] == [True, True]


def test_the_next_page_is_asked_for_before_this_one_is_used(answers: Answers) -> None:
    from pyVmomi import vmodl

    collector = collector_on(answers)
    answers.replies += [
        Reply(page("RetrievePropertiesEx", "t-1", "vm-1")),
        Reply(page("ContinueRetrievePropertiesEx", None, "vm-2")),
    ]
    spec, _ = some_call()
    options = vmodl.query.PropertyCollector.RetrieveOptions(maxObjects=1)
    answered = pages(collector, spec[0], options)
    first = next(answered)
    assert answers.wait_for(2)  # asked for while the first page is still in our hands
    assert [o["obj"]._moId for o in first["objects"]] == ["vm-1"]
    assert [o["obj"]._moId for p in answered for o in p["objects"]] == ["vm-2"]


def test_a_fault_on_a_later_page_is_raised_as_pyvmomi_raises_it(answers: Answers) -> None:
    from pyVmomi import vmodl

    collector = collector_on(answers)
    gone = FAULT.format(name="ManagedObjectNotFound").replace(
        'xsi:type="ManagedObjectNotFound"/>',
        'xsi:type="ManagedObjectNotFound"><obj type="VirtualMachine">vm-3</obj>'
        "</ManagedObjectNotFoundFault>",
    )
    answers.replies += [
        Reply(page("RetrievePropertiesEx", "t-1", "vm-1")),
        Reply(ENVELOPE.format(gone).encode(), (2, 3), status=500),
    ]
    spec, _ = some_call()
    with pytest.raises(vmodl.fault.ManagedObjectNotFound):
        retrieve(collector, spec[0], page=1)
    assert len(answers.requests) == 2


@pytest.mark.integration
def test_read_all_in_one_retrieval_equals_one_retrieval_per_kind(si: Any) -> None:
    """Every kind's table from the one view of all kinds is what its own view reads
    (distributed port groups among the networks, no object in two tables)."""
    from pyVmomi import vim

    from plugins.vsphere.inventory import KINDS, Snapshot, collect

    whole = read_all(si)
    assert whole == Snapshot(**{k.field: collect(si, k) for k in KINDS})
    assert len(whole.vms) == 6 and whole.hosts and whole.clusters and whole.folders
    networks = [p["_obj"] for p in whole.networks.values()]
    assert any(isinstance(n, vim.dvs.DistributedVirtualPortgroup) for n in networks)


def test_a_caller_that_stops_reading_gives_the_asked_page_up(answers: Answers) -> None:
    """The next page travels while the caller holds this one; a caller that stops there
    leaves no half-read answer in the connection pool: the next call gets a clean one."""
    from pyVmomi import vmodl

    collector = collector_on(answers)
    answers.replies += [
        Reply(page("RetrievePropertiesEx", "t-1", "vm-1")),
        Reply(page("ContinueRetrievePropertiesEx", None, "vm-2")),
        Reply(page("RetrievePropertiesEx", None, "vm-3")),
    ]
    spec, _ = some_call()
    options = vmodl.query.PropertyCollector.RetrieveOptions(maxObjects=1)
    answered = pages(collector, spec[0], options)
    next(answered)
    assert answers.wait_for(2)
    answered.close()
    again = retrieve(collector, spec[0])
    assert list(again) == ["vm-3"]


def test_calls_asked_side_by_side_are_read_as_they_come(answers: Answers) -> None:
    """Two calls in flight at once on two connections, each read when its answer is there;
    both connections go back to the pool and carry the next call."""
    collector = collector_on(answers)
    answers.replies += [
        Reply(page("RetrievePropertiesEx", None, f"vm-{i}"), (7, 1000)) for i in (1, 2, 3)
    ]
    waiting = [ask(collector, "RetrievePropertiesEx", *some_call()) for _ in range(2)]
    assert answers.wait_for(2) and waiting[0].conn is not waiting[1].conn
    read = []
    while waiting:
        call = first_ready(waiting)
        waiting.remove(call)
        read += [o["obj"]._moId for o in receive(call).records()["objects"]]
    assert sorted(read) == ["vm-1", "vm-2"]
    got = invoke(collector, "RetrievePropertiesEx", *some_call())
    assert [o["obj"]._moId for o in got["objects"]] == ["vm-3"]
