#!/usr/bin/env bash
# Run Kubernetes' node e2e suite (hack/install-node-e2e.sh) against dockyardd
# or Debian's containerd, offline and isolated from everything else on the
# machine, and leave its reports in build/node-e2e/<name>/.
#
#   hack/run-node-e2e.sh [--runtime dockyardd|containerd] [--name NAME]
#                        [--procs N] [--focus-file F] [--skip-file F]...
#                        [--timeout 6h] [--suite-flag FLAG]... [--label-filter EXPR] [--dry-run]
#   hack/run-node-e2e.sh --compare DIR...   a markdown table of the runs' specs
#                                           (pass/fail/skip per run, by the
#                                           report.json in each build/node-e2e/DIR)
#
# What runs: e2e_node.test under ginkgo's parallel processes, focus
# `\[NodeConformance\]`, skip `\[Flaky\]|\[Slow\]|\[Serial\]|\[Disruptive\]`
# plus every pattern of hack/node-e2e-skips.txt (and of each --skip-file).
# --focus-file replaces the focus with its patterns, still within the
# NodeConformance label (hack/node-e2e-subset.txt is `make test`'s subset).
# The suite starts its own etcd, API server and namespace controller
# in-process, and the kubelet next to its binary (build/bin/kubelet), pointed
# at the runtime under test.
#
# Isolation. The whole run (registry mirror, runtime, suite, kubelet, pods)
# lives in new network, mount, cgroup, IPC and PID namespaces, so it takes no
# lock and can run for hours beside other tests:
#   - cgroups: a cgroup of its own under this shell's cgroup in every
#     hierarchy (dyne2e-<name>) is the root of a cgroup namespace, and the
#     hierarchies are mounted again inside the private mount namespace, so
#     the kubelet's "/" (cgroupRoot, /kubepods, and /system, into which it
#     moves every process of its root cgroup) is that cgroup, never the
#     host's. The runtime runs in /docker-daemon, the suite's --runtime-cgroups.
#   - network: only lo, the pods' bridge (dyn2e0, 10.88.200.0/22, CNI network
#     dockyard-node-e2e, ipMasq false) and an "uplink" bridge with no ports
#     holding the node address 10.88.204.1/32 and the default route. Whatever
#     leaves through the uplink (nothing may: there is no outside here) is
#     recorded by xt_recent and rejected at once (TCP reset / ICMP
#     unreachable), so nothing waits on an outside address; the addresses
#     tried are written to outside-attempts.txt. The netns has its own
#     127.0.0.1, so the suite's fixed ports (kubelet 10248/10250/10255, API
#     server) collide with nothing; the images come from a mirror of the
#     plain local registry's storage (read-only) on 127.0.0.1:5000 inside the
#     netns.
#     /etc/resolv.conf names the node address, where no DNS server listens.
#   - files: private /var/lib/kubelet (the suite's fixed kubelet root),
#     /var/log/pods, /var/log/containers, /var/lib/cni (host-local IPAM) and
#     a tmpfs /run/dyne2e (dockyardd's state dir) are bind mounts of
#     /var/lib/dockyard-node-e2e/<name>/; nothing mounted inside outlives the
#     run, because the mount namespace dies with it.
#   - systemd-run: the suite starts the kubelet through it whenever it is on
#     PATH, which fails here (PID 1 is not systemd); inside the mount
#     namespace it is covered by a non-executable empty file.
#   - PID: the run's init is this script. Besides isolation, the kubelet
#     needs it: it moves itself into its system cgroup (/kubelet, whose stats
#     the Summary API spec checks) only after reading /proc/1/ns/pid, which
#     the host's PID 1 here does not allow. When the init exits the kernel
#     kills whatever is left in the namespace.
#   - no proxy variables reach the suite (the environment is rebuilt), so the
#     API server reaches the kubelet's /configz directly.
# Afterwards every process left in the run's cgroups (all of them descend
# from this script) is killed, and the cgroups and state are removed.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
build=${DOCKYARD_BUILD_DIR:-$here/build}
bin=$build/node-e2e/bin
NODE_IP=10.88.204.1
POD_SUBNET=10.88.200.0/22
UPLINK=dyn2e-up
POD_BRIDGE=dyn2e0
CNI_NETWORK=dockyard-node-e2e
MIRROR=127.0.0.1:5000
RECENT=dyne2e_out
DEFAULT_FOCUS='\[NodeConformance\]'
DEFAULT_SKIP='\[Flaky\]|\[Slow\]|\[Serial\]|\[Disruptive\]'

