package main

// The daemon's side of the CNI plugin: admitting a pod before its containers start.
//
// A pod's IP reaches the API only after its sandbox exists, and its containers start right after
// the CNI ADD returns; the periodic pass alone would let a pod isolated by a NetworkPolicy talk
// unfiltered for its first seconds. So the plugin (plugin.go) tells this daemon the pod's new IP
// and waits: the daemon records it as pending, runs a pass in which the pod counts with that IP,
// applies the nftables table and only then answers OK.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const (
	// pendingTTL bounds how long an announced IP is used while the API does not show it: a
	// sandbox torn down before the kubelet reported its IP must not keep rules forever.
	pendingTTL = 5 * time.Minute
	// serveTimeout is the daemon's budget per request, under the plugin's admitTimeout so that
	// the plugin gets an answer rather than a timeout.
	serveTimeout = 25 * time.Second
)

// admission is the plugin's request: pod namespace/name (uid when the runtime passes it) has ip.
type admission struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	UID       string `json:"uid,omitempty"`
	IP        string `json:"ip"`
}

// admissionReply is the daemon's answer; anything but OK=true fails the ADD (fail closed).
type admissionReply struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

type pendingPod struct {
	uid   string
	ip    string
	since time.Time
}

func (a admission) key() string { return a.Namespace + "/" + a.Name }

// isPod: the same pod, by name and (when known) uid: a pod recreated under the same name (a
// StatefulSet's) is another pod.
func isPod(pod *corev1.Pod, namespace, name, uid string) bool {
	return pod.Namespace == namespace && pod.Name == name && (uid == "" || string(pod.UID) == uid)
}

func findPod(st *state, namespace, name, uid string) *corev1.Pod {
	for i := range st.pods {
		if isPod(&st.pods[i], namespace, name, uid) {
			return &st.pods[i]
		}
	}
	return nil
}

// usePending records the admission (if any), forgets pending IPs the API now shows or that are
// too old, and sets st.pendingIPs for the pass. Called with d.mu held.
func (d *daemon) usePending(ctx context.Context, st *state, admit *admission) error {
	now := time.Now()
	if admit != nil {
		// One address, one pod: an earlier announcement of this IP (a sandbox torn down before
		// the API showed it, the address reused) must not lend its pod's rules to this one.
		for key, p := range d.pending {
			if p.ip == admit.IP {
				delete(d.pending, key)
			}
		}
		pod := findPod(st, admit.Namespace, admit.Name, admit.UID)
		if pod == nil {
			// The list can miss a pod created a moment ago: read it directly before answering.
			got, err := d.client.CoreV1().Pods(admit.Namespace).Get(ctx, admit.Name, metav1.GetOptions{})
			if err != nil {
				return fmt.Errorf("pod %s: %w", admit.key(), err)
			}
			if !isPod(got, admit.Namespace, admit.Name, admit.UID) {
				return fmt.Errorf("pod %s with uid %s is not in the API yet", admit.key(), admit.UID)
			}
			st.pods = append(st.pods, *got)
			pod = &st.pods[len(st.pods)-1]
		}
		if pod.Spec.NodeName != d.opts.nodeName {
			return fmt.Errorf("pod %s is scheduled on %q, not on this node %s", admit.key(),
				pod.Spec.NodeName, d.opts.nodeName)
		}
		d.pending[admit.key()] = pendingPod{uid: admit.UID, ip: admit.IP, since: now}
	}
	st.pendingIPs = map[string]string{}
	for key, p := range d.pending {
		ns, name, _ := strings.Cut(key, "/")
		pod := findPod(st, ns, name, p.uid)
		switch {
		case now.Sub(p.since) > pendingTTL:
			delete(d.pending, key)
		case pod != nil && pod.Status.PodIP == p.ip:
			delete(d.pending, key) // the API caught up: status.podIP says the same
		case pod != nil:
			st.pendingIPs[key] = p.ip
		}
	}
	return nil
}

// admit runs a pass that counts the pod with its announced IP; nil means the table applied.
func (d *daemon) admit(ctx context.Context, req admission) error {
	ip := net.ParseIP(req.IP)
	if req.Namespace == "" || req.Name == "" || ip == nil || ip.To4() == nil {
		return fmt.Errorf("invalid admission request %+v", req)
	}
	err := d.sync(ctx, &req)
	if err != nil {
		d.mu.Lock()
		// the ADD fails and the sandbox goes away: its IP must not stay pending
		if p, ok := d.pending[req.key()]; ok && p.ip == req.IP {
			delete(d.pending, req.key())
		}
		d.mu.Unlock()
	}
	return err
}

// handle answers one request on one connection.
func (d *daemon) handle(conn net.Conn) {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(serveTimeout + time.Second))
	var req admission
	reply := admissionReply{}
	if err := json.NewDecoder(conn).Decode(&req); err != nil {
		reply.Error = fmt.Sprintf("bad request: %v", err)
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), serveTimeout)
		start := time.Now()
		err := d.admit(ctx, req)
		cancel()
		if err != nil {
			reply.Error = err.Error()
			log.Printf("admit %s ip %s: %v", req.key(), req.IP, err)
		} else {
			reply.OK = true
			log.Printf("admitted %s ip %s in %s", req.key(), req.IP, time.Since(start).Round(time.Millisecond))
		}
	}
	if err := json.NewEncoder(conn).Encode(reply); err != nil {
		log.Printf("answer %s: %v", req.key(), err)
	}
}

func (d *daemon) serve(listener net.Listener) {
	for {
		conn, err := listener.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			log.Printf("accept: %v", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		go d.handle(conn)
	}
}

// listen opens the socket, replacing the one a previous daemon left; root only, like the runtime
// that executes the plugin.
func listen(socket string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(socket), 0o700); err != nil {
		return nil, err
	}
	if err := os.Remove(socket); err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	listener, err := net.Listen("unix", socket)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(socket, 0o600); err != nil {
		listener.Close()
		return nil, err
	}
	return listener, nil
}

// installPlugin copies this binary to <dir>/podnet when the content differs, through a temporary
// file and a rename so that the runtime never executes a half-written plugin.
func installPlugin(dir string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	content, err := os.ReadFile(self)
	if err != nil {
		return err
	}
	return installFile(filepath.Join(dir, "podnet"), content)
}

func installFile(path string, content []byte) error {
	if current, err := os.ReadFile(path); err == nil && bytes.Equal(current, content) {
		return nil
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".podnet-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := tmp.Write(content); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o755); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	log.Printf("installing CNI plugin %s", path)
	return os.Rename(tmp.Name(), path)
}
