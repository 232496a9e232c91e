// A vCenter simulator for the tests and `mtv-gitops demo --warm`: govmomi's simulator.VPX()
// on 127.0.0.1 over TLS (or, with -esx, a standalone ESXi host: simulator.ESX(), datacenter
// "ha-datacenter").
//
// Changed block tracking, which govmomi's simulator lacks, is added around it (see cbt.go):
// writes made through POST /cbt/write are recorded per disk file, CreateSnapshot_Task gives
// each disk of the VM a new change id, and QueryChangedDiskAreas answers from the records.
//
// It prints its SDK URL (with the simulator's login) on one line, then serves until its stdin
// is closed, so it never outlives the test that started it.
package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/url"
	"os"

	"github.com/vmware/govmomi/simulator"
)

func main() {
	clusters := flag.Int("clusters", 1, "clusters per datacenter")
	hosts := flag.Int("hosts", 2, "ESXi hosts per cluster")
	vms := flag.Int("vms", 2, "VMs per resource pool (each cluster and standalone host has one)")
	datastores := flag.Int("datastores", 1, "datastores")
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	username := flag.String("username", "user", "the only login accepted")
	password := flag.String("password", "pass", "its password")
	cert := flag.String("cert", "", "TLS certificate (PEM); default: a built-in test certificate")
	key := flag.String("key", "", "TLS key (PEM)")
	esx := flag.Bool("esx", false, "simulate a standalone ESXi host instead of a vCenter")
	flag.Parse()

	m := simulator.VPX()
	if *esx {
		m = simulator.ESX()
	}
	m.Cluster = *clusters
	m.ClusterHost = *hosts
	m.Machine = *vms
	m.Datastore = *datastores
	defer m.Remove()
	if err := m.Create(); err != nil {
		log.Fatal(err)
	}
	m.Service.Listen = &url.URL{Host: *listen, User: url.UserPassword(*username, *password)}
	m.Service.TLS = new(tls.Config)
	if *cert != "" {
		pair, err := tls.LoadX509KeyPair(*cert, *key)
		if err != nil {
			log.Fatal(err)
		}
		m.Service.TLS.Certificates = []tls.Certificate{pair}
	}
	cbt := newTracker()
	m.Service.ServeMux = http.NewServeMux()
	m.Service.ServeMux.HandleFunc("/cbt/write", cbt.serveWrite)
	s := m.Service.NewServer()
	defer s.Close()
	s.Server.Config.Handler = cbt.wrapSDK(s.Server.Config.Handler)
	fmt.Println(s.URL.String())
	_, _ = io.Copy(io.Discard, os.Stdin)
}