die() { echo "run-node-e2e.sh: $*" >&2; exit 1; }
log() { echo "run-node-e2e: $(date +%T) $*"; }

compare() { # run dirs (under build/node-e2e or paths) -> markdown on stdout
  python3 - "$build/node-e2e" "$@" <<'PY'
import json, os, sys
base, runs = sys.argv[1], sys.argv[2:]
def load(run):
    path = run if os.path.isdir(run) else os.path.join(base, run)
    specs = {}
    for r in json.load(open(os.path.join(path, "report.json")))[0]["SpecReports"]:
        if r["LeafNodeType"] != "It":
            continue
        text = " ".join([*r["ContainerHierarchyTexts"], r["LeafNodeText"]])
        state = r["State"]
        if state == "skipped":
            if not r.get("Failure"):
                continue  # not selected by the run's filters
            state = "skip"
        elif state == "passed":
            state = "pass"
        else:
            state = "FAIL" if state == "failed" else state.upper()
        loc = r["LeafNodeLocation"]
        specs[text] = (state, f'{loc["FileName"].split("kubernetes@")[-1].split("/", 1)[-1]}:{loc["LineNumber"]}',
                       r["RunTime"] / 1e9)
    return specs
results = [load(r) for r in runs]
names = [os.path.basename(r.rstrip("/")) for r in runs]
print("| spec | " + " | ".join(names) + " | source |")
print("|---|" + "---|" * len(runs) + "---|")
for text in sorted(set().union(*results)):
    cells = [res[text][0] + f" ({res[text][2]:.0f}s)" if text in res else "-" for res in results]
    loc = next(res[text][1] for res in results if text in res)
    print(f"| {text.replace('|', '/')} | " + " | ".join(cells) + f" | {loc} |")
PY
}

runtime=dockyardd name="" procs=${NODE_E2E_PROCS:-6} focus_file="" dry_run=0 registry_data=""
timeout=${NODE_E2E_TIMEOUT:-6h} inner=0
skip_files=("$here/hack/node-e2e-skips.txt")
suite_flags=()  # more e2e_node.test flags (e.g. --feature-gates=...), for experiments
label_filter=NodeConformance  # ginkgo's label filter with --focus-file ("Conformance || NodeConformance", ...)
while (($#)); do
  case $1 in
    --runtime) runtime=$2; shift 2 ;;
    --name) name=$2; shift 2 ;;
    --procs) procs=$2; shift 2 ;;
    --focus-file) focus_file=$(realpath "$2"); shift 2 ;;
    --skip-file) skip_files+=("$(realpath "$2")"); shift 2 ;;
    --no-skip-list) skip_files[0]=/dev/null; shift ;;  # experiments: run what the list skips
    --timeout) timeout=$2; shift 2 ;;
    --suite-flag) suite_flags+=("$2"); shift 2 ;;
    --label-filter) label_filter=$2; shift 2 ;;
    --dry-run) dry_run=1; shift ;;
    --in-namespace) inner=1; shift ;;
    --registry-data) registry_data=$2; shift 2 ;;  # (inner) the host registry's storage
    --compare) shift; compare "$@"; exit 0 ;;
    *) die "unknown argument $1 (see the header of $0)" ;;
  esac
done
[[ $runtime == dockyardd || $runtime == containerd ]] || die "--runtime: dockyardd or containerd, not $runtime"
[[ -n $name ]] || name=$runtime${focus_file:+-subset}
[[ $name =~ ^[a-z0-9-]{1,24}$ ]] || die "--name: lowercase letters, digits and dashes, at most 24"
out=$build/node-e2e/$name
base=/var/lib/dockyard-node-e2e/$name

