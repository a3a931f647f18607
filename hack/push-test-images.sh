#!/usr/bin/env bash
# Build the image-pull test images under build/test-oci (an OCI layout made
# with umoci, plus a little Python for what umoci cannot make: hand-written
# layer tars and an image index) and push them with skopeo to the registries
# that hack/registry.sh runs:
#
#   127.0.0.1:5000 (plain HTTP)
#     busybox:latest, library/busybox:latest   OCI manifest, gzip layer
#     busybox:v2s2                             Docker schema 2 manifest
#     busybox:zstd                             OCI manifest, tar+zstd layer
#     pause:latest, pause:3.10                 (registry.k8s.io/pause:3.10 via hosts.toml)
#     layers3:latest  busybox + a layer adding files + a layer with a whiteout
#                     (etc/.wh.remove-me) and an opaque dir (data/.wh..wh..opq)
#     multi:latest    OCI index: linux/amd64 and linux/arm64/v8 (same layer,
#                     different config)
#     big:latest      ~300 MB over 5 layers of barely compressible data (bench)
#   127.0.0.1:5443 (TLS + basic auth)
#     busybox:latest
#
# Cached: the layout is rebuilt only when this script or the tool versions
# change; an image already in a registry is not pushed again.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
build=${DOCKYARD_BUILD_DIR:-$here/build}
layout=$build/test-oci
regstate=${DOCKYARD_REGISTRY_DIR:-$build/registry}
plain=127.0.0.1:5000
tls=127.0.0.1:5443
creds=dockyard:dockyard-test-password

[[ -e $build/oci/index.json ]] || "$here/hack/build-images.sh"

key=$( { sha256sum "$0" | cut -d' ' -f1; dpkg-query -W -f='${Version}\n' umoci skopeo; } | sha256sum | cut -d' ' -f1)
stamp=$layout/.key

