package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// nftRecorder stands in for `nft -f -` and keeps every table applied.
type nftRecorder struct {
	mu     sync.Mutex
	tables []string
}

func (r *nftRecorder) apply(rules string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tables = append(r.tables, rules)
	return nil
}

func (r *nftRecorder) lastPolicy() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.tables) - 1; i >= 0; i-- {
		if strings.Contains(r.tables[i], "podnet-policy") {
			return r.tables[i]
		}
	}
	return ""
}

// testDaemon: node-a, namespace jobs with a deny-all-egress policy, and pod jobs/new scheduled on
// node-a whose status has no IP yet (its sandbox is being created).
func testDaemon(t *testing.T) (*daemon, *fake.Clientset, *nftRecorder) {
	t.Helper()
	newPod := pod("jobs", "new", node, "", nil)
	newPod.UID = "u1"
	newPod.Status.Phase = corev1.PodPending
	client := fake.NewSimpleClientset(
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node}, Spec: corev1.NodeSpec{PodCIDR: "10.244.1.0/24"}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "jobs"}},
		&networkingv1.NetworkPolicy{
			ObjectMeta: metav1.ObjectMeta{Namespace: "jobs", Name: "deny-egress"},
			Spec:       networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}},
		},
		&newPod,
	)
	rec := &nftRecorder{}
	dir := t.TempDir()
	d := newDaemon(client, options{
		nodeName: node, podSubnet: "10.244.0.0/16", cniDir: dir, socket: filepath.Join(dir, "podnet.sock"),
	})
	d.nft = rec.apply
	return d, client, rec
}

func TestSocketRequestSyncsThenAnswers(t *testing.T) {
	d, _, rec := testDaemon(t)
	listener, err := listen(d.opts.socket)
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close()
	go d.serve(listener)

	req := admission{Namespace: "jobs", Name: "new", UID: "u1", IP: "10.244.1.9"}
	if err := requestAdmission(d.opts.socket, req, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	// by the time the plugin has its answer, the pod's drop rule is in force
	if policy := rec.lastPolicy(); !strings.Contains(policy, `ip saddr 10.244.1.9 drop comment "jobs/new egress"`) {
		t.Fatalf("policy table applied before the answer:\n%s", policy)
	}
	conf, err := os.ReadFile(filepath.Join(d.opts.cniDir, "10-podnet.conflist"))
	if err != nil || !strings.Contains(string(conf), `{"type": "podnet", "socket": "`+d.opts.socket+`"}`) {
		t.Fatalf("conflist does not chain the podnet plugin: %v\n%s", err, conf)
	}
}

func TestPendingIPIsForgottenOnceTheAPIShowsIt(t *testing.T) {
	d, client, rec := testDaemon(t)
	ctx := context.Background()
	if err := d.admit(ctx, admission{Namespace: "jobs", Name: "new", UID: "u1", IP: "10.244.1.9"}); err != nil {
		t.Fatal(err)
	}
	// a periodic pass keeps the pending IP while the API still shows none
	if err := d.sync(ctx, nil); err != nil || len(d.pending) != 1 {
		t.Fatalf("pending after a pass without API IP: %v %v", d.pending, err)
	}
	p, _ := client.CoreV1().Pods("jobs").Get(ctx, "new", metav1.GetOptions{})
	p.Status.PodIP = "10.244.1.9"
	if _, err := client.CoreV1().Pods("jobs").UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := d.sync(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if len(d.pending) != 0 {
		t.Fatalf("pending entry kept after the API showed the IP: %v", d.pending)
	}
	if !strings.Contains(rec.lastPolicy(), "ip saddr 10.244.1.9 drop") {
		t.Fatalf("rule lost when the IP moved from pending to status:\n%s", rec.lastPolicy())
	}
	d.pending["jobs/gone"] = pendingPod{ip: "10.244.1.10", since: time.Now().Add(-pendingTTL - time.Second)}
	if err := d.sync(ctx, nil); err != nil || len(d.pending) != 0 {
		t.Fatalf("expired pending entry kept: %v %v", d.pending, err)
	}
}

func TestPodMissingFromTheListIsReadDirectly(t *testing.T) {
	d, client, rec := testDaemon(t)
	// the list races the pod's creation; a GET finds it
	client.PrependReactor("list", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, &corev1.PodList{}, nil
	})
	if err := d.admit(context.Background(), admission{Namespace: "jobs", Name: "new", UID: "u1", IP: "10.244.1.9"}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(rec.lastPolicy(), `ip saddr 10.244.1.9 drop comment "jobs/new egress"`) {
		t.Fatalf("pod read by GET not isolated:\n%s", rec.lastPolicy())
	}
}

func TestUnknownPodIsRefused(t *testing.T) {
	d, _, _ := testDaemon(t)
	ctx := context.Background()
	if err := d.admit(ctx, admission{Namespace: "jobs", Name: "ghost", IP: "10.244.1.11"}); err == nil {
		t.Fatal("admitted a pod the API does not know")
	}
	if err := d.admit(ctx, admission{Namespace: "jobs", Name: "new", UID: "other", IP: "10.244.1.11"}); err == nil {
		t.Fatal("admitted a pod whose uid differs from the API's")
	}
	if len(d.pending) != 0 {
		t.Fatalf("refused admissions left pending IPs: %v", d.pending)
	}
}

func TestInstallFileReplacesOnlyChangedContent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "podnet")
	if err := installFile(path, []byte("v1")); err != nil {
		t.Fatal(err)
	}
	before, _ := os.Stat(path)
	if err := installFile(path, []byte("v1")); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.Stat(path); !os.SameFile(before, after) {
		t.Fatal("unchanged content rewritten")
	}
	if err := installFile(path, []byte("v2")); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	info, _ := os.Stat(path)
	if string(got) != "v2" || info.Mode().Perm() != 0o755 {
		t.Fatalf("got %q mode %v", got, info.Mode())
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Fatalf("temporary file left: %v", entries)
	}
}
