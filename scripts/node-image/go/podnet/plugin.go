package main

// The CNI plugin: the same binary, executed by the container runtime as /opt/cni/bin/podnet with
// CNI_COMMAND set, chained after ptp in 10-podnet.conflist.
//
// On ADD it asks the daemon to admit the pod with the IPv4 address ptp gave it and waits for the
// answer: the pod's containers start only after the conflist's plugins all succeeded, so they
// start behind their NetworkPolicy. It fails closed: when the daemon cannot be reached, does not
// answer within admitTimeout or reports an error, the ADD fails and the kubelet retries the
// sandbox later rather than run a pod unfiltered.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
)

const (
	defaultSocket = "/run/podnet/podnet.sock"
	admitTimeout  = 30 * time.Second
)

// pluginConf is the plugin's entry of the conflist, with ptp's result as prevResult.
type pluginConf struct {
	types.PluginConf
	Socket string `json:"socket,omitempty"`
}

// k8sArgs are the CNI_ARGS the kubelet's runtime passes (IgnoreUnknown=1;K8S_POD_NAMESPACE=...).
type k8sArgs struct {
	types.CommonArgs
	K8S_POD_NAMESPACE          types.UnmarshallableString //nolint:revive // CNI_ARGS key
	K8S_POD_NAME               types.UnmarshallableString //nolint:revive
	K8S_POD_INFRA_CONTAINER_ID types.UnmarshallableString //nolint:revive
	K8S_POD_UID                types.UnmarshallableString //nolint:revive
}

// supportedVersions stops at 1.0.0 (the conflist's version): 1.1.0 adds GC and STATUS.
var supportedVersions = version.PluginSupports("0.3.0", "0.3.1", "0.4.0", "1.0.0")

func pluginMain() {
	skel.PluginMainFuncs(skel.CNIFuncs{
		Add: func(args *skel.CmdArgs) error { return cmdAdd(args, os.Stdout) },
		// Nothing to undo: the daemon forgets a pending IP once the API shows the pod's IP, when
		// another pod announces the same IP, or after pendingTTL.
		Del:   func(*skel.CmdArgs) error { return nil },
		Check: func(*skel.CmdArgs) error { return nil },
	}, supportedVersions, "podnet CNI plugin: admits a pod to the node's NetworkPolicy before it starts")
}

// cmdAdd admits the pod and then prints ptp's result unchanged on out.
func cmdAdd(args *skel.CmdArgs, out io.Writer) error {
	conf := pluginConf{}
	if err := json.Unmarshal(args.StdinData, &conf); err != nil {
		return types.NewError(types.ErrDecodingFailure, "podnet: cannot parse network config", err.Error())
	}
	if err := version.ParsePrevResult(&conf.PluginConf); err != nil {
		return types.NewError(types.ErrDecodingFailure, "podnet: cannot parse prevResult", err.Error())
	}
	if conf.PrevResult == nil {
		return types.NewError(types.ErrInvalidNetworkConfig,
			"podnet: no prevResult: the plugin must be chained after an IP-assigning plugin (ptp)", "")
	}
	result, err := current.NewResultFromResult(conf.PrevResult)
	if err != nil {
		return types.NewError(types.ErrDecodingFailure, "podnet: cannot convert prevResult", err.Error())
	}
	ip := ""
	for _, addr := range result.IPs {
		if v4 := addr.Address.IP.To4(); v4 != nil {
			ip = v4.String()
			break
		}
	}
	if ip == "" {
		return types.NewError(types.ErrInvalidNetworkConfig, "podnet: prevResult has no IPv4 address", "")
	}
	k := k8sArgs{}
	if err := types.LoadArgs(args.Args, &k); err != nil {
		return types.NewError(types.ErrInvalidEnvironmentVariables, "podnet: cannot parse CNI_ARGS", err.Error())
	}
	req := admission{
		Namespace: string(k.K8S_POD_NAMESPACE),
		Name:      string(k.K8S_POD_NAME),
		UID:       string(k.K8S_POD_UID),
		IP:        ip,
	}
	if req.Namespace == "" || req.Name == "" {
		return types.NewError(types.ErrInvalidEnvironmentVariables,
			"podnet: CNI_ARGS lacks K8S_POD_NAMESPACE or K8S_POD_NAME: cannot tell which policy applies", "")
	}
	socket := conf.Socket
	if socket == "" {
		socket = defaultSocket
	}
	if err := requestAdmission(socket, req, admitTimeout); err != nil {
		return types.NewError(types.ErrTryAgainLater,
			fmt.Sprintf("podnet: NetworkPolicy for pod %s (ip %s) not in force, refusing to start it", req.key(), ip),
			err.Error())
	}
	return conf.PrevResult.PrintTo(out)
}

// requestAdmission sends req to the daemon and waits at most timeout for an OK.
func requestAdmission(socket string, req admission, timeout time.Duration) error {
	conn, err := net.DialTimeout("unix", socket, timeout)
	if err != nil {
		return fmt.Errorf("podnet daemon unreachable: %w", err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	if err := json.NewEncoder(conn).Encode(req); err != nil {
		return fmt.Errorf("send to podnet daemon: %w", err)
	}
	var reply admissionReply
	if err := json.NewDecoder(conn).Decode(&reply); err != nil {
		return fmt.Errorf("no answer from podnet daemon within %s: %w", timeout, err)
	}
	if !reply.OK {
		if reply.Error == "" {
			return errors.New("podnet daemon refused without a reason")
		}
		return fmt.Errorf("podnet daemon: %s", reply.Error)
	}
	return nil
}
