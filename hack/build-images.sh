#!/usr/bin/env bash
# Build Dockyard's test images offline from Debian packages, under build/:
#
#   build/rootfs/busybox        busybox-static with every applet linked, users, dirs
#   build/oci                   OCI image layout (umoci), tags "busybox" and "pause"
#   build/bundles/busybox       OCI runtime bundle (rootfs/ + config.json)
#   build/busybox-oci.tar       OCI archive for `ctr images import`
#                               (named docker.io/library/busybox:latest)
#   build/pause-oci.tar         OCI archive of the pause image
#                               (named localhost/dockyard/pause:latest)
#
# The result is cached: the key is this script's hash plus the versions of the
# packages the artefacts come from. A second run with the same key does nothing.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${DOCKYARD_BUILD_DIR:-$repo/build}"
stamp="$build/.images-key"

BUSYBOX_REF="docker.io/library/busybox:latest"
PAUSE_REF="localhost/dockyard/pause:latest"
PATH_ENV="PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

pkg_versions="$(dpkg-query -W -f='${Package}=${Version}\n' busybox-static catatonit umoci jq)"
key="$( { sha256sum "${BASH_SOURCE[0]}" | cut -d' ' -f1; echo "$pkg_versions"; } | sha256sum | cut -d' ' -f1)"

outputs=("$build/rootfs/busybox" "$build/oci" "$build/bundles/busybox"
         "$build/busybox-oci.tar" "$build/pause-oci.tar")
if [[ -f "$stamp" && "$(cat "$stamp")" == "$key" ]]; then
    all_there=1
    for out in "${outputs[@]}"; do [[ -e "$out" ]] || all_there=0; done
    if (( all_there )); then
        exit 0
    fi
fi

echo "build-images: building test images under $build"
rm -f "$stamp"
rm -rf "${outputs[@]}"
mkdir -p "$build/rootfs" "$build/bundles"
work="$(mktemp -d "$build/.work.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# --- busybox rootfs -------------------------------------------------------
# The `busybox --install -s` equivalent, done from the host: the static binary
# plus one absolute symlink per applet at the path busybox itself reports, so
# the links resolve inside the container's root, not the host's.
rootfs="$build/rootfs/busybox"
mkdir -p "$rootfs"/{bin,sbin,usr/bin,usr/sbin,etc,root,home/user,proc,sys,dev,run,var/tmp}
install -d -m 1777 "$rootfs/tmp"
chmod 0700 "$rootfs/root"
install -m 0755 /bin/busybox "$rootfs/bin/busybox"
while read -r applet; do
    [[ "$applet" == "bin/busybox" ]] && continue
    mkdir -p "$rootfs/$(dirname "$applet")"
    ln -sfn /bin/busybox "$rootfs/$applet"
done < <(/bin/busybox --list-full)

cat > "$rootfs/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
user:x:1000:1000:Dockyard test user:/home/user:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD
cat > "$rootfs/etc/group" <<'GROUP'
root:x:0:
users:x:100:user
user:x:1000:
extra:x:1001:user
nogroup:x:65534:
GROUP
chown 1000:1000 "$rootfs/home/user"
echo "dockyard" > "$rootfs/etc/hostname"
: > "$rootfs/etc/hosts"
: > "$rootfs/etc/resolv.conf"

# --- pause rootfs -----------------------------------------------------------
# catatonit is a static binary; as PID 1 with -P it only reaps and waits.
pause_root="$work/pause"
mkdir -p "$pause_root"/{proc,sys,dev,etc}
install -m 0755 /usr/bin/catatonit "$pause_root/catatonit"
printf 'root:x:0:0:root:/:/catatonit\nnobody:x:65534:65534:nobody:/:/catatonit\n' > "$pause_root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$pause_root/etc/group"

# --- OCI image layout -------------------------------------------------------
umoci init --layout "$build/oci"

umoci new --image "$build/oci:busybox"
umoci insert --image "$build/oci:busybox" "$rootfs" /
umoci config --image "$build/oci:busybox" \
    --os linux --architecture amd64 \
    --config.env "$PATH_ENV" --config.cmd sh --config.workingdir / \
    --history.created_by "hack/build-images.sh: busybox-static applets"

umoci new --image "$build/oci:pause"
umoci insert --image "$build/oci:pause" "$pause_root" /
umoci config --image "$build/oci:pause" \
    --os linux --architecture amd64 \
    --config.env "$PATH_ENV" \
    --config.entrypoint /catatonit --config.entrypoint -P \
    --config.user 65534:65534 \
    --history.created_by "hack/build-images.sh: catatonit as pause"

umoci gc --layout "$build/oci"

# --- runtime bundle -----------------------------------------------------------
umoci unpack --image "$build/oci:busybox" "$build/bundles/busybox"

# --- OCI archives for `ctr images import` -----------------------------------
# An OCI layout tar whose index.json carries the full image name in
# io.containerd.image.name (ctr names the image from it) and the tag in
# org.opencontainers.image.ref.name. Only the blobs the image needs go in.
make_archive() {   # tag full-ref output.tar
    local tag="$1" ref="$2" out="$3" dir="$work/archive-$1"
    local desc manifest digest
    mkdir -p "$dir/blobs/sha256"
    desc="$(jq -c --arg t "$tag" '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == $t)' "$build/oci/index.json")"
    manifest="$(jq -r '.digest' <<<"$desc" | cut -d: -f2)"
    for digest in "$manifest" \
        $(jq -r '.config.digest, .layers[].digest' "$build/oci/blobs/sha256/$manifest" | cut -d: -f2); do
        cp "$build/oci/blobs/sha256/$digest" "$dir/blobs/sha256/$digest"
    done
    cp "$build/oci/oci-layout" "$dir/oci-layout"
    jq -n --argjson d "$desc" --arg ref "$ref" --arg tag "${ref##*:}" '{
        schemaVersion: 2,
        manifests: [ $d | .annotations = {
            "io.containerd.image.name": $ref,
            "org.opencontainers.image.ref.name": $tag } ] }' > "$dir/index.json"
    tar -C "$dir" --owner=0 --group=0 --numeric-owner -cf "$out.tmp" oci-layout index.json blobs
    mv "$out.tmp" "$out"
}
make_archive busybox "$BUSYBOX_REF" "$build/busybox-oci.tar"
make_archive pause "$PAUSE_REF" "$build/pause-oci.tar"

echo "$key" > "$stamp"
echo "build-images: done"
