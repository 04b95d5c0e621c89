package main

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

const node = "node-a"

func pod(namespace, name, nodeName, ip string, labels map[string]string, ports ...corev1.ContainerPort) corev1.Pod {
	return corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Labels: labels},
		Spec:       corev1.PodSpec{NodeName: nodeName, Containers: []corev1.Container{{Name: "c", Ports: ports}}},
		Status:     corev1.PodStatus{PodIP: ip, Phase: corev1.PodRunning},
	}
}

func namespace(name string, labels map[string]string) corev1.Namespace {
	return corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
}

func selector(labels map[string]string) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchLabels: labels}
}

func ingressPolicy(ns string, podLabels map[string]string, rules ...networkingv1.NetworkPolicyIngressRule) networkingv1.NetworkPolicy {
	return networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "p"},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: *selector(podLabels),
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress:     rules,
		},
	}
}

func baseState(policies ...networkingv1.NetworkPolicy) *state {
	return &state{
		pods: []corev1.Pod{
			pod("web", "server", node, "10.244.1.5", map[string]string{"app": "server"},
				corev1.ContainerPort{Name: "http", ContainerPort: 8080}),
			pod("web", "client", "node-b", "10.244.2.7", map[string]string{"role": "client"}),
			pod("other", "probe", "node-b", "10.244.2.9", map[string]string{"role": "client"}),
			pod("web", "done", node, "10.244.1.6", map[string]string{"app": "server"}),
		},
		namespaces: []corev1.Namespace{
			namespace("web", map[string]string{"team": "web"}),
			namespace("other", map[string]string{"team": "other"}),
		},
		policies: policies,
	}
}

func rulesOf(t *testing.T, st *state) []string {
	t.Helper()
	table := policyTable(st, node)
	var rules []string
	for _, line := range strings.Split(table, "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "ip ") {
			rules = append(rules, line)
		}
	}
	return rules
}

func assertRules(t *testing.T, got []string, want ...string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("rules:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestNoPolicyMeansNoRules(t *testing.T) {
	assertRules(t, rulesOf(t, baseState()))
}

func TestDenyAllIngressDropsEverythingToSelectedLocalPods(t *testing.T) {
	st := baseState(ingressPolicy("web", map[string]string{"app": "server"}))
	st.pods[3].Status.Phase = corev1.PodSucceeded // finished pods hold no address
	assertRules(t, rulesOf(t, st), `ip daddr 10.244.1.5 drop comment "web/server ingress"`)
}

func TestPodSelectorPeerWithNamedPort(t *testing.T) {
	rule := networkingv1.NetworkPolicyIngressRule{
		From:  []networkingv1.NetworkPolicyPeer{{PodSelector: selector(map[string]string{"role": "client"})}},
		Ports: []networkingv1.NetworkPolicyPort{{Port: ptr(intstr.FromString("http"))}},
	}
	st := baseState(ingressPolicy("web", map[string]string{"app": "server"}, rule))
	st.pods = st.pods[:3]
	assertRules(t, rulesOf(t, st),
		"ip daddr 10.244.1.5 ip saddr { 10.244.2.7 } tcp dport { 8080 } accept",
		`ip daddr 10.244.1.5 drop comment "web/server ingress"`)
}

func TestNamespaceSelectorAndIPBlockWithPortRange(t *testing.T) {
	udp := corev1.ProtocolUDP
	end := int32(9100)
	rule := networkingv1.NetworkPolicyIngressRule{
		From: []networkingv1.NetworkPolicyPeer{
			{NamespaceSelector: selector(map[string]string{"team": "other"})},
			{IPBlock: &networkingv1.IPBlock{CIDR: "172.16.0.0/12", Except: []string{"172.17.0.0/16"}}},
		},
		Ports: []networkingv1.NetworkPolicyPort{{Protocol: &udp, Port: ptr(intstr.FromInt32(9000)), EndPort: &end}},
	}
	st := baseState(ingressPolicy("web", map[string]string{"app": "server"}, rule))
	st.pods = st.pods[:3]
	assertRules(t, rulesOf(t, st),
		"ip daddr 10.244.1.5 ip saddr { 10.244.2.9 } udp dport 9000-9100 accept",
		"ip daddr 10.244.1.5 ip saddr 172.16.0.0/12 ip saddr != { 172.17.0.0/16 } udp dport 9000-9100 accept",
		`ip daddr 10.244.1.5 drop comment "web/server ingress"`)
}

func TestPeerMatchingNoPodAllowsNothing(t *testing.T) {
	rule := networkingv1.NetworkPolicyIngressRule{
		From: []networkingv1.NetworkPolicyPeer{{PodSelector: selector(map[string]string{"role": "nobody"})}},
	}
	st := baseState(ingressPolicy("web", map[string]string{"app": "server"}, rule))
	st.pods = st.pods[:3]
	assertRules(t, rulesOf(t, st), `ip daddr 10.244.1.5 drop comment "web/server ingress"`)
}

func TestEgressPolicyFiltersBySourceAndAllowsDNS(t *testing.T) {
	policy := networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "web", Name: "egress"},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: *selector(map[string]string{"app": "server"}),
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
			Egress: []networkingv1.NetworkPolicyEgressRule{{
				Ports: []networkingv1.NetworkPolicyPort{{Protocol: ptr(corev1.ProtocolUDP), Port: ptr(intstr.FromInt32(53))}},
			}},
		},
	}
	st := baseState(policy)
	st.pods = st.pods[:3]
	assertRules(t, rulesOf(t, st),
		"ip saddr 10.244.1.5 udp dport 53 accept",
		`ip saddr 10.244.1.5 drop comment "web/server egress"`)
}

func ptr[T any](v T) *T { return &v }

// A pod whose sandbox the CNI plugin is admitting has no status.podIP yet: its announced IP must
// get the pod's rules, and count as a peer of the pods its policy allows.
func TestPendingPodIsIsolatedWithItsAnnouncedIP(t *testing.T) {
	policy := networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "jobs", Name: "egress"},
		Spec: networkingv1.NetworkPolicySpec{
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
			Egress: []networkingv1.NetworkPolicyEgressRule{
				{Ports: []networkingv1.NetworkPolicyPort{{Protocol: ptr(corev1.ProtocolUDP), Port: ptr(intstr.FromInt32(53))}}},
				{To: []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{}}}},
			},
		},
	}
	st := &state{
		pods: []corev1.Pod{
			pod("jobs", "new", node, "", nil),
			pod("jobs", "old", "node-b", "10.244.2.4", nil),
		},
		policies:   []networkingv1.NetworkPolicy{policy},
		pendingIPs: map[string]string{"jobs/new": "10.244.1.9"},
	}
	st.pods[0].Status.Phase = corev1.PodPending
	assertRules(t, rulesOf(t, st),
		"ip saddr 10.244.1.9 udp dport 53 accept",
		"ip saddr 10.244.1.9 ip daddr { 10.244.1.9, 10.244.2.4 } accept",
		`ip saddr 10.244.1.9 drop comment "jobs/new egress"`)

	st.pendingIPs = nil // without the announcement the pod has no address: no rules at all
	assertRules(t, rulesOf(t, st))
}
