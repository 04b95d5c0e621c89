// Command podnet is the pod network of the air-gapped kind node image (kind's kindnetd is not
// published as a Go module). It runs on every node (hostNetwork, privileged) and, every few seconds,
// converges four things from the API state:
//   - the CNI config (ptp + host-local on the node's podCIDR, portmap) in /etc/cni/net.d;
//   - a route to every other node's podCIDR via that node's InternalIP (all kind nodes share one
//     docker network, so no tunnel is needed);
//   - masquerading of pod traffic that leaves the pod network;
//   - NetworkPolicy enforcement for the pods of this node, as one nftables table replaced atomically
//     (this kernel has nftables but no nft `queue` support, which kube-network-policies needs).
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
	interval  time.Duration
}

// state is everything one sync pass reads from the API.
type state struct {
	node       *corev1.Node
	nodes      []corev1.Node
	pods       []corev1.Pod
	namespaces []corev1.Namespace
	policies   []networkingv1.NetworkPolicy
}

func main() {
	opts := options{}
	flag.StringVar(&opts.nodeName, "node-name", os.Getenv("NODE_NAME"), "this node")
	flag.StringVar(&opts.podSubnet, "pod-subnet", os.Getenv("POD_SUBNET"), "cluster pod CIDR")
	flag.StringVar(&opts.cniDir, "cni-dir", "/etc/cni/net.d", "CNI config directory")
	flag.DurationVar(&opts.interval, "interval", 3*time.Second, "resync interval")
	flag.Parse()
	if opts.nodeName == "" || opts.podSubnet == "" {
		log.Fatal("--node-name and --pod-subnet (or NODE_NAME, POD_SUBNET) are required")
	}
	config, err := rest.InClusterConfig()
	if err != nil {
		log.Fatalf("in-cluster config: %v", err)
	}
	client := kubernetes.NewForConfigOrDie(config)
	mustWrite("/proc/sys/net/ipv4/ip_forward", "1")
	applied := map[string]string{}
	for {
		if err := syncOnce(context.Background(), client, opts, applied); err != nil {
			log.Printf("sync: %v", err)
		}
		time.Sleep(opts.interval)
	}
}

func syncOnce(ctx context.Context, client kubernetes.Interface, opts options, applied map[string]string) error {
	st, err := readState(ctx, client, opts.nodeName)
	if err != nil {
		return err
	}
	if st.node.Spec.PodCIDR == "" {
		return fmt.Errorf("node %s has no podCIDR yet", opts.nodeName)
	}
	if err := writeCNIConfig(opts.cniDir, st.node.Spec.PodCIDR); err != nil {
		return err
	}
	syncRoutes(st, opts.nodeName)
	tables := map[string]string{
		"nat":    natTable(opts.podSubnet),
		"policy": policyTable(st, opts.nodeName),
	}
	for name, rules := range tables {
		if applied[name] == rules {
			continue
		}
		if err := applyNft(rules); err != nil {
			return fmt.Errorf("nft %s: %w", name, err)
		}
		applied[name] = rules
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
func writeCNIConfig(dir, podCIDR string) error {
	conf := fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": "podnet",
  "plugins": [
    {"type": "ptp", "ipMasq": false, "mtu": 1500,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": %q}]], "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
`, podCIDR)
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