patterns() { # file -> its patterns (lines that are neither blank nor comments)
  grep -v -e '^[[:space:]]*#' -e '^[[:space:]]*$' "$1" || true
}

ginkgo_filters() { # -> the ginkgo CLI's focus/skip arguments, one per line
  if [[ -n $focus_file ]]; then
    patterns "$focus_file" | sed 's/^/--focus=/'
    echo "--label-filter=$label_filter"
  else
    echo "--focus=$DEFAULT_FOCUS"
  fi
  echo "--skip=$DEFAULT_SKIP"
  local f
  for f in "${skip_files[@]}"; do patterns "$f" | sed 's/^/--skip=/'; done
}

# --- inside the namespaces -------------------------------------------------------

# Mounts that appeared in this (the node's) mount namespace during the run
# anywhere but where the kubelet and the runtime keep pod state: a
# container's mount that propagated back to the node (a node's "/" is
# rshared, as under systemd; see in_namespace).
leaked_mounts() {
  [[ -f $base/mounts-at-start ]] || return 0
  awk -v base="$base" 'NR == FNR { old[$1] = 1; next }
    !($1 in old) && $5 !~ ("^(/var/lib/kubelet|/run/dyne2e|/run/containerd|/run/netns|" base ")(/|$)") { print }' \
    "$base/mounts-at-start" /proc/self/mountinfo
}

