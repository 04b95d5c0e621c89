#!/usr/bin/env bash
# cgroup v2 only, run by systemd before the kubelet (the root cgroup must already be empty, so it
# cannot run in the entrypoint): delegate every controller down to the kubelet's cgroup root.
set -euo pipefail
delegate_controllers() {
  sed -e 's/ / +/g' -e 's/^/+/' <"/sys/fs/cgroup$1/cgroup.controllers" >"/sys/fs/cgroup$1/cgroup.subtree_control"
}
delegate_controllers ""
for group in /kubelet /kubelet.slice; do
  mkdir -p "/sys/fs/cgroup$group"
  delegate_controllers "$group"
done
