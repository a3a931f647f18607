#!/usr/bin/env bash
# Build every image critest v1.34.0 pulls, offline, from Debian packages, and
# push them to the plain local registry (hack/registry.sh, 127.0.0.1:5000)
# under the repository paths critest names. Runtimes reach them through
# hosts.toml mirrors (registry.k8s.io, gcr.io, public.ecr.aws, ... ->
# http://127.0.0.1:5000), so a name keeps its path and loses its host:
#   registry.k8s.io/e2e-test-images/busybox:1.29-2 -> e2e-test-images/busybox:1.29-2
#   gcr.io/k8s-staging-cri-tools/test-image-1      -> k8s-staging-cri-tools/test-image-1
#   public.ecr.aws/docker/library/busybox:1        -> docker/library/busybox:1
#
# What each image must do was read from cri-tools' pkg/validate and
# pkg/benchmark (see the table at the bottom). Facts that shaped the base:
#   - critest's busybox runs commands by PATH (`sh -c "pgrep sleep"`, masked
#     paths, exec of /bin/ls...). Debian's busybox-static shell runs applets
#     in-process and ignores PATH, so the base is Debian's *dynamic* busybox
#     plus the libc6 it links against, with every applet a hardlink in /bin.
#   - That busybox has no pgrep or ipcs applet: shell stand-ins
#     (hack/images/pgrep, hack/images/ipcs) take their place.
#   - nonewprivs needs a setuid-root program printing "Effective uid: N";
#     nginx needs a process called nginx whose cmdline says "master process"
#     and which writes /var/run/nginx.pid: both are small C programs in
#     hack/images/, linked statically with Debian's gcc.
#
# Everything lives in build/critest-images/ (debs, rootfs trees, an OCI layout
# made with umoci). Cached: the layout is rebuilt only when the key (this
# script, hack/images/*, the package versions) changes, and an image is pushed
# only when the registry's manifest digest differs from the layout's.
#   hack/build-critest-images.sh            build + push
#   hack/build-critest-images.sh --list     print "layout-tag registry-path" pairs
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
build=${DOCKYARD_BUILD_DIR:-$here/build}
work=$build/critest-images
layout=$work/oci
registry=${CRITEST_REGISTRY:-127.0.0.1:5000}
PATH_ENV="PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEBS=(busybox libc6)

# layout tag -> registry path (one tag may be pushed under several names).
PUSHES=(
  "busybox          e2e-test-images/busybox:1.29-2"
  "nginx            e2e-test-images/nginx:1.14-2"
  "httpd            e2e-test-images/httpd:2.4.39-4"
  "nonewprivs       e2e-test-images/nonewprivs:1.3"
  "hostnet-nginx    k8s-staging-cri-tools/hostnet-nginx-amd64:latest"
  "user-uid         k8s-staging-cri-tools/test-image-user-uid:latest"
  "user-username    k8s-staging-cri-tools/test-image-user-username:latest"
  "user-uid-group   k8s-staging-cri-tools/test-image-user-uid-group:latest"
  "user-username-group k8s-staging-cri-tools/test-image-user-username-group:latest"
  "predefined-group k8s-staging-cri-tools/test-image-predefined-group:latest"
  "test-image-1     k8s-staging-cri-tools/test-image-1:latest"
  "test-image-2     k8s-staging-cri-tools/test-image-2:latest"
  "test-image-3     k8s-staging-cri-tools/test-image-3:latest"
  "test-image-latest k8s-staging-cri-tools/test-image-latest:latest"
  "test-image-digest k8s-staging-cri-tools/test-image-digest:latest"
  "test-image-tags  k8s-staging-cri-tools/test-image-tags:1"
  "test-image-tags  k8s-staging-cri-tools/test-image-tags:2"
  "test-image-tags  k8s-staging-cri-tools/test-image-tags:3"
  "test-image-tag-test k8s-staging-cri-tools/test-image-tag:test"
  "test-image-tag-all k8s-staging-cri-tools/test-image-tag:all"
  "bench-1.35.0-glibc docker/library/busybox:1.35.0-glibc"
  "bench-1-uclibc   docker/library/busybox:1-uclibc"
  "bench-1          docker/library/busybox:1"
  "bench-1-glibc    docker/library/busybox:1-glibc"
  "bench-1-musl     docker/library/busybox:1-musl"
  "pause            pause:3.10"
)