in_namespace() {
  # Globals: the EXIT trap reads them after this function has returned.
  runtime_pid="" endpoint="" pname="" pidfile=""
  cleanup_inside() {
    set +e
    leaked_mounts >"$out/leaked-mounts.txt"
    cat "/proc/net/xt_recent/$RECENT" >"$out/outside-attempts.txt" 2>/dev/null
    iptables -w -L -v -n >"$out/iptables.txt" 2>&1
    if [[ $runtime == dockyardd ]]; then
      if [[ -n $runtime_pid ]] && kill -0 "$runtime_pid" 2>/dev/null; then
        "$build/bin/crictl" -r "$endpoint" -t 60s rmp -fa >/dev/null 2>&1
        kill "$runtime_pid"
        for _ in $(seq 300); do kill -0 "$runtime_pid" 2>/dev/null || break; sleep 0.1; done
      fi
    else
      CONTAINERD_CRI_DIR=$base/containerd "$here/hack/containerd-cri.sh" stop >/dev/null 2>&1
    fi
    "$here/hack/registry.sh" stop
  }
  trap cleanup_inside EXIT

  # Mounts made from here on stay in this namespace (unshare made it
  # private). Inside it "/" is rshared, as on a systemd node, so a runtime
  # that lets a container's mounts propagate back shows it here
  # (leaked-mounts.txt) as it would on such a node.
  mount --make-rshared /
  # Each hierarchy again, now rooted at this cgroup namespace's root, on a
  # fresh tmpfs over /sys/fs/cgroup (the kernel refuses a hierarchy on the
  # mount point that already shows it). The host's mounts are only covered,
  # in this namespace.
  local mi mnt fstype opts links
  mi=$(awk '{for (i = 7; i <= NF; i++) if ($i == "-") { if ($(i+1) ~ /^cgroup2?$/) print $5, $(i+1), $(i+3); break }}' /proc/self/mountinfo)
  links=$(find /sys/fs/cgroup -maxdepth 1 -type l -printf '%f %l\n')
  mount -t tmpfs -o mode=755 tmpfs /sys/fs/cgroup
  while read -r mnt fstype opts; do
    [[ $mnt == /sys/fs/cgroup/* ]] || die "cgroup hierarchy outside /sys/fs/cgroup: $mnt"
    mkdir -p "$mnt"
    mount -t "$fstype" -o "$opts" "$fstype" "$mnt"
  done <<<"$mi"
  while read -r mnt opts; do
    [[ -n $mnt ]] && ln -s "$opts" "/sys/fs/cgroup/$mnt"
  done <<<"$links"
  if grep -v ':/$' /proc/self/cgroup; then die "not at the root of every hierarchy in the cgroup namespace"; fi
  # cgroup v2's "no internal processes" rule exempts only the real root: the
  # namespace's root could not hand controllers (hugetlb here) to its
  # children while this script sits in it. So the run's own processes live
  # in a leaf, /dyne2e-init, of each cgroup2 hierarchy, as a container's
  # init does under systemd.
  # The outside script moves unshare (this script's parent, outside this PID
  # namespace, so invisible here) into the leaf once it appears; the root is
  # empty when both have moved.
  while read -r mnt fstype _; do
    [[ $fstype == cgroup2 ]] || continue
    mkdir "$mnt/dyne2e-init"
    echo $$ >"$mnt/dyne2e-init/cgroup.procs"
    for _ in $(seq 300); do [[ -z $(tr -d '0\n' <"$mnt/cgroup.procs") ]] && break; sleep 0.1; done
    [[ -z $(tr -d '0\n' <"$mnt/cgroup.procs") ]] || die "processes left in the root of $mnt: $(cat "$mnt/cgroup.procs")"
  done <<<"$mi"
  # The runtime's cgroup (the suite passes --runtime-cgroups=/docker-daemon).
  while read -r mnt _ _; do
    mkdir -p "$mnt/docker-daemon"
    [[ -f $mnt/cpuset.cpus ]] && cat "$mnt/cpuset.cpus" >"$mnt/docker-daemon/cpuset.cpus" \
      && cat "$mnt/cpuset.mems" >"$mnt/docker-daemon/cpuset.mems"
  done <<<"$mi"

  local d src dst
  for d in kubelet log-pods log-containers cni run-dyne2e run-containerd run-netns; do mkdir -p "$base/$d"; done
  for d in "kubelet /var/lib/kubelet" "log-pods /var/log/pods" "log-containers /var/log/containers" \
           "cni /var/lib/cni" "run-dyne2e /run/dyne2e" "run-containerd /run/containerd" "run-netns /run/netns"; do
    read -r src dst <<<"$d"
    mkdir -p "$dst"
    mount --bind "$base/$src" "$dst"
  done
  echo "nameserver $NODE_IP" >"$base/resolv.conf"
  mount --bind "$base/resolv.conf" /etc/resolv.conf
  local sdrun
  if sdrun=$(command -v systemd-run); then
    : >"$base/no-systemd-run" && chmod 0644 "$base/no-systemd-run"
    mount --bind "$base/no-systemd-run" "$(realpath "$sdrun")"
  fi

  ip link set lo up
  ip link add "$UPLINK" type bridge
  ip addr add "$NODE_IP/32" dev "$UPLINK"
  ip link set "$UPLINK" up
  ip route add default dev "$UPLINK" src "$NODE_IP"
  sysctl -qw net.ipv4.ip_forward=1
  local chain
  for chain in OUTPUT FORWARD; do
    # Multicast (the bridges' own IGMP reports) goes nowhere and says nothing.
    iptables -w -A "$chain" -o "$UPLINK" -d 224.0.0.0/4 -j DROP
    iptables -w -A "$chain" -o "$UPLINK" -m recent --name "$RECENT" --rdest --set
    iptables -w -A "$chain" -o "$UPLINK" -p tcp -j REJECT --reject-with tcp-reset
    iptables -w -A "$chain" -o "$UPLINK" -j REJECT --reject-with icmp-net-unreachable
  done

  # The registry mirror: hack/registry.sh's registries in this netns, the
  # plain one serving the shared plain registry's storage through a read-only
  # bind mount. Its state dir is the run's own, so hack/containerd-cri.sh
  # (which starts registries too) finds these running; the host's pid files
  # name processes this PID namespace cannot see.
  local regdata=$registry_data
  [[ -d $regdata/docker ]] || die "no registry storage at $regdata (hack/registry.sh start, hack/build-node-e2e-images.sh)"
  export DOCKYARD_REGISTRY_DIR=$base/registry
  mkdir -p "$DOCKYARD_REGISTRY_DIR/plain/data"
  mount --bind "$regdata" "$DOCKYARD_REGISTRY_DIR/plain/data"
  mount -o remount,bind,ro "$DOCKYARD_REGISTRY_DIR/plain/data"
  "$here/hack/registry.sh" start >"$out/registry-start.log" 2>&1 || die "registry mirror: $(tail -5 "$out/registry-start.log")"

  mkdir -p "$base/cni-conf"
  cat >"$base/cni-conf/10-$CNI_NETWORK.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "$CNI_NETWORK",
  "plugins": [
    {"type": "bridge", "bridge": "$POD_BRIDGE", "isGateway": true, "ipMasq": false, "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_SUBNET"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "portmap", "capabilities": {"portMappings": true}},
    {"type": "loopback"}
  ]
}
JSON

  in_runtime_cgroup() { # command... : run it in /docker-daemon
    local m
    while read -r m _ _; do echo "$BASHPID" >"$m/docker-daemon/cgroup.procs"; done <<<"$mi"
    exec "$@"
  }
  if [[ $runtime == dockyardd ]]; then
    mkdir -p "$base/certs.d/$MIRROR"
    printf 'server = "http://%s"\n\n[host."http://%s"]\n  capabilities = ["pull", "resolve"]\n' "$MIRROR" "$MIRROR" \
      >"$base/certs.d/$MIRROR/hosts.toml"
    cat >"$base/dockyard.yaml" <<YAML
socket:
  path: /run/dyne2e/dockyard.sock
root_dir: $base/root
state_dir: /run/dyne2e
metrics_address: 127.0.0.1:1338
pause_image: $MIRROR/pause:3.10.2
log_level: info
registry:
  config_path: $base/certs.d
cni:
  conf_dir: $base/cni-conf
  cache_dir: $base/cni-cache
runtimes:
  default: dockyard-runc
  handlers:
    dockyard-runc:
      binary: dockyard-runc
    # The handler Kubernetes' RuntimeClass specs ask for: dockyard-runc
    # under another name.
    test-handler:
      binary: dockyard-runc
restrict_oom_score_adj: true
# The kubelet's cAdvisor asks containerd's socket which cgroups are
# containers (cri/cadvisor_endpoint.py): the Summary API's pod network and
# process stats and /metrics/cadvisor come from there. /run/containerd is
# this run's own (a bind of $base/run-containerd).
cadvisor:
  socket: /run/containerd/containerd.sock
YAML
    rm -f "$base/ready"
    ( in_runtime_cgroup "$here/.venv/bin/dockyardd" --config "$base/dockyard.yaml" --ready-file "$base/ready" ) \
      >"$out/dockyardd.log" 2>&1 </dev/null &
    runtime_pid=$!
    echo "$runtime_pid" >"$base/runtime.pid"
    for _ in $(seq 600); do [[ -e $base/ready ]] && break; kill -0 "$runtime_pid" 2>/dev/null || break; sleep 0.1; done
    [[ -e $base/ready ]] || die "dockyardd did not become ready: $(tail -20 "$out/dockyardd.log")"
    endpoint=unix:///run/dyne2e/dockyard.sock pname=dockyardd pidfile=$base/runtime.pid
  else
    ( CONTAINERD_CRI_DIR=$base/containerd CONTAINERD_CRI_CONFLIST=$base/cni-conf/10-$CNI_NETWORK.conflist \
        CONTAINERD_CRI_TEST_HANDLER=1 in_runtime_cgroup "$here/hack/containerd-cri.sh" start ) >"$out/containerd-start.log" 2>&1 \
      || die "containerd did not start: $(tail -20 "$out/containerd-start.log")"
    endpoint=unix://$base/containerd/containerd.sock pname=containerd pidfile=$base/containerd/pid
    # The kubelet's cAdvisor reads containerd's containers (their network and
    # process stats) through its default socket, as on an upstream node.
    ln -s "$base/containerd/containerd.sock" /run/containerd/containerd.sock
  fi
  log "$runtime up at $endpoint"
  cut -d' ' -f1 /proc/self/mountinfo >"$base/mounts-at-start"

  cat >"$base/repo-list.yaml" <<YAML
promoterE2eRegistry: $MIRROR/e2e-test-images
buildImageRegistry: $MIRROR/build-image
gcEtcdRegistry: $MIRROR
gcRegistry: $MIRROR
sigStorageRegistry: $MIRROR/sig-storage
privateRegistry: $MIRROR/k8s-authenticated-test
dockerLibraryRegistry: $MIRROR/library
cloudProviderGcpRegistry: $MIRROR/cloud-provider-gcp
invalidRegistry: invalid.registry.k8s.io/invalid
YAML
  # The suite's own defaults (test/e2e_node/jenkins/default-kubelet-config.yaml)
  # plus what this host needs: cgroup v1 allowed, no swap check, and an
  # oomScoreAdj root can set without CAP_SYS_RESOURCE.
  cat >"$base/kubelet-config.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
cgroupRoot: /
failCgroupV1: false
failSwapOn: false
oomScoreAdj: 0
podCIDR: "10.100.0.0/24"
volumeStatsAggPeriod: 10s
fileCheckFrequency: 10s
evictionPressureTransitionPeriod: 30s
evictionHard:
  memory.available: 250Mi
  nodefs.available: 10%
  nodefs.inodesFree: 5%
evictionMinimumReclaim:
  nodefs.available: 5%
  nodefs.inodesFree: 5%
serializeImagePulls: false
clusterDomain: cluster.local
resolvConf: $base/resolv.conf
YAML

  # ginkgo runs a precompiled suite in the binary's directory, and the suite
  # writes its kubeconfig, kubelet config and static pod dirs to its working
  # directory and starts the kubelet next to its binary: links in a work dir.
  local work=$base/work
  mkdir -p "$work"
  ln -sfn "$bin/e2e_node.test" "$work/e2e_node.test"
  ln -sfn "$(realpath "$bin/kubelet")" "$work/kubelet"
  local filters
  mapfile -t filters < <(ginkgo_filters)
  log "ginkgo --procs=$procs, report in $out"
  local rc=0
  (cd "$work" && env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
      KUBE_TEST_REPO_LIST="$base/repo-list.yaml" \
      "$bin/ginkgo" --procs="$procs" --timeout="$timeout" "${filters[@]}" \
        --no-color --junit-report=junit.xml --json-report=report.json --output-dir="$out" \
        "$work/e2e_node.test" -- \
        --container-runtime-endpoint="$endpoint" --container-runtime-process-name="$pname" \
        --container-runtime-pid-file="$pidfile" --prepull-images=false \
        --kubelet-config-file="$base/kubelet-config.yaml" --kubelet-flags="--node-ip=$NODE_IP" \
        --dns-domain=cluster.local --report-dir="$out" --node-name="$(hostname | tr A-Z a-z)" "${suite_flags[@]}" \
    ) >"$out/ginkgo.log" 2>&1 || rc=$?
  log "ginkgo exited $rc"
  return "$rc"
}

# --- outside -------------------------------------------------------------------

# The storage of the plain registry the images were pushed to: that of the
# docker-registry listening on 127.0.0.1:5000, which is this checkout's
# (build/registry) unless another checkout on this machine started its
# registry first (hack/registry.sh then finds the port answering and leaves
# it, so the pushes went there); else build/registry's.
host_registry_data() {
  local pid conf dir
  pid=$(ss -Hltnp "src $MIRROR" 2>/dev/null | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)
  if [[ -n $pid ]] && grep -qa docker-registry "/proc/$pid/cmdline" 2>/dev/null; then
    conf=$(tr '\0' '\n' <"/proc/$pid/cmdline" | grep -m1 '\.yml$' || true)
    dir=$(awk '$1 == "rootdirectory:" {print $2; exit}' "$conf" 2>/dev/null || true)
    [[ -n $dir ]] && { echo "$dir"; return; }
  fi
  echo "${DOCKYARD_REGISTRY_DIR:-$build/registry}/plain/data"
}

# This run's cgroup in every hierarchy, under this shell's own cgroup there.
cgroup_dirs() {
  python3 - "$name" <<'PY'
import sys
name = sys.argv[1]
own = {}
for line in open("/proc/self/cgroup"):
    _, ctrls, path = line.rstrip("\n").split(":", 2)
    own[frozenset(c for c in ctrls.split(",") if c)] = path
for line in open("/proc/self/mountinfo"):
    fields = line.split()
    sep = fields.index("-")
    fstype, opts, mnt = fields[sep + 1], fields[sep + 3], fields[4]
    if fstype == "cgroup2":
        key = frozenset()
    elif fstype == "cgroup":
        key = frozenset(o for o in opts.split(",") if o not in ("rw", "ro") and "=" not in o or o.startswith("name="))
    else:
        continue
    if key in own:
        print(f"{mnt}{own[key].rstrip('/')}/dyne2e-{name}")
PY
}

kill_cgroup_tree() { # dir: kill every process in it and below (all descend from this run), thawing frozen ones first
  local d=$1 procs
  [[ -d $d ]] || return 0
  for _ in $(seq 50); do
    find "$d" -name freezer.state -exec sh -c 'echo THAWED >"$1"' _ {} \; 2>/dev/null || true
    procs=$(find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u)
    [[ -z $procs ]] && return 0
    kill -9 $procs 2>/dev/null || true
    sleep 0.2
  done
}

remove_cgroups() {
  local d
  for d in "${cgdirs[@]}"; do kill_cgroup_tree "$d"; done
  for d in "${cgdirs[@]}"; do
    [[ -d $d ]] && find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
    [[ -d $d ]] && echo "run-node-e2e.sh: could not remove cgroup $d" >&2
  done
  return 0
}

summarize() { # report.json seconds
  python3 - "$1" "$2" <<'PY'
import collections, json, sys
# Specs a ginkgo filter left out are "skipped" with no failure; a spec that
# skipped itself at run time (e2eskipper) carries its reason as the failure.
counts = collections.Counter()
for spec in (json.load(open(sys.argv[1])) or [{}])[0].get("SpecReports") or []:
    if spec["LeafNodeType"] != "It":
        continue
    state = spec["State"]
    if state == "skipped":
        state = "skipped" if spec.get("Failure") else "not selected"
    elif state != "passed":
        state = "failed"
    counts[state] += 1
print(f"run-node-e2e: {counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped "
      f"(by the spec itself) in {int(sys.argv[2]) // 60} min; {counts['not selected']} not selected")
PY
}

dry_run_outside() {
  local filters
  mapfile -t filters < <(ginkgo_filters)
  # ginkgo runs the suite in its binary's directory: a link keeps what the
  # suite writes there (kubelet.conf.d) out of build/node-e2e/bin.
  mkdir -p "$out/dry-run"
  ln -sfn "$bin/e2e_node.test" "$out/dry-run/e2e_node.test"
  "$bin/ginkgo" --dry-run "${filters[@]}" --no-color --json-report=report.json --output-dir="$out" \
    "$out/dry-run/e2e_node.test" >"$out/dry-run.log" 2>&1
  summarize "$out/report.json" 0
}

main_outside() {
  [[ $(id -u) == 0 ]] || die "run as root"
  local f d
  for f in e2e_node.test ginkgo kubelet; do
    [[ -x $bin/$f ]] || die "$bin/$f missing: run hack/install-node-e2e.sh and hack/install-kubelet.sh (make node-e2e does)"
  done
  if ((dry_run)); then
    mkdir -p "$out"
    dry_run_outside
    return 0
  fi
  # One run of a name at a time: a second one would remove the first's state,
  # cgroups and reports. It waits here; the lock goes with this script.
  mkdir -p "$(dirname "$base")"
  exec {lockfd}>"$base.lock"
  flock -n "$lockfd" || { log "waiting for the other run named $name"; flock "$lockfd"; }
  rm -rf "$out" && mkdir -p "$out"
  [[ -e $base ]] && rm -rf --one-file-system "$base"
  mkdir -p "$base"

  mapfile -t cgdirs < <(cgroup_dirs)
  ((${#cgdirs[@]})) || die "found no cgroup hierarchies"
  for d in "${cgdirs[@]}"; do
    [[ -d $d ]] && { echo "run-node-e2e: removing $d left by an earlier run"; remove_cgroups; break; }
  done
  for d in "${cgdirs[@]}"; do
    mkdir "$d"
    if [[ -f $d/cpuset.cpus ]]; then
      cat "$(dirname "$d")/cpuset.cpus" >"$d/cpuset.cpus"
      cat "$(dirname "$d")/cpuset.mems" >"$d/cpuset.mems"
    fi
  done

  # SIGTERM (a CI timeout, ^C in a terminal) ends the whole run at once:
  # every process of it is in these cgroups.
  trap 'log "interrupted: killing the run"; remove_cgroups; rm -rf --one-file-system "$base"; exit 143' TERM INT
  local start rc=0 secs inner_args
  start=$(date +%s)
  log "$runtime at $(git -C "$here" rev-parse --short HEAD)$(git -C "$here" diff --quiet HEAD -- cri shim runtime api 2>/dev/null \
    || echo ' (plus uncommitted changes in cri/shim/runtime/api)'), $name, $procs procs"
  { git -C "$here" rev-parse HEAD; git -C "$here" status --short -- cri shim runtime api; } >"$out/commit.txt"
  inner_args=(--in-namespace --runtime "$runtime" --name "$name" --procs "$procs" --timeout "$timeout"
              --registry-data "$(host_registry_data)")
  [[ -n $focus_file ]] && inner_args+=(--focus-file "$focus_file")
  [[ ${skip_files[0]} == /dev/null ]] && inner_args+=(--no-skip-list)
  for f in "${skip_files[@]:1}"; do inner_args+=(--skip-file "$f"); done
  for f in "${suite_flags[@]}"; do inner_args+=(--suite-flag "$f"); done
  inner_args+=(--label-filter "$label_filter")
  (
    for d in "${cgdirs[@]}"; do echo "$BASHPID" >"$d/cgroup.procs"; done
    exec {lockfd}>&- nice -n "${NODE_E2E_NICE:-10}" unshare --net --mount --cgroup --ipc --pid --fork --mount-proc \
      --propagation private "$0" "${inner_args[@]}"
  ) &
  local unshare_pid=$!
  # unshare waits in the namespace's root cgroup; in cgroup v2 it follows the
  # init into its leaf (see in_namespace) as soon as the leaf exists.
  for d in "${cgdirs[@]}"; do
    [[ -f $d/cgroup.controllers ]] || continue
    while [[ ! -d $d/dyne2e-init ]] && kill -0 "$unshare_pid" 2>/dev/null; do sleep 0.1; done
    [[ -d $d/dyne2e-init ]] && echo "$unshare_pid" >"$d/dyne2e-init/cgroup.procs"
  done
  wait "$unshare_pid" || rc=$?
  remove_cgroups
  rm -rf --one-file-system "$base"
  secs=$(( $(date +%s) - start ))
  echo "$secs" >"$out/wall-seconds.txt"
  [[ -f $out/report.json ]] && summarize "$out/report.json" "$secs" | tee "$out/summary.txt"
  if [[ -s $out/leaked-mounts.txt ]]; then
    echo "run-node-e2e: $(wc -l <"$out/leaked-mounts.txt") mounts propagated from containers to the node (leaked-mounts.txt)"
  fi
  if [[ -s $out/outside-attempts.txt ]]; then
    echo "run-node-e2e: addresses outside the run were tried (rejected at once):"; cat "$out/outside-attempts.txt"
  fi
  log "reports in $out (junit.xml, report.json, ginkgo.log, kubelet.log, $runtime log)"
  return "$rc"
}

# Bash reads a script while it runs it; everything above is a definition, so
# editing this file cannot change a run that is under way.
if ((inner)); then in_namespace; else main_outside; fi; exit $?
