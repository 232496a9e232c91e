package main

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

// area is a byte range written while the global epoch was epoch-1: it belongs to the changes
// between a change id of epoch-1 (or less) and one of epoch (or more).
type area struct {
	epoch         int
	start, length int64
}

type tracker struct {
	mu    sync.Mutex
	epoch int               // bumped by every snapshot
	areas map[string][]area // by flat file "[ds] dir/disk-flat.vmdk"
}

func newTracker() *tracker { return &tracker{areas: map[string][]area{}} }

// serveWrite writes the request body into a datastore file at an offset and records it:
// POST /cbt/write?dsName=LocalDS_0&path=vm/disk-flat.vmdk&offset=4096
func (t *tracker) serveWrite(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	offset, err := strconv.ParseInt(q.Get("offset"), 10, 64)
	if err != nil || r.Method != http.MethodPost {
		http.Error(w, "POST with offset", http.StatusBadRequest)
		return
	}
	dir := ""
	for _, e := range simulator.Map.All("Datastore") {
		ds := e.(*simulator.Datastore)
		if ds.Name == q.Get("dsName") {
			dir = ds.Info.GetDatastoreInfo().Url
		}
	}
	if dir == "" {
		http.Error(w, "no such datastore", http.StatusNotFound)
		return
	}
	data, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f, err := os.OpenFile(path.Join(dir, q.Get("path")), os.O_WRONLY, 0)
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	defer f.Close()
	if _, err := f.WriteAt(data, offset); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	key := fmt.Sprintf("[%s] %s", q.Get("dsName"), q.Get("path"))
	t.mu.Lock()
	t.areas[key] = append(t.areas[key], area{t.epoch + 1, offset, int64(len(data))})
	t.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

type envelope struct {
	Body struct {
		Inner []byte `xml:",innerxml"`
	} `xml:"Body"`
}

type snapshotRequest struct {
	XMLName xml.Name
	This    types.ManagedObjectReference `xml:"_this"`
}

type changedAreasRequest struct {
	This        types.ManagedObjectReference `xml:"_this"`
	Snapshot    types.ManagedObjectReference `xml:"snapshot"`
	DeviceKey   int32                        `xml:"deviceKey"`
	StartOffset int64                        `xml:"startOffset"`
	ChangeID    string                       `xml:"changeId"`
}

// wrapSDK answers QueryChangedDiskAreas and stamps change ids before CreateSnapshot_Task;
// everything else goes to the simulator untouched.
func (t *tracker) wrapSDK(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/sdk") {
			next.ServeHTTP(w, r)
			return
		}
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		var env envelope
		_ = xml.Unmarshal(body, &env)
		inner := env.Body.Inner
		switch {
		case bytes.Contains(inner, []byte("<QueryChangedDiskAreas")):
			var req changedAreasRequest
			if err := xml.Unmarshal(inner, &req); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			t.answerChangedAreas(w, req)
			return
		case bytes.Contains(inner, []byte("<CreateSnapshot_Task")):
			var req snapshotRequest
			if xml.Unmarshal(inner, &req) == nil {
				t.stampChangeIDs(req.This)
			}
		}
		next.ServeHTTP(w, r)
	})
}

// stampChangeIDs gives every disk of the VM a change id of a new epoch, on fresh device
// objects: the snapshot about to be taken copies the config and keeps these ids.
func (t *tracker) stampChangeIDs(ref types.ManagedObjectReference) {
	obj, ok := simulator.Map.Get(ref).(*simulator.VirtualMachine)
	if !ok {
		return
	}
	t.mu.Lock()
	t.epoch++
	epoch := t.epoch
	t.mu.Unlock()
	simulator.Map.WithLock(obj, func() {
		devices := make([]types.BaseVirtualDevice, 0, len(obj.Config.Hardware.Device))
		for _, d := range obj.Config.Hardware.Device {
			if disk, ok := d.(*types.VirtualDisk); ok {
				if b, ok := disk.Backing.(*types.VirtualDiskFlatVer2BackingInfo); ok {
					copyDisk, copyBacking := *disk, *b
					copyBacking.ChangeId = fmt.Sprintf("52 mtv-gitops cbt %s/%d", obj.Config.Uuid, epoch)
					copyDisk.Backing = &copyBacking
					d = &copyDisk
				}
			}
			devices = append(devices, d)
		}
		obj.Config.Hardware.Device = devices
	})
}

