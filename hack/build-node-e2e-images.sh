#!/usr/bin/env bash
# Build, offline, every image the focused node e2e suite ([NodeConformance],
# hack/run-node-e2e.sh) pulls, and push them to the plain local registry
# (hack/registry.sh, 127.0.0.1:5000). The suite is pointed at that registry by
# its own KUBE_TEST_REPO_LIST file (hack/run-node-e2e.sh writes it), so a name
# keeps its path under the registry list's prefix:
#   registry.k8s.io/e2e-test-images/agnhost:2.66.1 -> 127.0.0.1:5000/e2e-test-images/agnhost:2.66.1
#   registry.k8s.io/pause:3.10.2                   -> 127.0.0.1:5000/pause:3.10.2
#
# Which images, and what each must hold, was read from k8s.io/kubernetes
# v1.37.2's test/utils/image/manifest.go, test/images/*/Dockerfile and the
# focused specs (the table at the bottom). The sources:
#   - Go programs from the suite's own module graph (hack/install-node-e2e.sh):
#     agnhost and nonewprivs' nnp, both CGO_ENABLED=0;
#   - Debian packages, downloaded with apt-get and unpacked with dpkg-deb (no
#     maintainer scripts run, so alternatives links are made here);
#   - busybox 1.37.0, the upstream busybox image's version, built here with
#     its defconfig from the orig tarball of Debian's busybox source package
#     (trixie; fetched with apt-get source through a private apt config, so
#     the system's sources stay as they are). Not Debian's binary: Debian
#     leaves out nmeter (the container lifecycle specs' millisecond clock)
#     and patches ash to drop environment entries whose names are not shell
#     identifiers (envFrom keys like data-1, which the ConfigMap/Secret specs
#     expect to reach `env`), and the specs match ash's exact messages;
#   - from hack/build-critest-images.sh and hack/build-images.sh: the nginx
#     stand-in and pause (catatonit).
# Where the suite names two versions of one image (agnhost 2.66.1 and 2.55,
# nginx 1.27.0-2 and 1.28.0-2) the second gets a layer with a marker file, so
# the two are distinct images as the specs that switch between them expect.
#
# Everything lives in build/node-e2e/images/ (debs, rootfs trees, an OCI
# layout made with umoci). Cached as build-critest-images.sh is: the layout is
# rebuilt only when the key (this script, the Go binaries, the package
# versions, the busybox source, the critest layout) changes; an image is
# pushed only when the
# registry's manifest digest differs from the layout's.
#   hack/build-node-e2e-images.sh          build + push
#   hack/build-node-e2e-images.sh --list   print "layout-tag registry-path" pairs
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
build=${DOCKYARD_BUILD_DIR:-$here/build}
work=$build/node-e2e/images
layout=$work/oci
gobin=$build/node-e2e/bin
critest_layout=$build/critest-images/oci
registry=${NODE_E2E_REGISTRY:-127.0.0.1:5000}
PATH_ENV="PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# layout tag -> registry path.
PUSHES=(
  "busybox           e2e-test-images/busybox:1.37.0-2"
  "agnhost           e2e-test-images/agnhost:2.66.1"
  "agnhost-prev      e2e-test-images/agnhost:2.55"
  "nginx             e2e-test-images/nginx:1.27.0-2"
  "nginx-new         e2e-test-images/nginx:1.28.0-2"
  "nonewprivs        e2e-test-images/nonewprivs:1.4"
  "nonroot           e2e-test-images/nonroot:1.5"
  "ipc-utils         e2e-test-images/ipc-utils:1.4"
  "glibc-dns-testing e2e-test-images/glibc-dns-testing:2.1.1"
  "pause             pause:3.10.2"
  "pause             pause:3.10"
)

if [[ ${1:-} == --list ]]; then
  printf '%s\n' "${PUSHES[@]}" | awk '{print $1, $2}'
  exit 0
fi

# agnhost's tools, as its upstream image has them from Alpine (test/images/
# agnhost/Dockerfile: bind-tools curl netcat-openbsd iproute2 bash
# util-linux-misc socat); busybox 1.37 supplies sh and the rest of the
# commands, as Alpine's does. glibc-dns-testing is Debian with dnsutils;
# `hostname -f` is what its specs run.
AGNHOST_DEBS=(bash curl netcat-openbsd iproute2 bind9-dnsutils util-linux socat hostname)
BUSYBOX_SUITE=trixie
BUSYBOX_VERSION=1.37.0
# Dependencies that only serve package management or maintainer scripts.
SKIP_DEBS='^(debconf|cdebconf|dpkg|install-info|base-files|debianutils|libdebian-installer4|libnewt0\.52|libslang2|libtextwrap1|perl-base|tar|readline-common|libaudit-common|libtirpc-common|gcc-12-base)$'

