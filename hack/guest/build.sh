#!/usr/bin/env bash
# Build what the test guest boots, under build/guest/ (cached):
#
#   build/guest/kernel/            Debian's linux-image-<release>-amd64 .deb, extracted
#                                  (boot/vmlinuz-<release>, lib/modules/<release> with depmod run)
#   build/guest/kernel/release     the kernel release, e.g. 6.1.0-57-amd64
#   build/guest/initrd.img         busybox-static, the virtio/9p/overlay modules and hack/guest/init
#
# Why the .deb is extracted rather than installed: the guest needs a kernel
# image and its modules, not a second kernel on the host. Installing
# linux-image-amd64 would run initramfs-tools and the bootloader hooks on a
# host that boots its own kernel, and would write /boot and /lib/modules of a
# machine we only borrow. The guest sees the extracted modules because its
# root is the host's root (hack/guest/init bind-mounts them at
# /lib/modules/<release>), so modprobe and udev work there as on a node.
#
# The cache key is this script's hash, hack/guest/init's hash, the kernel
# package's name and version, and busybox-static's version.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
out="${DOCKYARD_GUEST_BUILD:-$repo/build/guest}"
here="$repo/hack/guest"

# The modules the initramfs loads to reach the root: virtio over PCI, 9p over
# virtio, and overlayfs for the writable layer. Their dependencies come from
# modules.dep, loaded first.
INITRD_MODULES=(virtio_pci 9pnet_virtio 9p overlay)

candidate() { apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2}'; }

meta_version="$(candidate linux-image-amd64)"
if [[ -z "$meta_version" || "$meta_version" == "(none)" ]]; then
    apt-get update -q
    meta_version="$(candidate linux-image-amd64)"
fi
# linux-image-amd64 is a metapackage; the kernel is the versioned package it depends on.
pkg="$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-/ {print $2; exit}')"
pkg_version="$(candidate "$pkg")"
release="${pkg#linux-image-}"
busybox_version="$(dpkg-query -W -f='${Version}' busybox-static)"

key="$( { sha256sum "${BASH_SOURCE[0]}" "$here/init" | cut -d' ' -f1
          echo "$pkg=$pkg_version busybox-static=$busybox_version"; } | sha256sum | cut -d' ' -f1)"
if [[ -f "$out/.key" && "$(cat "$out/.key")" == "$key" && -f "$out/initrd.img" \
      && -f "$out/kernel/boot/vmlinuz-$release" ]]; then
    exit 0
fi

echo "guest/build: $pkg $pkg_version -> $out"
rm -f "$out/.key"
mkdir -p "$out/cache"
work="$(mktemp -d "$out/.work.XXXXXX")"
trap 'rm -rf "$work"' EXIT

deb="$out/cache/${pkg}_${pkg_version//:/%3a}_amd64.deb"
if [[ ! -f "$deb" ]]; then
    rm -f "$out/cache/"*.deb
    # Download as root into our own directory (the _apt user cannot write there).
    (cd "$out/cache" && apt-get download -q -o APT::Sandbox::User=root "$pkg=$pkg_version")
fi
dpkg-deb -x "$deb" "$work/kernel"
depmod -b "$work/kernel" "$release"
echo "$release" > "$work/kernel/release"

# --- initramfs ---------------------------------------------------------------
root="$work/initrd"
mkdir -p "$root"/{bin,dev,proc,sys,lower,upper,newroot,modules}
install -m 0755 /bin/busybox "$root/bin/busybox"
install -m 0755 "$here/init" "$root/init"
moddir="$work/kernel/lib/modules/$release"
# modules.dep lines read "path: dep dep ..."; a dependency's own dependencies
# precede it in the kernel's own order, so loading each line's tail in
# reverse and then its head gives a valid order. Duplicates are skipped.
: > "$root/modules/order"
declare -A seen=()
load() {
    local name="$1" line path deps dep
    line="$(grep -E "/${name}\\.ko:" "$moddir/modules.dep")" || { echo "guest/build: no module $name" >&2; exit 1; }
    path="${line%%:*}"
    deps="${line#*:}"
    for dep in $deps; do
        load "$(basename "$dep" .ko)"
    done
    if [[ -z "${seen[$path]:-}" ]]; then
        seen[$path]=1
        install -m 0644 "$moddir/$path" "$root/modules/"
        basename "$path" >> "$root/modules/order"
    fi
}
for module in "${INITRD_MODULES[@]}"; do
    load "$module"
done
# The kernel's own device nodes come from devtmpfs; init needs /dev/console
# before it mounts that, so the kernel can give it stdio.
mknod -m 0600 "$root/dev/console" c 5 1
(cd "$root" && find . -print0 | sort -z | /bin/busybox cpio -o -H newc -0 2>/dev/null) | gzip -1 > "$work/initrd.img"

rm -rf "$out/kernel" "$out/initrd.img"
mv "$work/kernel" "$out/kernel"
mv "$work/initrd.img" "$out/initrd.img"
echo "$key" > "$out/.key"
echo "guest/build: kernel $release, initramfs $(du -h "$out/initrd.img" | cut -f1)"
