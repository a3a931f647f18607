#!/usr/bin/env bash
# A private Debian containerd (1.6) with its CRI plugin, the reference the
# conformance runs compare Dockyard with. Everything it owns lives under one
# directory (default build/containerd-cri; $CONTAINERD_CRI_DIR overrides):
#   config.toml, containerd.sock, root/, state/, opt/, runc/ (runtime roots),
#   certs.d/<host>/hosts.toml  registry.k8s.io, gcr.io, docker.io, quay.io,
#                              public.ecr.aws, ghcr.io, mcr.microsoft.com ->
#                              http://127.0.0.1:5000, same repository paths
#   cni/                       $CONTAINERD_CRI_CONFLIST when set, else
#                              deploy/cni/10-dockyard.conflist when present,
#                              else a bridge + host-local 10.88.0.0/16 list
#   CONTAINERD_CRI_TEST_HANDLER=1 adds a runc handler named test-handler (the
#   one Kubernetes' RuntimeClass e2e specs use; hack/run-node-e2e.sh sets both)
#   containerd.log, pid
#
#   hack/containerd-cri.sh start    start (no-op when running), wait for CRI
#   hack/containerd-cri.sh stop     remove every pod through CRI, stop
#                                   containerd, kill its leftover shims, unmount
#                                   and delete its state (root/, state/, runc/)
#   hack/containerd-cri.sh status | endpoint
#
# Facts this relies on:
#   - Root here lacks CAP_SYS_RESOURCE, so the pause container's
#     oom_score_adj -998 cannot be written: restrict_oom_score_adj = true
#     clamps it to containerd's own value.
#   - The runc v2 shim's socket is /run/containerd/s/<hash of address, ns, id>
#     whatever the config says; it goes away with the shim.
#   - Stopping containerd leaves shims and containers running, so `stop`
#     removes the pods through CRI first.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
dir=${CONTAINERD_CRI_DIR:-$here/build/containerd-cri}
sock=$dir/containerd.sock
mirror=${CRITEST_REGISTRY:-127.0.0.1:5000}
MIRRORED=(registry.k8s.io k8s.gcr.io gcr.io docker.io registry-1.docker.io quay.io public.ecr.aws ghcr.io mcr.microsoft.com)
crictl() { "$here/build/bin/crictl" --runtime-endpoint "unix://$sock" --image-endpoint "unix://$sock" --timeout 60s "$@"; }

running() {
  [[ -s $dir/pid ]] && kill -0 "$(cat "$dir/pid")" 2>/dev/null \
    && grep -q containerd "/proc/$(cat "$dir/pid")/cmdline" 2>/dev/null
}

# One runtime handler: the runc v2 shim driving <binary>, its state under runc/<name>.
runtime_toml() { # name binary
  cat <<TOML
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.$1]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.$1.options]
        BinaryName = "$2"
        Root = "$dir/runc/$1"
        SystemdCgroup = false
TOML
}

write_config() {
  mkdir -p "$dir"/{root,state,opt,runc,cni,certs.d}
  local host
  for host in "${MIRRORED[@]}"; do
    mkdir -p "$dir/certs.d/$host"
    # server = the mirror too: no fallback to the real host (no network here).
    cat >"$dir/certs.d/$host/hosts.toml" <<TOML
server = "http://$mirror"

[host."http://$mirror"]
  capabilities = ["pull", "resolve"]
TOML
  done
  rm -f "$dir"/cni/*
  if [[ -n ${CONTAINERD_CRI_CONFLIST:-} ]]; then
    cp "$CONTAINERD_CRI_CONFLIST" "$dir/cni/"
  elif [[ -f $here/deploy/cni/10-dockyard.conflist ]]; then
    cp "$here/deploy/cni/10-dockyard.conflist" "$dir/cni/"
  else
    cat >"$dir/cni/10-dockyard.conflist" <<'JSON'
{
  "cniVersion": "1.0.0",
  "name": "dockyard",
  "plugins": [
    {"type": "bridge", "bridge": "dockyard0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.88.0.0/16"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "portmap", "capabilities": {"portMappings": true}},
    {"type": "loopback"}
  ]
}
JSON
  fi
  local cni_bin=/usr/lib/cni
  [[ -x $cni_bin/bridge ]] || cni_bin=/opt/cni/bin
  cat >"$dir/config.toml" <<TOML
version = 2
root = "$dir/root"
state = "$dir/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = "$sock"

[plugins."io.containerd.internal.v1.opt"]
  path = "$dir/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.10"
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"

$(runtime_toml runc /usr/sbin/runc)

$(runtime_toml crun /usr/bin/crun)

$(if [[ -n ${CONTAINERD_CRI_TEST_HANDLER:-} ]]; then
    echo "    # The handler Kubernetes' RuntimeClass e2e specs ask for (runc again)."
    runtime_toml test-handler /usr/sbin/runc
    echo
  fi)
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$cni_bin"
    conf_dir = "$dir/cni"

  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$dir/certs.d"
TOML
}

start() {
  command -v containerd >/dev/null || { echo "containerd-cri.sh: containerd missing (apt)" >&2; exit 1; }
  "$here/hack/install-crictl.sh"
  "$here/hack/registry.sh" start
  running && return 0
  write_config
  setsid containerd --config "$dir/config.toml" >"$dir/containerd.log" 2>&1 </dev/null &
  echo $! >"$dir/pid"
  for _ in $(seq 200); do
    if [[ -S $sock ]] && crictl info >/dev/null 2>&1; then
      echo "containerd-cri: running (pid $(cat "$dir/pid")), endpoint unix://$sock"
      return 0
    fi
    # kill -0, not running(): until the exec the child's cmdline is bash's.
    kill -0 "$(cat "$dir/pid")" 2>/dev/null || break
    sleep 0.1
  done
  echo "containerd-cri.sh: containerd did not come up; log:" >&2
  tail -20 "$dir/containerd.log" >&2
  exit 1
}

stop() {
  if running; then
    # Pods first: containerd's exit would leave their shims running.
    crictl rmp -fa >/dev/null 2>&1 || true
    local pid; pid=$(cat "$dir/pid")
    kill "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
  fi
  rm -f "$dir/pid"
  # Shims whose -address is this containerd's socket, and what they run.
  local p
  for p in $(grep -l -a -- "$sock" /proc/[0-9]*/cmdline 2>/dev/null | cut -d/ -f3); do
    [[ $(cat "/proc/$p/comm" 2>/dev/null) == containerd-shim* ]] && kill -9 "$p" 2>/dev/null || true
  done
  # Mounts under its directory (rootfs overlays, shm, netns), deepest first.
  local m
  for m in $(awk -v d="$dir/" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo | sort -r); do
    umount -l "$m" 2>/dev/null || true
  done
  rm -rf "$dir/root" "$dir/state" "$dir/runc" "$dir/opt" "$sock" "$sock.ttrpc"
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  status) if running; then echo "running (pid $(cat "$dir/pid")) unix://$sock"; else echo stopped; exit 1; fi ;;
  endpoint) echo "unix://$sock" ;;
  *) echo "usage: $0 start|stop|status|endpoint" >&2; exit 2 ;;
esac