if [[ ${1:-} == --list ]]; then
  printf '%s\n' "${PUSHES[@]}" | awk '{print $1, $2}'
  exit 0
fi

for tool in umoci skopeo gcc dpkg-deb jq; do
  command -v "$tool" >/dev/null || { echo "build-critest-images.sh: $tool missing (hack/apt-packages.txt)" >&2; exit 1; }
done
[[ -e /usr/lib/x86_64-linux-gnu/libc.a ]] || { echo "build-critest-images.sh: libc6-dev missing (static linking)" >&2; exit 1; }

key=$( {
  sha256sum "$0" "$here"/hack/images/* | cut -d' ' -f1
  apt-cache policy "${DEBS[@]}" 2>/dev/null | grep -E '^[a-z0-9]|Candidate'
  dpkg-query -W -f='${Package}=${Version}\n' umoci gcc libc6-dev
} | sha256sum | cut -d' ' -f1)
stamp=$work/.key

# --- building -----------------------------------------------------------------

base_rootfs() { # dir
  local root=$1 debs=$work/debs
  mkdir -p "$debs"
  if ! ls "$debs"/busybox_*.deb "$debs"/libc6_*.deb >/dev/null 2>&1; then
    (cd "$debs" && apt-get download "${DEBS[@]}")
  fi
  local x=$work/extract
  rm -rf "$x" && mkdir -p "$x"
  dpkg-deb -x "$debs"/busybox_*.deb "$x/busybox"
  dpkg-deb -x "$debs"/libc6_*.deb "$x/libc6"

  mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,usr/local/bin,etc,root,home,proc,sys,dev,run,var/run,var/tmp,lib64,lib/x86_64-linux-gnu}
  install -d -m 1777 "$root/tmp"
  chmod 0700 "$root/root"
  # The dynamic loader and the libraries busybox links (libc, libresolv) plus
  # the rest of libc6's /lib, so getpwnam and friends work too.
  cp -a "$x/libc6/lib/x86_64-linux-gnu/." "$root/lib/x86_64-linux-gnu/"
  cp -a "$x/libc6/lib64/." "$root/lib64/"
  install -m 0755 "$x/busybox/bin/busybox" "$root/bin/busybox"
  local applet
  for applet in $("$root/bin/busybox" --list); do
    [[ $applet == busybox || -e $root/bin/$applet ]] && continue
    ln "$root/bin/busybox" "$root/bin/$applet"
  done
  install -m 0755 "$here/hack/images/pgrep" "$root/bin/pgrep"
  install -m 0755 "$here/hack/images/ipcs" "$root/bin/ipcs"

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
  : >"$root/etc/hosts"
  : >"$root/etc/resolv.conf"
  echo busybox >"$root/etc/hostname"
}

# Layers are tarred by GNU tar and added verbatim: umoci 0.4.7's `insert`
# writes gzip streams whose tar lacks the last member's padding and the
# end-of-archive blocks (tar tvzf: "Unexpected EOF in archive"). Go's tar
# reader shrugs that off; a strict reader rightly refuses it.
layer_tar() { # dir -> path of a tar of dir's contents (numeric root ownership kept)
  local out=$work/layers/$(basename "$1").tar
  mkdir -p "$work/layers"
  # Members named etc/..., not ./etc/...: no entry for the root itself.
  local entries; mapfile -t entries < <(cd "$1" && ls -A)
  tar --numeric-owner --sort=name --mtime=@1700000000 -C "$1" -cf "$out" "${entries[@]}"
  echo "$out"
}

new_image() { # tag rootfs cmd...
  local tag=$1 root=$2; shift 2
  umoci new --image "$layout:$tag"
  umoci raw add-layer --image "$layout:$tag" --history.created_by "hack/build-critest-images.sh: $tag" \
    "$(layer_tar "$root")"
  local args=() c
  for c in "$@"; do args+=(--config.cmd "$c"); done
  umoci config --image "$layout:$tag" --os linux --architecture amd64 \
    --config.env "$PATH_ENV" --config.workingdir / "${args[@]}"
}

derive() { # base new-tag src-dir [umoci config flags...]  (one layer: src-dir at /)
  local base=$1 tag=$2 src=$3; shift 3
  umoci raw add-layer --image "$layout:$base" --tag "$tag" \
    --history.created_by "hack/build-critest-images.sh: $tag" "$(layer_tar "$src")"
  if (($#)); then umoci config --image "$layout:$tag" "$@"; fi
}

build_layout() {
  echo "build-critest-images: building $layout"
  rm -rf "$layout" "$work/rootfs" "$work/bin" "$work/layers"
  mkdir -p "$work/rootfs" "$work/bin"
  umoci init --layout "$layout"

  gcc -static -Os -Wall -Wextra -o "$work/bin/nginx" "$here/hack/images/nginx.c"
  gcc -static -Os -Wall -Wextra -o "$work/bin/nnp" "$here/hack/images/nnp.c"

  local r=$work/rootfs
  base_rootfs "$r/busybox"
  new_image busybox "$r/busybox" sh

  # nginx / hostnet-nginx: the static master + busybox httpd on 80 / 12003.
  local port name
  for name in nginx hostnet-nginx; do
    port=80; [[ $name == hostnet-nginx ]] && port=12003
    mkdir -p "$r/$name"/{usr/sbin,etc/nginx/conf.d,usr/share/nginx/html,var/run}
    install -m 0755 "$work/bin/nginx" "$r/$name/usr/sbin/nginx"
    printf 'server {\n    listen %s;\n    root /usr/share/nginx/html;\n}\n' "$port" \
      >"$r/$name/etc/nginx/conf.d/default.conf"
    printf '<html><body><h1>Welcome to nginx!</h1></body></html>\n' >"$r/$name/usr/share/nginx/html/index.html"
    derive busybox "$name" "$r/$name" --config.cmd nginx --config.cmd -g --config.cmd "daemon off;" \
      --config.exposedports "$port/tcp" --config.stopsignal SIGQUIT
  done

  mkdir -p "$r/httpd"/{usr/local/bin,usr/local/apache2/htdocs}
  install -m 0755 "$here/hack/images/httpd-foreground" "$r/httpd/usr/local/bin/httpd-foreground"
  printf '<html><body><h1>It works!</h1></body></html>\n' >"$r/httpd/usr/local/apache2/htdocs/index.html"
  derive busybox httpd "$r/httpd" --config.cmd httpd-foreground --config.exposedports 80/tcp \
    --config.workingdir /usr/local/apache2

  # nonewprivs: the program alone, setuid root, in its own image.
  mkdir -p "$r/nonewprivs/usr/local/bin"
  install -m 4755 -o 0 -g 0 "$work/bin/nnp" "$r/nonewprivs/usr/local/bin/nnp"
  new_image nonewprivs "$r/nonewprivs" /usr/local/bin/nnp

  # USER variants (cri-tools images/build: IMAGE_USERS).
  local spec
  for spec in user-uid=1002 user-username=www-data user-uid-group=1003:1004 user-username-group=www-data:1004; do
    umoci config --image "$layout:busybox" --tag "${spec%%=*}" --config.user "${spec#*=}"
  done

  # predefined-group: default-user (1000) is also in group 50000, USER 1000.
  mkdir -p "$r/predefined-group/etc" "$r/predefined-group/home/default-user"
  cat "$r/busybox/etc/passwd" - >"$r/predefined-group/etc/passwd" <<<"default-user:x:1000:1000::/home/default-user:/bin/sh"
  cat "$r/busybox/etc/group" - >"$r/predefined-group/etc/group" <<<"default-user:x:1000:
group-defined-in-image:x:50000:default-user"
  chown 1000:1000 "$r/predefined-group/home/default-user"
  derive busybox predefined-group "$r/predefined-group" --config.user 1000

  # image-test: busybox plus one empty file named after the image, so each
  # name is a distinct image; test-image-tags is one image under three tags.
  for name in test-image-1 test-image-2 test-image-3 test-image-latest test-image-digest \
              test-image-tags:same-image test-image-tag-test:test test-image-tag-all:all; do
    local tag=${name%%:*} file=${name#*:}
    mkdir -p "$r/$tag" && : >"$r/$tag/$file"
    derive busybox "$tag" "$r/$tag"
  done

  # critest -benchmark's image-listing set: five distinct busybox images.
  for name in 1.35.0-glibc 1-uclibc 1 1-glibc 1-musl; do
    mkdir -p "$r/bench-$name/etc" && echo "$name" >"$r/bench-$name/etc/busybox-variant"
    derive busybox "bench-$name" "$r/bench-$name"
  done

  # The sandbox image, from hack/build-images.sh's layout (catatonit).
  [[ -e $build/oci/index.json ]] || "$here/hack/build-images.sh"
  skopeo copy -q oci:"$build/oci":pause oci:"$layout":pause

  umoci gc --layout "$layout"
  rm -rf "$work/extract" "$work/layers"
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
    [[ -n $want ]] || { echo "build-critest-images.sh: no tag $tag in $layout" >&2; exit 1; }
    have=$(skopeo inspect --raw --tls-verify=false docker://"$registry/$dest" 2>/dev/null | sha256sum | cut -d' ' -f1 || true)
    [[ sha256:$have == "$want" ]] && continue
    echo "build-critest-images: push $registry/$dest"
    skopeo copy -q --preserve-digests --dest-tls-verify=false oci:"$layout:$tag" docker://"$registry/$dest"
  done
}

[[ -f $stamp && $(cat "$stamp") == "$key" && -e $layout/index.json ]] || build_layout
push_all

# What critest checks of each image (cri-tools v1.34.0):
#   busybox:1.29-2       default image: sh, sleep, top, echo, id, ls, cat, grep,
#                        hostname, netstat, ping, brctl, pidof, mount, chmod,
#                        touch by PATH; pgrep (checkSleep), ipcs -m (HostIpc)
#   nginx:1.14-2         webserver (port mapping, port-forward: GET / on 80 ->
#                        200); HostPID/PodPID/ContainerPID (pid file, pidof,
#                        "master process" in PID 1's cmdline)
#   hostnet-nginx-amd64  the same on port 12003 in the host network
#   httpd:2.4.39-4       multi-container pod: "httpd" in its log, GET / on 80
#   nonewprivs:1.3       "Effective uid: 1000" with no_new_privs, else 0
#   test-image-user-*    image status uid/username (1002, www-data, 1003:1004,
#                        www-data:1004)
#   test-image-predefined-group  id -G shows 50000 for uid 1000
#   test-image-{1,2,3}   three images; test-image-tags:{1,2,3} one image
#   test-image-tag:{test,all}, test-image-latest: tag/no-tag/all-reference specs
#   test-image-digest    pinned by digest in critest (sha256:9700f9a2...): the
#                        original manifest cannot be rebuilt offline, so the
#                        one spec pulling it is skipped (hack/critest-skips.txt)
#   docker/library/busybox:{1.35.0-glibc,1-uclibc,1,1-glibc,1-musl}  benchmark