for tool in umoci skopeo dpkg-deb apt-get apt-cache jq gcc make bzip2; do
  command -v "$tool" >/dev/null || { echo "build-node-e2e-images.sh: $tool missing (hack/apt-packages.txt)" >&2; exit 1; }
done
"$here/hack/install-node-e2e.sh"
"$here/hack/build-critest-images.sh" >/dev/null
kube_dir=$(cd "$build/go/node-e2e" && PATH=$PATH:/usr/local/go/bin go list -m -f '{{.Dir}}' k8s.io/kubernetes)
[[ -d $kube_dir/test/images/agnhost/porter ]] || { echo "build-node-e2e-images.sh: no k8s.io/kubernetes sources at $kube_dir" >&2; exit 1; }

deb_closure() { # packages... -> package names of their dependency closure minus SKIP_DEBS
  apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
      --no-replaces --no-enhances --no-pre-depends "$@" 2>/dev/null \
    | grep -v '^ \|<' | sort -u | grep -Ev "$SKIP_DEBS"
}

# busybox's source: the orig tarball of Debian's source package, through a
# private apt config (its own sources list, lists and cache under $work/apt).
busybox_source() { # -> path of busybox-$BUSYBOX_VERSION.tar.bz2 (downloaded once, checked by apt)
  local apt=$work/apt tarball=$work/apt/src/busybox_$BUSYBOX_VERSION.orig.tar.bz2
  if [[ ! -s $tarball ]]; then
    mkdir -p "$apt"/{lists/partial,cache/archives/partial,src}
    echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $BUSYBOX_SUITE main" \
      >"$apt/sources.list"
    local opts=(-o Dir::Etc::SourceList="$apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
                -o Dir::State::Lists="$apt/lists" -o Dir::Cache="$apt/cache")
    apt-get "${opts[@]}" update >/dev/null
    (cd "$apt/src" && apt-get "${opts[@]}" source --download-only "busybox" >/dev/null 2>&1)
    [[ -s $tarball ]] || { echo "build-node-e2e-images.sh: no busybox_$BUSYBOX_VERSION.orig.tar.bz2 from $BUSYBOX_SUITE" >&2; exit 1; }
  fi
  echo "$tarball"
}

# busybox built with its defconfig (what the upstream image ships), niced;
# cached by the tarball's hash.
build_busybox() { # -> path of the binary
  local tarball out=$work/busybox-build sum
  tarball=$(busybox_source)
  sum=$(sha256sum "$tarball" | cut -d' ' -f1)
  if [[ ! -x $out/busybox || $(cat "$out/.key" 2>/dev/null) != "$sum" ]]; then
    echo "build-node-e2e-images: building busybox $BUSYBOX_VERSION (defconfig)" >&2
    rm -rf "$out" && mkdir -p "$out"
    tar -xjf "$tarball" -C "$out" --strip-components=1
    (cd "$out" && make defconfig >/dev/null && nice -n 10 make -j"$(nproc)" busybox >"$out/build.log" 2>&1) \
      || { echo "build-node-e2e-images.sh: busybox build failed; see $out/build.log" >&2; exit 1; }
    echo "$sum" >"$out/.key"
  fi
  echo "$out/busybox"
}
busybox_bin=$(build_busybox)

key=$( {
  sha256sum "$0" "$busybox_bin" "$gobin/agnhost" "$gobin/nnp" | cut -d' ' -f1
  jq -c .manifests "$critest_layout/index.json"
  deb_closure libc6 "${AGNHOST_DEBS[@]}" | xargs apt-cache policy 2>/dev/null | grep -E '^[a-z0-9]|Candidate'
  dpkg-query -W -f='${Package}=${Version}\n' umoci
} | sha256sum | cut -d' ' -f1)
stamp=$work/.key

# --- building -----------------------------------------------------------------

# Same layer discipline as hack/build-critest-images.sh: GNU tar, numeric
# owners, fixed mtime, added verbatim (umoci's own `insert` writes a tar
# without its end-of-archive blocks).
layer_tar() { # dir -> path of a tar of dir's contents
  local out=$work/layers/$(basename "$1").tar entries
  mkdir -p "$work/layers"
  mapfile -t entries < <(cd "$1" && ls -A)
  tar --numeric-owner --sort=name --mtime=@1700000000 -C "$1" -cf "$out" "${entries[@]}"
  echo "$out"
}