build_layout() {
  echo "push-test-images: building $layout"
  rm -rf "$layout"
  local work; work=$(mktemp -d "$build/.test-oci.XXXXXX")
  trap 'rm -rf "$work"' RETURN
  skopeo copy -q oci:"$build/oci":busybox oci:"$layout":busybox
  skopeo copy -q oci:"$build/oci":pause oci:"$layout":pause
  # Recompressed through an empty layout: skopeo reuses a blob with the same
  # uncompressed content wherever the destination has one (this layout, the
  # registry), so the copies onwards must preserve digests.
  skopeo copy -q --dest-compress-format zstd oci:"$layout":busybox oci:"$work/zstd":busybox-zstd
  skopeo copy -q --preserve-digests oci:"$work/zstd":busybox-zstd oci:"$layout":busybox-zstd

  # layers3: busybox, then hand-made tars (umoci repack would choose its own
  # whiteout encoding; these spell out the two kinds the unpacker must handle).
  python3 - "$work" <<'PY'
import io, os, sys, tarfile
work = sys.argv[1]
def tar(name, entries):
    with tarfile.open(os.path.join(work, name), "w", format=tarfile.PAX_FORMAT) as t:
        for path, data in entries:
            info = tarfile.TarInfo(path)
            info.mtime = 1700000000
            if data is None:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                t.addfile(info)
            else:
                info.size = len(data)
                info.mode = 0o644
                t.addfile(info, io.BytesIO(data))
tar("layer2.tar", [("etc/", None), ("etc/remove-me", b"removed by layer 3\n"),
                   ("etc/keep-me", b"kept\n"), ("data/", None), ("data/old-a", b"a\n"),
                   ("data/sub/", None), ("data/sub/old-b", b"b\n")])
tar("layer3.tar", [("etc/", None), ("etc/.wh.remove-me", b""), ("data/", None),
                   ("data/.wh..wh..opq", b""), ("data/new", b"only file left in data\n")])
# big: five layers of ~60 MiB; random blocks with every fourth block repetitive,
# so gzip gains a little and decompression still has work to do.
for i in range(5):
    path = os.path.join(work, f"big{i}.tar")
    with tarfile.open(path, "w") as t:
        size = 60 << 20
        data = bytearray()
        block = 1 << 16
        for j in range(size // block):
            data += (b"dockyard%03d" % (j % 1000)) * (block // 11) + b"\0" * (block % 11) if j % 4 == 0 else os.urandom(block)
        info = tarfile.TarInfo(f"big/layer{i}.bin")
        info.size = len(data)
        info.mtime = 1700000000
        t.addfile(info, io.BytesIO(bytes(data)))
PY
  skopeo copy -q oci:"$build/oci":busybox oci:"$layout":layers3
  umoci raw add-layer --image "$layout":layers3 "$work/layer2.tar"
  umoci raw add-layer --image "$layout":layers3 "$work/layer3.tar"

  umoci new --image "$layout":big
  for i in 0 1 2 3 4; do umoci raw add-layer --image "$layout":big "$work/big$i.tar"; done
  umoci config --image "$layout":big --config.cmd /bin/true

  # multi: an index over busybox (amd64) and the same layer under an arm64 config.
  python3 - "$layout" <<'PY'
import hashlib, json, os, sys
layout = sys.argv[1]
def blob(digest):
    with open(os.path.join(layout, "blobs", *digest.split(":")), "rb") as f:
        return f.read()
def put(data):
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with open(os.path.join(layout, "blobs", "sha256", digest[7:]), "wb") as f:
        f.write(data)
    return digest
index_path = os.path.join(layout, "index.json")
index = json.load(open(index_path))
desc = next(m for m in index["manifests"] if m["annotations"]["org.opencontainers.image.ref.name"] == "busybox")
manifest = json.loads(blob(desc["digest"]))
config = json.loads(blob(manifest["config"]["digest"]))
config["architecture"] = "arm64"
config["variant"] = "v8"
cfg = json.dumps(config, separators=(",", ":")).encode()
manifest["config"] = dict(manifest["config"], digest=put(cfg), size=len(cfg))
arm = json.dumps(manifest, separators=(",", ":")).encode()
entries = [
    {"mediaType": desc["mediaType"], "digest": desc["digest"], "size": desc["size"],
     "platform": {"architecture": "amd64", "os": "linux"}},
    {"mediaType": desc["mediaType"], "digest": put(arm), "size": len(arm),
     "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}},
]
idx = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                  "manifests": entries}, separators=(",", ":")).encode()
index["manifests"].append({"mediaType": "application/vnd.oci.image.index.v1+json",
                           "digest": put(idx), "size": len(idx),
                           "annotations": {"org.opencontainers.image.ref.name": "multi"}})
with open(index_path + ".tmp", "w") as f:
    json.dump(index, f)
os.replace(index_path + ".tmp", index_path)
PY
  echo "$key" >"$stamp"
}

present() { # registry/name:tag [skopeo flags...]
  local ref=$1; shift
  skopeo inspect --raw "$@" docker://"$ref" >/dev/null 2>&1
}

push() { # layout-tag registry/name:tag [skopeo copy flags...]
  local src=$1 dest=$2; shift 2
  local inspect=(--tls-verify=false)
  [[ $dest == "$tls"/* ]] && inspect=(--cert-dir "$regstate/ca/trust" --creds "$creds")
  present "$dest" "${inspect[@]}" && return
  echo "push-test-images: $dest"
  skopeo copy -q "$@" oci:"$layout":"$src" docker://"$dest"
}

[[ -f $stamp && $(cat "$stamp") == "$key" ]] || build_layout
"$here/hack/registry.sh" start

p=(--dest-tls-verify=false)
push busybox "$plain/busybox:latest" "${p[@]}"
push busybox "$plain/library/busybox:latest" "${p[@]}"
push busybox "$plain/busybox:v2s2" "${p[@]}" -f v2s2
push busybox-zstd "$plain/busybox:zstd" "${p[@]}" --preserve-digests
push pause "$plain/pause:latest" "${p[@]}"
push pause "$plain/pause:3.10" "${p[@]}"
push layers3 "$plain/layers3:latest" "${p[@]}"
push multi "$plain/multi:latest" "${p[@]}" --all
push big "$plain/big:latest" "${p[@]}"
push busybox "$tls/busybox:latest" --dest-cert-dir "$regstate/ca/trust" --dest-creds "$creds"