func changeEpoch(id string) (int, bool) {
	i := strings.LastIndex(id, "/")
	if i < 0 {
		return 0, false
	}
	n, err := strconv.Atoi(id[i+1:])
	return n, err == nil
}

func (t *tracker) answerChangedAreas(w http.ResponseWriter, req changedAreasRequest) {
	snap, ok := simulator.Map.Get(req.Snapshot).(*simulator.VirtualMachineSnapshot)
	if !ok {
		soapFault(w, "snapshot not found")
		return
	}
	var backing *types.VirtualDiskFlatVer2BackingInfo
	var capacity int64
	for _, d := range snap.Config.Hardware.Device {
		if disk, ok := d.(*types.VirtualDisk); ok && disk.Key == req.DeviceKey {
			backing, _ = disk.Backing.(*types.VirtualDiskFlatVer2BackingInfo)
			capacity = disk.CapacityInBytes
			if capacity == 0 {
				capacity = disk.CapacityInKB * 1024
			}
		}
	}
	if backing == nil {
		soapFault(w, fmt.Sprintf("no disk %d in the snapshot", req.DeviceKey))
		return
	}
	upTo, ok := changeEpoch(backing.ChangeId)
	if !ok {
		soapFault(w, "the snapshot's disk has no change id: is changed block tracking on?")
		return
	}
	since := 0
	if req.ChangeID != "*" {
		if since, ok = changeEpoch(req.ChangeID); !ok {
			soapFault(w, "invalid change id "+req.ChangeID)
			return
		}
	}
	key := strings.TrimSuffix(backing.FileName, ".vmdk") + "-flat.vmdk"
	t.mu.Lock()
	var found []area
	for _, a := range t.areas[key] {
		if a.epoch > since && a.epoch <= upTo {
			found = append(found, a)
		}
	}
	t.mu.Unlock()
	sort.Slice(found, func(i, j int) bool { return found[i].start < found[j].start })
	var merged []area
	for _, a := range found {
		end := a.start + a.length
		if a.start < req.StartOffset {
			a.start = req.StartOffset
		}
		if end > capacity {
			end = capacity
		}
		if end <= a.start {
			continue
		}
		if n := len(merged); n > 0 && merged[n-1].start+merged[n-1].length >= a.start {
			if last := &merged[n-1]; end > last.start+last.length {
				last.length = end - last.start
			}
			continue
		}
		merged = append(merged, area{0, a.start, end - a.start})
	}
	var out strings.Builder
	for _, a := range merged {
		fmt.Fprintf(&out, "<changedArea><start>%d</start><length>%d</length></changedArea>", a.start, a.length)
	}
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><QueryChangedDiskAreasResponse xmlns="urn:vim25"><returnval><startOffset>%d</startOffset><length>%d</length>%s</returnval></QueryChangedDiskAreasResponse></soapenv:Body></soapenv:Envelope>`,
		req.StartOffset, capacity-req.StartOffset, out.String())
}

func soapFault(w http.ResponseWriter, msg string) {
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.WriteHeader(http.StatusInternalServerError)
	var esc bytes.Buffer
	_ = xml.EscapeText(&esc, []byte(msg))
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><soapenv:Fault><faultcode>ServerFaultCode</faultcode><faultstring>%s</faultstring><detail><InvalidArgumentFault xmlns="urn:vim25" xsi:type="InvalidArgument"></InvalidArgumentFault></detail></soapenv:Fault></soapenv:Body></soapenv:Envelope>`, esc.String())
}