new_image() { # tag rootfs [umoci config flags...]
  local tag=$1 root=$2; shift 2
  umoci new --image "$layout:$tag"
  umoci raw add-layer --image "$layout:$tag" --history.created_by "hack/build-node-e2e-images.sh: $tag" \
    "$(layer_tar "$root")"
  umoci config --image "$layout:$tag" --os linux --architecture amd64 \
    --config.env "$PATH_ENV" --config.workingdir / "$@"
}

derive() { # base new-tag src-dir [umoci config flags...]  (one layer: src-dir at /)
  local base=$1 tag=$2 src=$3; shift 3
  umoci raw add-layer --image "$layout:$base" --tag "$tag" \
    --history.created_by "hack/build-node-e2e-images.sh: $tag" "$(layer_tar "$src")"
  if (($#)); then umoci config --image "$layout:$tag" "$@"; fi
}

marker() { # dir text: a one-file tree that makes a derived image distinct
  mkdir -p "$1/etc" && echo "$2" >"$1/etc/dockyard-image-version"
}

debian_rootfs() { # dir packages...: the packages' closure unpacked, with what their scripts would add
  local root=$1; shift
  local debs=$work/debs pkgs
  mapfile -t pkgs < <(deb_closure "$@")
  mkdir -p "$debs"
  (cd "$debs" && rm -f ./*.deb && apt-get download "${pkgs[@]}" >/dev/null)
  mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,root,home,proc,sys,dev,run,var/run,var/tmp}
  install -d -m 1777 "$root/tmp"
  chmod 0700 "$root/root"
  local deb
  for deb in "$debs"/*.deb; do dpkg-deb -x "$deb" "$root"; done
  # Alternatives maintainer scripts would make.
  [[ -e $root/bin/nc.openbsd ]] && ln -sfn nc.openbsd "$root/bin/nc"
  # Docs, manuals and translations are dead weight in a test image.
  rm -rf "$root"/usr/share/{doc,man,info,locale,lintian,bug}
  cat >"$root/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
PASSWD
  cat >"$root/etc/group" <<'GROUP'
root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
www-data:x:33:
users:x:100:
nogroup:x:65534:
GROUP
  printf 'passwd: files\ngroup: files\nshadow: files\nhosts: files dns\nnetworks: files\nprotocols: files\nservices: files\n' \
    >"$root/etc/nsswitch.conf"
  : >"$root/etc/hosts"
  : >"$root/etc/resolv.conf"
}

add_busybox() { # rootfs: busybox as /bin/busybox, /bin/sh and every applet no package provides (as Alpine)
  local root=$1 applet
  install -m 0755 "$busybox_bin" "$root/bin/busybox"
  for applet in $("$busybox_bin" --list); do
    [[ $applet == busybox ]] && continue
    [[ -e $root/bin/$applet || -e $root/usr/bin/$applet || -e $root/sbin/$applet || -e $root/usr/sbin/$applet ]] && continue
    ln "$root/bin/busybox" "$root/bin/$applet"
  done
}

build_layout() {
  echo "build-node-e2e-images: building $layout"
  rm -rf "$layout" "$work/rootfs" "$work/layers"
  mkdir -p "$work/rootfs"
  umoci init --layout "$layout"
  local r=$work/rootfs

  # busybox: upstream's busybox 1.37 (built above) on Debian's libc6.
  debian_rootfs "$r/busybox" libc6
  add_busybox "$r/busybox"
  new_image busybox "$r/busybox" --config.cmd sh

  # The critest stand-ins: the nginx master + busybox httpd, and pause.
  skopeo copy -q oci:"$critest_layout":nginx oci:"$layout":nginx
  skopeo copy -q oci:"$critest_layout":pause oci:"$layout":pause
  marker "$r/nginx-new" nginx-1.28.0-2
  derive nginx nginx-new "$r/nginx-new"

  # nonroot: busybox whose image user is 1234 (test/images/nonroot).
  umoci config --image "$layout:busybox" --tag nonroot --config.user 1234

  # nonewprivs: the suite's nnp, setuid root (test/images/nonewprivs).
  mkdir -p "$r/nonewprivs/usr/local/bin"
  install -m 4755 -o 0 -g 0 "$gobin/nnp" "$r/nonewprivs/usr/local/bin/nnp"
  derive busybox nonewprivs "$r/nonewprivs" --config.cmd nnp

  # agnhost: Debian userland + the agnhost binary, laid out as upstream's.
  local a=$r/agnhost
  debian_rootfs "$a" "${AGNHOST_DEBS[@]}"
  add_busybox "$a"
  install -m 0755 "$gobin/agnhost" "$a/agnhost"
  ln -s agnhost "$a/agnhost-2"
  install -d "$a/uploads"
  install -m 0644 "$kube_dir/test/images/agnhost/porter/localhost.crt" "$a/localhost.crt"
  install -m 0600 "$kube_dir/test/images/agnhost/porter/localhost.key" "$a/localhost.key"
  # SupplementalGroups specs: uid 1000 in the image, in group 50000.
  echo "user-defined-in-image:x:1000:1000::/home/user-defined-in-image:/bin/sh" >>"$a/etc/passwd"
  printf 'user-defined-in-image:x:1000:\ngroup-defined-in-image:x:50000:user-defined-in-image\n' >>"$a/etc/group"
  install -d -o 1000 -g 1000 "$a/home/user-defined-in-image"
  local ports=() p
  for p in 80 8080 8081 9376 5000; do ports+=(--config.exposedports "$p/tcp"); done
  new_image agnhost "$a" --config.entrypoint /agnhost --config.cmd pause "${ports[@]}"
  marker "$r/agnhost-prev" agnhost-2.55
  derive agnhost agnhost-prev "$r/agnhost-prev"

  # ipc-utils and glibc-dns-testing need util-linux's ipcmk/ipcs and glibc's
  # resolver with hostname(1); agnhost's userland has both. No entrypoint:
  # their specs name the command.
  umoci config --image "$layout:agnhost" --tag ipc-utils --clear config.entrypoint --config.cmd sh
  umoci config --image "$layout:agnhost" --tag glibc-dns-testing --clear config.entrypoint --config.cmd sh

  umoci gc --layout "$layout"
  rm -rf "$work/layers"
  echo "$key" >"$stamp"
}

# --- pushing ------------------------------------------------------------------

layout_digest() { # tag
  jq -r --arg t "$1" '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == $t) | .digest' \
    "$layout/index.json"
}

push_all() {
  "$here/hack/registry.sh" start
  local line tag dest want have
  for line in "${PUSHES[@]}"; do
    read -r tag dest <<<"$line"
    want=$(layout_digest "$tag")
    [[ -n $want ]] || { echo "build-node-e2e-images.sh: no tag $tag in $layout" >&2; exit 1; }
    have=$(skopeo inspect --raw --tls-verify=false docker://"$registry/$dest" 2>/dev/null | sha256sum | cut -d' ' -f1 || true)
    [[ sha256:$have == "$want" ]] && continue
    echo "build-node-e2e-images: push $registry/$dest"
    skopeo copy -q --preserve-digests --dest-tls-verify=false oci:"$layout:$tag" docker://"$registry/$dest"
  done
}

[[ -f $stamp && $(cat "$stamp") == "$key" && -e $layout/index.json ]] || build_layout
push_all

# What the focused specs need of each image (k8s.io/kubernetes v1.37.2):
#   busybox:1.37.0-2     sh (ash: its exact error messages; envFrom keys like
#                        data-1 reach commands), the usual applets by PATH
#                        (sleep, cat, ls, id, env, stat, test, sysctl, pidof,
#                        dd, nslookup, ...), nmeter -d0 '%3t' (the container
#                        lifecycle specs' clock)
#   agnhost:2.66.1       /agnhost with its subcommands (netexec, liveness,
#                        mounttest, test-webserver, entrypoint-tester, pause,
#                        logs-generator, ...), /agnhost-2, sh, curl, nc, ip,
#                        dig, and busybox's applets (nmeter too)
#   agnhost:2.55         a second agnhost image (AgnhostPrev) for image changes
#   nginx:1.27.0-2       a process called nginx writing /var/run/nginx.pid
#                        (host PID specs), serving GET / on 80; mirror pods
#   nginx:1.28.0-2       a distinct nginx image (NginxNew)
#   nonewprivs:1.4       setuid-root nnp printing "Effective uid: N"
#   nonroot:1.5          image user 1234
#   ipc-utils:1.4        ipcs / ipcmk (host IPC specs)
#   glibc-dns-testing    hostname -f through glibc's resolver (FQDN specs)
#   pause:3.10.2         the suite's pause image (static pods, pod specs)
