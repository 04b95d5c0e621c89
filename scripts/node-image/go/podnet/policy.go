package main

// NetworkPolicy compiled to nftables for the pods of this node.
//
// Every packet forwarded to a local pod that is isolated for ingress, or from a local pod that is
// isolated for egress, must match one rule of one policy selecting that pod, else it is dropped.
// Replies of allowed connections pass through conntrack. Traffic from the node itself (kubelet
// probes) does not cross the forward hook, so it stays allowed as Kubernetes requires.

import (
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

type direction int

const (
	ingress direction = iota
	egress
)

func policyTable(st *state, nodeName string) string {
	var rules []string
	for _, pod := range localPods(st, nodeName) {
		rules = append(rules, podRules(st, pod, ingress)...)
		rules = append(rules, podRules(st, pod, egress)...)
	}
	var b strings.Builder
	b.WriteString("table inet podnet-policy {\n")
	b.WriteString("  chain forward {\n    type filter hook forward priority -5; policy accept;\n")
	b.WriteString("    ct state established,related accept\n")
	for _, rule := range rules {
		fmt.Fprintf(&b, "    %s\n", rule)
	}
	b.WriteString("  }\n}\n")
	return b.String()
}

func localPods(st *state, nodeName string) []corev1.Pod {
	var pods []corev1.Pod
	for _, pod := range st.pods {
		if pod.Spec.NodeName == nodeName && hasPodNetworkIP(st, pod) {
			pods = append(pods, pod)
		}
	}
	return pods
}

func hasPodNetworkIP(st *state, pod corev1.Pod) bool {
	ip := podIP(st, pod)
	return !pod.Spec.HostNetwork && ip != "" && !strings.Contains(ip, ":") &&
		pod.Status.Phase != corev1.PodSucceeded && pod.Status.Phase != corev1.PodFailed
}

// podIP is the address the CNI plugin announced for a pod whose API status does not show it yet
// (its sandbox was just created and its containers wait for this table), else status.podIP.
func podIP(st *state, pod corev1.Pod) string {
	if ip, ok := st.pendingIPs[pod.Namespace+"/"+pod.Name]; ok {
		return ip
	}
	return pod.Status.PodIP
}

// podRules returns the accept rules then the final drop for one pod and direction, or nothing when
// no policy isolates the pod in that direction.
func podRules(st *state, pod corev1.Pod, dir direction) []string {
	match := "ip daddr " + podIP(st, pod)
	if dir == egress {
		match = "ip saddr " + podIP(st, pod)
	}
	isolated := false
	var rules []string
	for _, policy := range st.policies {
		if policy.Namespace != pod.Namespace || !selects(policy.Spec.PodSelector, pod.Labels) ||
			!hasType(policy, dir) {
			continue
		}
		isolated = true
		for _, peerMatch := range policyMatches(st, policy, pod, dir) {
			rules = append(rules, strings.TrimSpace(match+" "+peerMatch)+" accept")
		}
	}
	if !isolated {
		return nil
	}
	comment := fmt.Sprintf("comment \"%s/%s %s\"", pod.Namespace, pod.Name, [...]string{"ingress", "egress"}[dir])
	return append(rules, match+" drop "+comment)
}

func hasType(policy networkingv1.NetworkPolicy, dir direction) bool {
	want := networkingv1.PolicyTypeIngress
	if dir == egress {
		want = networkingv1.PolicyTypeEgress
	}
	if len(policy.Spec.PolicyTypes) == 0 {
		return dir == ingress || len(policy.Spec.Egress) > 0
	}
	for _, t := range policy.Spec.PolicyTypes {
		if t == want {
			return true
		}
	}
	return false
}

// policyMatches turns each rule of the policy into nft match expressions (peer x port).
func policyMatches(st *state, policy networkingv1.NetworkPolicy, pod corev1.Pod, dir direction) []string {
	var matches []string
	if dir == ingress {
		for _, rule := range policy.Spec.Ingress {
			matches = append(matches, ruleMatches(st, policy.Namespace, rule.From, rule.Ports, pod, dir)...)
		}
		return matches
	}
	for _, rule := range policy.Spec.Egress {
		matches = append(matches, ruleMatches(st, policy.Namespace, rule.To, rule.Ports, pod, dir)...)
	}
	return matches
}

func ruleMatches(st *state, namespace string, peers []networkingv1.NetworkPolicyPeer,
	ports []networkingv1.NetworkPolicyPort, pod corev1.Pod, dir direction,
) []string {
	addrField := "ip saddr"
	if dir == egress {
		addrField = "ip daddr"
	}
	peerMatches := []string{""} // no peers: every address
	if len(peers) > 0 {
		peerMatches = nil
		for _, peer := range peers {
			if m, ok := peerMatch(st, namespace, peer, addrField); ok {
				peerMatches = append(peerMatches, m)
			}
		}
	}
	portMatches := []string{""} // no ports: every port
	if len(ports) > 0 {
		portMatches = nil
		for _, port := range ports {
			portMatches = append(portMatches, portMatchesFor(st, port, pod, dir)...)
		}
	}
	var out []string
	for _, p := range peerMatches {
		for _, q := range portMatches {
			out = append(out, strings.TrimSpace(p+" "+q))
		}
	}
	return out
}

// peerMatch renders one peer; ok is false when it matches no address (the rule cannot apply).
func peerMatch(st *state, namespace string, peer networkingv1.NetworkPolicyPeer, field string) (string, bool) {
	if peer.IPBlock != nil {
		m := field + " " + peer.IPBlock.CIDR
		if len(peer.IPBlock.Except) > 0 {
			m += " " + field + " != { " + strings.Join(peer.IPBlock.Except, ", ") + " }"
		}
		return m, true
	}
	ips := peerPodIPs(st, namespace, peer)
	if len(ips) == 0 {
		return "", false
	}
	return field + " { " + strings.Join(ips, ", ") + " }", true
}

func peerPodIPs(st *state, namespace string, peer networkingv1.NetworkPolicyPeer) []string {
	namespaces := map[string]bool{}
	if peer.NamespaceSelector == nil {
		namespaces[namespace] = true
	} else {
		for _, ns := range st.namespaces {
			if selects(*peer.NamespaceSelector, ns.Labels) {
				namespaces[ns.Name] = true
			}
		}
	}
	seen := map[string]bool{}
	for _, pod := range st.pods {
		if !namespaces[pod.Namespace] || !hasPodNetworkIP(st, pod) {
			continue
		}
		if peer.PodSelector != nil && !selects(*peer.PodSelector, pod.Labels) {
			continue
		}
		seen[podIP(st, pod)] = true
	}
	ips := make([]string, 0, len(seen))
	for ip := range seen {
		ips = append(ips, ip)
	}
	sort.Strings(ips)
	return ips
}

// portMatchesFor renders one policy port. A named port resolves against the pod's own containers
// for ingress and against every pod's containers for egress (the destination is not known here).
func portMatchesFor(st *state, port networkingv1.NetworkPolicyPort, pod corev1.Pod, dir direction) []string {
	protocol := "tcp"
	if port.Protocol != nil {
		protocol = strings.ToLower(string(*port.Protocol))
	}
	if port.Port == nil {
		return []string{"meta l4proto " + protocol}
	}
	if port.Port.Type == 0 { // numeric
		if port.EndPort != nil {
			return []string{fmt.Sprintf("%s dport %d-%d", protocol, port.Port.IntVal, *port.EndPort)}
		}
		return []string{fmt.Sprintf("%s dport %d", protocol, port.Port.IntVal)}
	}
	candidates := []corev1.Pod{pod}
	if dir == egress {
		candidates = st.pods
	}
	numbers := namedPortNumbers(candidates, port.Port.StrVal, protocol)
	if len(numbers) == 0 {
		return nil
	}
	return []string{fmt.Sprintf("%s dport { %s }", protocol, strings.Join(numbers, ", "))}
}

func namedPortNumbers(pods []corev1.Pod, name, protocol string) []string {
	seen := map[string]bool{}
	for _, pod := range pods {
		for _, c := range pod.Spec.Containers {
			for _, p := range c.Ports {
				proto := strings.ToLower(string(p.Protocol))
				if proto == "" {
					proto = "tcp"
				}
				if p.Name == name && proto == protocol {
					seen[fmt.Sprint(p.ContainerPort)] = true
				}
			}
		}
	}
	numbers := make([]string, 0, len(seen))
	for n := range seen {
		numbers = append(numbers, n)
	}
	sort.Strings(numbers)
	return numbers
}

func selects(selector metav1.LabelSelector, podLabels map[string]string) bool {
	s, err := metav1.LabelSelectorAsSelector(&selector)
	if err != nil {
		return false
	}
	return s.Matches(labels.Set(podLabels))
}
