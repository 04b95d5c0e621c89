// Command podnet is the pod network of the air-gapped kind node image (kind's kindnetd is not
// published as a Go module). It runs on every node (hostNetwork, privileged) and, every few seconds,
// converges four things from the API state:
//   - the CNI config (ptp + host-local on the node's podCIDR, portmap) in /etc/cni/net.d;
//   - a route to every other node's podCIDR via that node's InternalIP (all kind nodes share one
//     docker network, so no tunnel is needed);
//   - masquerading of pod traffic that leaves the pod network;
//   - NetworkPolicy enforcement for the pods of this node, as one nftables table replaced atomically
//     (this kernel has nftables but no nft `queue` support, which kube-network-policies needs).
//
// Polling alone would leave a new pod unfiltered until its IP shows in the API and the next pass
// runs, while its containers already run. So the same binary is also a CNI plugin, chained after
// ptp (see plugin.go): on ADD it asks this daemon, over a unix socket, to admit the pod with its new
// IP, and the daemon answers only once the policy table covers that IP (see admit.go).
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

type options struct {
	nodeName  string
	podSubnet string
	cniDir    string
	cniBinDir string
	socket    string
	interval  time.Duration
}

// state is everything one sync pass reads from the API.
type state struct {
	node       *corev1.Node
	nodes      []corev1.Node
	pods       []corev1.Pod
	namespaces []corev1.Namespace
	policies   []networkingv1.NetworkPolicy
	// pendingIPs ("namespace/name" -> IP) are the addresses the CNI plugin announced for pods
	// whose IP the API does not show yet; policy.go uses them as if they were status.podIP.
	pendingIPs map[string]string
}

// daemon holds what outlives one sync pass. mu serializes the passes of the periodic loop and of
// the CNI plugin's requests: both rewrite the same nftables table from the same inputs.
type daemon struct {
	client  kubernetes.Interface
	opts    options
	nft     func(rules string) error // applyNft; replaced in tests
	mu      sync.Mutex
	applied map[string]string     // table name -> rules last applied
	pending map[string]pendingPod // "namespace/name" -> IP announced by the CNI plugin
}

func newDaemon(client kubernetes.Interface, opts options) *daemon {
	return &daemon{
		client: client, opts: opts, nft: applyNft,
		applied: map[string]string{}, pending: map[string]pendingPod{},
	}
}

func main() {
	// The kubelet's container runtime executes /opt/cni/bin/podnet with CNI_COMMAND set.
	if os.Getenv("CNI_COMMAND") != "" {
		pluginMain()
		return
	}
	opts := options{}
	flag.StringVar(&opts.nodeName, "node-name", os.Getenv("NODE_NAME"), "this node")
	flag.StringVar(&opts.podSubnet, "pod-subnet", os.Getenv("POD_SUBNET"), "cluster pod CIDR")
	flag.StringVar(&opts.cniDir, "cni-dir", "/etc/cni/net.d", "CNI config directory")
	flag.StringVar(&opts.cniBinDir, "cni-bin-dir", "/opt/cni/bin", "CNI plugin directory (the host's)")
	flag.StringVar(&opts.socket, "socket", defaultSocket, "unix socket the CNI plugin asks")
	flag.DurationVar(&opts.interval, "interval", 3*time.Second, "resync interval")
	flag.Parse()
	if opts.nodeName == "" || opts.podSubnet == "" {
		log.Fatal("--node-name and --pod-subnet (or NODE_NAME, POD_SUBNET) are required")
	}
	config, err := rest.InClusterConfig()
	if err != nil {
		log.Fatalf("in-cluster config: %v", err)
	}
	d := newDaemon(kubernetes.NewForConfigOrDie(config), opts)
	mustWrite("/proc/sys/net/ipv4/ip_forward", "1")
	// The plugin binary and the socket exist before the first conflist names the plugin; until
	// then (and whenever this daemon is down) the plugin's ADD fails and the kubelet retries.
	if err := installPlugin(opts.cniBinDir); err != nil {
		log.Fatalf("install CNI plugin: %v", err)
	}
	listener, err := listen(opts.socket)
	if err != nil {
		log.Fatalf("listen on %s: %v", opts.socket, err)
	}
	go d.serve(listener)
	for {
		// bounded: a pass holds the lock that the plugin's admissions wait for
		ctx, cancel := context.WithTimeout(context.Background(), serveTimeout)
		if err := d.sync(ctx, nil); err != nil {
			log.Printf("sync: %v", err)
		}
		cancel()
		time.Sleep(opts.interval)
	}
}

