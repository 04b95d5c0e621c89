package main

import (
	"encoding/json"
	"net"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
)

// prevResult is what ptp prints for a pod (rendered by the same library ptp uses).
func prevResult(t *testing.T) map[string]any {
	t.Helper()
	_, addr, _ := net.ParseCIDR("10.244.1.9/24")
	addr.IP = net.ParseIP("10.244.1.9")
	res := &current.Result{
		CNIVersion: "1.0.0",
		Interfaces: []*current.Interface{{Name: "eth0", Mac: "aa:bb:cc:dd:ee:ff", Sandbox: "/var/run/netns/x"}},
		IPs:        []*current.IPConfig{{Address: *addr, Gateway: net.ParseIP("10.244.1.1"), Interface: current.Int(0)}},
		Routes:     []*types.Route{{Dst: net.IPNet{IP: net.IPv4zero, Mask: net.CIDRMask(0, 32)}}},
	}
	data, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func addArgs(t *testing.T, socket string, prev map[string]any) *skel.CmdArgs {
	t.Helper()
	conf := map[string]any{"cniVersion": "1.0.0", "name": "podnet", "type": "podnet", "socket": socket, "prevResult": prev}
	data, err := json.Marshal(conf)
	if err != nil {
		t.Fatal(err)
	}
	return &skel.CmdArgs{
		ContainerID: "c1",
		Netns:       "/var/run/netns/x",
		IfName:      "eth0",
		Args:        "IgnoreUnknown=1;K8S_POD_NAMESPACE=jobs;K8S_POD_NAME=new;K8S_POD_INFRA_CONTAINER_ID=c1;K8S_POD_UID=u1",
		StdinData:   data,
	}
}

// fakeDaemon answers every request with reply and records the requests.
func fakeDaemon(t *testing.T, reply admissionReply) (string, chan admission) {
	t.Helper()
	socket := filepath.Join(t.TempDir(), "podnet.sock")
	listener, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { listener.Close() })
	requests := make(chan admission, 1)
	go func() {
		for {
			conn, err := listener.Accept()
			if err != nil {
				return
			}
			var req admission
			_ = json.NewDecoder(conn).Decode(&req)
			requests <- req
			_ = json.NewEncoder(conn).Encode(reply)
			conn.Close()
		}
	}()
	return socket, requests
}

func TestAddAsksTheDaemonAndPrintsPrevResultUnchanged(t *testing.T) {
	socket, requests := fakeDaemon(t, admissionReply{OK: true})
	prev := prevResult(t)
	var out strings.Builder
	if err := cmdAdd(addArgs(t, socket, prev), &out); err != nil {
		t.Fatal(err)
	}
	var printed map[string]any
	if err := json.Unmarshal([]byte(out.String()), &printed); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out.String())
	}
	if !reflect.DeepEqual(printed, prev) {
		t.Fatalf("ADD output\n%s\ndiffers from prevResult\n%v", out.String(), prev)
	}
	want := admission{Namespace: "jobs", Name: "new", UID: "u1", IP: "10.244.1.9"}
	if got := <-requests; got != want {
		t.Fatalf("request %+v, want %+v", got, want)
	}
}

func TestAddFailsWhenTheDaemonIsUnreachable(t *testing.T) {
	var out strings.Builder
	err := cmdAdd(addArgs(t, filepath.Join(t.TempDir(), "absent.sock"), prevResult(t)), &out)
	cniErr, ok := err.(*types.Error)
	if !ok || cniErr.Code != types.ErrTryAgainLater || !strings.Contains(cniErr.Details, "unreachable") {
		t.Fatalf("want a CNI try-again error naming the unreachable daemon, got %#v", err)
	}
	if out.Len() != 0 {
		t.Fatalf("a failed ADD printed %q", out.String())
	}
}

func TestAddFailsWhenTheDaemonRefuses(t *testing.T) {
	socket, _ := fakeDaemon(t, admissionReply{Error: "nft: boom"})
	var out strings.Builder
	err := cmdAdd(addArgs(t, socket, prevResult(t)), &out)
	if err == nil || !strings.Contains(err.(*types.Error).Details, "nft: boom") || out.Len() != 0 {
		t.Fatalf("want the daemon's error and no output, got %v, %q", err, out.String())
	}
}

func TestAddWithoutPrevResultFails(t *testing.T) {
	socket, _ := fakeDaemon(t, admissionReply{OK: true})
	if err := cmdAdd(addArgs(t, socket, nil), &strings.Builder{}); err == nil {
		t.Fatal("ADD without prevResult succeeded")
	}
}
