"""Benchmark: parsing PropertyCollector answers, pyvmomi's deserializer against lxml.

Run ``python bench/bench_vsphere_parse.py [--vms-per-pool 500 --runs 5]`` (lxml comes with
the ``vsphere`` extra).  It starts govmomi's
vCenter simulator (the tests' peer) with two resource pools of ``--vms-per-pool`` VMs, asks once
for every VM's inventory properties in one RetrievePropertiesEx page (``inventory.VM_PROPS``)
and keeps the SOAP answer's bytes.  Then, in this process only (no network), it parses those
same bytes ``--runs`` times each way, in turns:
  (a) pyvmomi's ``SoapResponseDeserializer`` (what the inventory uses today: pyvmomi objects)
  (b) ``lxml.etree.fromstring`` and a walk of the tree into plain values (dicts by property)
  (c) ``lxml.etree.iterparse`` streaming one ``objects`` element at a time, cleared after use
  (d) lxml's tree turned into the same pyvmomi objects as (a) (``vsphere_soapparse.py``: the
      same classes and values, checked by serializing both answers and comparing the text)
  (e) the plugin's reader (``plugins/vsphere/soapparse.py``): lxml's tree into plain records,
      checked equal to (a)'s objects made plain
and prints the median wall and CPU seconds of each, the ratios (a)/(b) and (a)/(c) (>1: lxml
is faster), and whether the three agree on what the inventory reads of each VM (name, CPUs,
memory, power state, host, the devices' keys and types).

This measures the parse alone, the part of a full inventory read that is this process's CPU;
the plugin reads with (e).
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from plugins.vsphere import session  # noqa: E402
from plugins.vsphere.inventory import KINDS, view_spec  # noqa: E402
from plugins.vsphere.simulator import start_simulator  # noqa: E402
from plugins.vsphere.soapparse import parse_response  # noqa: E402
from plugins.vsphere.soapparse import plain as made_plain  # noqa: E402

VIM = "{urn:vim25}"
XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"


def capture(si: Any) -> tuple[bytes, Any]:
    """The raw SOAP answer to one RetrievePropertiesEx of every VM, and its result type."""
    from pyVmomi import SoapAdapter, vmodl

    kept: list[bytes] = []
    original = SoapAdapter.SoapResponseDeserializer.Deserialize

    def tee(self: Any, response: Any, result_type: Any, nsMap: Any = None) -> Any:  # noqa: N803
        body = response.read()
        kept.append(body)
        return original(self, io.BytesIO(body), result_type, nsMap)

    content = si.RetrieveContent()
    vm_kind = next(k for k in KINDS if k.field == "vms")
    view = content.viewManager.CreateContainerView(content.rootFolder, [vm_kind.vim_class()], True)
    SoapAdapter.SoapResponseDeserializer.Deserialize = tee
    try:
        content.propertyCollector.RetrievePropertiesEx(
            [view_spec(view, vm_kind)],
            vmodl.query.PropertyCollector.RetrieveOptions(maxObjects=100_000),
        )
    finally:
        SoapAdapter.SoapResponseDeserializer.Deserialize = original
        view.Destroy()
    method = vmodl.query.PropertyCollector._GetMethodInfo("RetrievePropertiesEx")
    return kept[-1], method.result


def by_pyvmomi(stub: Any, body: bytes, result_type: Any) -> dict[str, dict[str, Any]]:
    from pyVmomi import SoapAdapter

    res = SoapAdapter.SoapResponseDeserializer(stub).Deserialize(io.BytesIO(body), result_type)
    out: dict[str, dict[str, Any]] = {}
    for obj in res.objects:
        props = {p.name: p.val for p in obj.propSet}
        out[obj.obj._moId] = {
            "name": props.get("name"),
            "cpus": props.get("config.hardware.numCPU"),
            "memory": props.get("config.hardware.memoryMB"),
            "power": props.get("runtime.powerState"),
            "host": getattr(props.get("runtime.host"), "_moId", None),
            "devices": [
                (d.key, type(d)._wsdlName) for d in props.get("config.hardware.device") or []
            ],
        }
    return out


def plain(el: Any) -> Any:
    """An lxml element as a plain value: text for leaves, dicts of children otherwise (repeated
    children become lists), with ``_type`` from xsi:type."""
    children = list(el)
    if not children:
        return el.text
    out: dict[str, Any] = {}
    t = el.get(XSI_TYPE)
    if t:
        out["_type"] = t
    for c in children:
        name = c.tag[len(VIM) :] if c.tag.startswith(VIM) else c.tag
        value = plain(c)
        if name in out:
            prev = out[name]
            out[name] = prev + [value] if isinstance(prev, list) else [prev, value]
        else:
            out[name] = value
    return out


def record_of(objects_el: Any) -> tuple[str, dict[str, Any]]:
    moid = ""
    props: dict[str, Any] = {}
    for c in objects_el:
        if c.tag == VIM + "obj":
            moid = c.text
        elif c.tag == VIM + "propSet":
            name = c.findtext(VIM + "name")
            val = c.find(VIM + "val")
            if name == "config.hardware.device":
                props[name] = [(int(d.findtext(VIM + "key")), d.get(XSI_TYPE)) for d in val]
            elif name == "runtime.host":
                props[name] = val.text
            else:
                props[name] = plain(val)
    return moid, {
        "name": props.get("name"),
        "cpus": int(props["config.hardware.numCPU"]) if "config.hardware.numCPU" in props else None,
        "memory": int(props["config.hardware.memoryMB"])
        if "config.hardware.memoryMB" in props
        else None,
        "power": props.get("runtime.powerState"),
        "host": props.get("runtime.host"),
        "devices": props.get("config.hardware.device") or [],
    }


def by_lxml_tree(body: bytes) -> dict[str, dict[str, Any]]:
    from lxml import etree

    root = etree.fromstring(body)
    return dict(record_of(el) for el in root.iter(VIM + "objects"))


def by_lxml_stream(body: bytes) -> dict[str, dict[str, Any]]:
    from lxml import etree

    out: dict[str, dict[str, Any]] = {}
    for _event, el in etree.iterparse(io.BytesIO(body), events=("end",), tag=VIM + "objects"):
        moid, rec = record_of(el)
        out[moid] = rec
        el.clear(keep_tail=False)
    return out


def by_lxml_objects(stub: Any, body: bytes, result_type: Any) -> Any:
    from lxml import etree
    from vsphere_soapparse import Reader

    root = etree.fromstring(body)
    return Reader(stub).value(root.find(".//{urn:vim25}returnval"), result_type)


def timed(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    t0, c0 = time.perf_counter(), time.process_time()
    value = fn()
    return time.perf_counter() - t0, time.process_time() - c0, value


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vms-per-pool", type=int, default=500, help="the simulator has 2 pools")
    ap.add_argument("--runs", type=int, default=5, help="parses per way, in turns")
    args = ap.parse_args(argv)
    try:
        import lxml  # noqa: F401
    except ImportError:
        print("lxml is not installed: pip install '.[vsphere]'", file=sys.stderr)
        return 2
    print("starting the simulator (built once with Go if needed) ...", flush=True)
    sim = start_simulator(hosts=2, vms=args.vms_per_pool, datastores=2, clusters=1, password="b-1")
    try:
        si = session.connect(sim.url, sim.secret(insecureSkipVerify="true"), timeout=600)
        body, result_type = capture(si)
        stub = si._stub
    finally:
        sim.stop()
    ways: dict[str, list[tuple[float, float]]] = {
        "pyvmomi": [],
        "lxml tree": [],
        "lxml stream": [],
        "lxml->pyvmomi": [],
        "lxml->plain": [],
    }
    results: dict[str, Any] = {}
    for _ in range(args.runs):
        for name, fn in (
            ("pyvmomi", lambda: by_pyvmomi(stub, body, result_type)),
            ("lxml tree", lambda: by_lxml_tree(body)),
            ("lxml stream", lambda: by_lxml_stream(body)),
            ("lxml->pyvmomi", lambda: by_lxml_objects(stub, body, result_type)),
            ("lxml->plain", lambda: parse_response(stub, body, result_type)),
        ):
            wall, cpu, value = timed(fn)
            ways[name].append((wall, cpu))
            results[name] = value
    n = len(results["pyvmomi"])
    print(f"one RetrievePropertiesEx answer: {n} VMs, {len(body) / 1e6:.1f} MB of SOAP")
    print(f"{'parse':<14}{'seconds':>9}{'cpu s':>8}{'ratio':>8}")
    base = [c for _w, c in ways["pyvmomi"]]
    for name, rows in ways.items():
        ratio = statistics.median(b / c for b, (_w, c) in zip(base, rows, strict=True))
        print(
            f"{name:<14}{statistics.median(w for w, _ in rows):>9.3f}"
            f"{statistics.median(c for _, c in rows):>8.3f}{ratio:>8.1f}"
        )
    types = {
        k: [(key, t.split(":")[-1]) for key, t in v["devices"]]
        for k, v in results["lxml tree"].items()
    }
    same_shape = all(
        {**v, "devices": [(key, t) for key, t in v["devices"]]}
        == {**results["lxml tree"][k], "devices": types[k]}
        for k, v in results["pyvmomi"].items()
    )
    from pyVmomi import SoapAdapter

    reference = SoapAdapter.SoapResponseDeserializer(stub).Deserialize(
        io.BytesIO(body), result_type
    )
    identical = SoapAdapter.Serialize(results["lxml->pyvmomi"]) == SoapAdapter.Serialize(reference)
    print(
        "(d) builds pyvmomi objects identical to (a)'s (serialized):",
        "yes" if identical else "NO",
    )
    plain_same = results["lxml->plain"] == made_plain(reference)
    print("(e) plain records equal to (a)'s objects made plain:", "yes" if plain_same else "NO")
    same = (
        same_shape and identical and plain_same and results["lxml tree"] == results["lxml stream"]
    )
    if not same:
        for k, v in results["pyvmomi"].items():
            other = {**results["lxml tree"][k], "devices": types[k]}
            if v != other:
                print(f"first difference, {k}: pyvmomi {v} / lxml {other}")
                break
    print(
        "ratio = pyvmomi CPU seconds / this parse's CPU seconds (median of paired runs; >1: "
        f"faster than pyvmomi); the three agree on every VM: {'yes' if same else 'NO'}"
    )
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