// sync runs one pass under the lock; admit (when set) is a pod the CNI plugin is waiting for.
func (d *daemon) sync(ctx context.Context, admit *admission) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	st, err := readState(ctx, d.client, d.opts.nodeName)
	if err != nil {
		return err
	}
	if err := d.usePending(ctx, st, admit); err != nil {
		return err
	}
	return d.converge(st)
}

// converge writes the CNI config, routes and nftables tables for the state read by one pass.
func (d *daemon) converge(st *state) error {
	opts := d.opts
	if st.node.Spec.PodCIDR == "" {
		return fmt.Errorf("node %s has no podCIDR yet", opts.nodeName)
	}
	if err := writeCNIConfig(opts.cniDir, st.node.Spec.PodCIDR, opts.socket); err != nil {
		return err
	}
	syncRoutes(st, opts.nodeName)
	tables := map[string]string{
		"nat":    natTable(opts.podSubnet),
		"policy": policyTable(st, opts.nodeName),
	}
	for name, rules := range tables {
		if d.applied[name] == rules {
			continue
		}
		if err := d.nft(rules); err != nil {
			return fmt.Errorf("nft %s: %w", name, err)
		}
		d.applied[name] = rules
		log.Printf("applied nftables %s table (%d lines)", name, strings.Count(rules, "\n"))
	}
	return nil
}

func readState(ctx context.Context, client kubernetes.Interface, nodeName string) (*state, error) {
	nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	pods, err := client.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	namespaces, err := client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	policies, err := client.NetworkingV1().NetworkPolicies("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	st := &state{nodes: nodes.Items, pods: pods.Items, namespaces: namespaces.Items, policies: policies.Items}
	for i := range nodes.Items {
		if nodes.Items[i].Name == nodeName {
			st.node = &nodes.Items[i]
		}
	}
	if st.node == nil {
		return nil, fmt.Errorf("node %s not found", nodeName)
	}
	return st, nil
}

// writeCNIConfig writes the conflist only when it changed, so the kubelet sees one stable file.
// The podnet plugin comes right after ptp: ptp's result carries the pod's IP, and the pod's
// containers start only once every plugin of the list succeeded.
func writeCNIConfig(dir, podCIDR, socket string) error {
	conf := fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": "podnet",
  "plugins": [
    {"type": "ptp", "ipMasq": false, "mtu": 1500,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": %q}]], "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "podnet", "socket": %q},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
`, podCIDR, socket)
	path := filepath.Join(dir, "10-podnet.conflist")
	if current, err := os.ReadFile(path); err == nil && string(current) == conf {
		return nil
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(conf), 0o644); err != nil {
		return err
	}
	log.Printf("writing CNI config for podCIDR %s", podCIDR)
	return os.Rename(tmp, path)
}

func syncRoutes(st *state, nodeName string) {
	for _, node := range st.nodes {
		if node.Name == nodeName || node.Spec.PodCIDR == "" {
			continue
		}
		ip := internalIP(node)
		if ip == "" {
			continue
		}
		out, err := exec.Command("ip", "route", "replace", node.Spec.PodCIDR, "via", ip).CombinedOutput()
		if err != nil {
			log.Printf("route %s via %s: %v: %s", node.Spec.PodCIDR, ip, err, out)
		}
	}
}

func internalIP(node corev1.Node) string {
	for _, addr := range node.Status.Addresses {
		if addr.Type == corev1.NodeInternalIP && !strings.Contains(addr.Address, ":") {
			return addr.Address
		}
	}
	return ""
}

// natTable masquerades pod traffic leaving the pod network; pod-to-pod traffic keeps its source
// address so that NetworkPolicy can match it.
func natTable(podSubnet string) string {
	return fmt.Sprintf(`table ip podnet-nat {
  chain postrouting {
    type nat hook postrouting priority 110; policy accept;
    ip saddr %[1]s ip daddr != %[1]s masquerade
  }
}
`, podSubnet)
}

// applyNft replaces the table(s) in rules atomically: declaring then deleting an empty table makes
// the delete succeed whether or not it existed, and the whole file is one transaction.
func applyNft(rules string) error {
	var script strings.Builder
	for _, line := range strings.Split(rules, "\n") {
		if strings.HasPrefix(line, "table ") {
			header := strings.TrimSuffix(strings.TrimSpace(line), "{")
			fmt.Fprintf(&script, "%s{}\ndelete %s\n", header, strings.TrimSpace(header))
		}
	}
	script.WriteString(rules)
	cmd := exec.Command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script.String())
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%v: %s", err, out)
	}
	return nil
}

func mustWrite(path, value string) {
	if err := os.WriteFile(path, []byte(value), 0o644); err != nil {
		log.Fatalf("write %s: %v", path, err)
	}
}
