"""A large image built offline from Debian packages, for bench/pull.py.

Six layers, each the files of a few Debian 12 packages (``apt-get download``
from the configured Debian mirror, extracted with ``dpkg-deb -x``, never
installed), about 700 MB unpacked:

  base     busybox-static, tzdata, ca-certificates
  small    the kernel's common headers and Go 1.19's sources: over 20,000
           files, most of a few KiB: the metadata-bound case
  large    libllvm15, libllvm14, libclang-cpp14: a few files of 50-110 MB,
           the bandwidth-bound case
  gcc      gcc-12, cpp-12
  java     openjdk-17-jre-headless
  node     libnode108, libicu72

Each layer is a tar with sorted names, mtime 0 and owner 0 (so a rebuild
gives the same digests), compressed twice: ``gzip -6 -n`` and ``zstd -3``.
The two variants are written as one OCI layout (tags ``gzip`` and ``zstd``)
and pushed with skopeo, digests preserved, to the local registry as
``127.0.0.1:5000/dybig:gzip`` and ``:zstd``.  Everything is cached under
build/pull-bench/, keyed by the package versions; the plain layer tars stay
there for the floors (``tar -x`` of the same layers).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daemons import REGISTRY, REPO

CACHE = REPO / "build" / "pull-bench"
NAME = "dybig"
SMALL_FILES = 20_000
LAYERS: list[tuple[str, list[str]]] = [
    ("base", ["busybox-static", "tzdata", "ca-certificates"]),
    ("small", ["@linux-headers-common", "golang-1.19-src"]),
    ("large", ["libllvm15", "libllvm14", "libclang-cpp14"]),
    ("gcc", ["gcc-12", "cpp-12"]),
    ("java", ["openjdk-17-jre-headless"]),
    ("node", ["libnode108", "libicu72"]),
]
MEDIA = {"gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
         "zstd": "application/vnd.oci.image.layer.v1.tar+zstd"}
COMPRESS = {"gzip": ["gzip", "-6", "-n", "-c"], "zstd": ["zstd", "-3", "-q", "-c", "-T0"]}


@dataclass(frozen=True)
class Layer:
    name: str
    tar: Path  # uncompressed
    diff_id: str
    size: int  # bytes of the tar
    files: int
    blobs: dict[str, tuple[Path, str, int]]  # compression -> (blob path, digest, size)


def run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=True, text=True, capture_output=True, **kwargs)


def resolve(package: str) -> str:
    """A package name; ``@linux-headers-common`` is the newest linux-headers-6.1.0-N-common."""
    if package != "@linux-headers-common":
        return package
    names = run(["apt-cache", "search", "--names-only", r"^linux-headers-6\.1\.0-[0-9]+-common$"]).stdout.split()
    found = sorted((n for n in names if n.startswith("linux-headers-") and n.endswith("-common")),
                   key=lambda n: int(n.split("-")[3]))
    if not found:
        raise SystemExit("bench: no linux-headers-6.1.0-N-common in apt's lists (run apt-get update)")
    return found[-1]


def version(package: str) -> str:
    out = run(["apt-cache", "policy", package]).stdout
    for line in out.splitlines():
        if line.strip().startswith("Candidate:"):
            return line.split(":", 1)[1].strip()
    raise SystemExit(f"bench: apt knows no package {package}")


def download(packages: list[str], debs: Path) -> list[Path]:
    debs.mkdir(parents=True, exist_ok=True)
    out = []
    for p in packages:
        have = sorted(debs.glob(f"{p}_*.deb"))
        want = version(p).replace(":", "%3a")
        match = [d for d in have if d.name.startswith(f"{p}_{want}_")]
        if not match:
            print(f"  apt-get download {p}", flush=True)
            run(["apt-get", "download", p], cwd=debs)
            match = [d for d in sorted(debs.glob(f"{p}_*.deb")) if d.name.startswith(f"{p}_{want}_")]
        if not match:
            raise SystemExit(f"bench: apt-get download {p} gave no {p}_{want}_*.deb")
        out.append(match[0])
    return out


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def count_files(root: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(root))


def build_layer(name: str, packages: list[str], work: Path) -> Layer:
    tree = work / "trees" / name
    if tree.exists():
        shutil.rmtree(tree)
    tree.mkdir(parents=True)
    for deb in download(packages, work / "debs"):
        run(["dpkg-deb", "-x", str(deb), str(tree)])
    files = count_files(tree)
    if name == "small" and files < SMALL_FILES:
        raise SystemExit(f"bench: the small-files layer has {files} files, fewer than {SMALL_FILES}")
    tar = work / f"{name}.tar"
    run(["tar", "--sort=name", "--mtime=@0", "--owner=0", "--group=0", "--numeric-owner",
         "-C", str(tree), "-cf", str(tar), "."])
    shutil.rmtree(tree)
    blobs = {}
    for kind, argv in COMPRESS.items():
        out = work / f"{name}.tar.{'gz' if kind == 'gzip' else 'zst'}"
        with open(tar, "rb") as src, open(out, "wb") as dst:
            subprocess.run(argv, stdin=src, stdout=dst, check=True)
        blobs[kind] = (out, sha256_file(out), out.stat().st_size)
    return Layer(name, tar, sha256_file(tar), tar.stat().st_size, files, blobs)


def write_layout(layers: list[Layer], layout: Path) -> dict[str, str]:
    """An OCI layout with one manifest per compression; tag -> manifest digest."""
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')

    def put(data: bytes) -> tuple[str, int]:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        (blobs / digest[7:]).write_bytes(data)
        return digest, len(data)

    config = {"architecture": "amd64", "os": "linux",
              "config": {"Cmd": ["/bin/busybox", "true"], "Env": ["PATH=/usr/bin:/bin"]},
              "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]}}
    cfg_digest, cfg_size = put(json.dumps(config, separators=(",", ":")).encode())
    entries, tags = [], {}
    for kind in MEDIA:
        descs = []
        for layer in layers:
            path, digest, size = layer.blobs[kind]
            target = blobs / digest[7:]
            if not target.exists():
                os.link(path, target)
            descs.append({"mediaType": MEDIA[kind], "digest": digest, "size": size})
        manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                               "digest": cfg_digest, "size": cfg_size},
                    "layers": descs}
        digest, size = put(json.dumps(manifest, separators=(",", ":")).encode())
        entries.append({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": size,
                        "annotations": {"org.opencontainers.image.ref.name": kind}})
        tags[kind] = digest
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": entries}))
    return tags


def pushed(ref: str, digest: str) -> bool:
    out = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{ref}"],
                         capture_output=True)
    return out.returncode == 0 and "sha256:" + hashlib.sha256(out.stdout).hexdigest() == digest


def ensure(work: Path = CACHE) -> tuple[list[Layer], dict[str, str]]:
    """Build (or reuse) the layers and push both variants; (layers, tag -> image reference)."""
    work.mkdir(parents=True, exist_ok=True)
    plan = [(name, [resolve(p) for p in packages]) for name, packages in LAYERS]
    key = json.dumps([(name, [(p, version(p)) for p in pkgs]) for name, pkgs in plan])
    stamp = work / "layers.json"
    layers: list[Layer] = []
    if stamp.exists() and json.loads(stamp.read_text()).get("key") == key:
        # Files are named relative to ``work``: a worktree sees the shared
        # build/ under its own path (a bind mount), and os.link across two
        # mounts of one filesystem fails with EXDEV.
        for doc in json.loads(stamp.read_text())["layers"]:
            blobs = {k: (work / Path(v[0]).name, v[1], v[2]) for k, v in doc["blobs"].items()}
            layers.append(Layer(doc["name"], work / Path(doc["tar"]).name, doc["diff_id"], doc["size"], doc["files"],
                                blobs))
        if not all(layer.tar.exists() and all(b[0].exists() for b in layer.blobs.values()) for layer in layers):
            layers = []
    if not layers:
        print(f"bench: building {NAME} from Debian packages into {work} (once; cached)", flush=True)
        for name, pkgs in plan:
            layers.append(build_layer(name, pkgs, work))
            print(f"  layer {name}: {layers[-1].files} files, {layers[-1].size >> 20} MiB", flush=True)
        stamp.write_text(json.dumps({"key": key, "layers": [
            {"name": la.name, "tar": la.tar.name, "diff_id": la.diff_id, "size": la.size, "files": la.files,
             "blobs": {k: [v[0].name, v[1], v[2]] for k, v in la.blobs.items()}} for la in layers]}))
    layout = work / "layout"
    if layout.exists():
        shutil.rmtree(layout)
    tags = write_layout(layers, layout)
    refs = {}
    for kind, digest in tags.items():
        ref = f"{REGISTRY}/{NAME}:{kind}"
        if not pushed(ref, digest):
            print(f"bench: pushing {ref}", flush=True)
            run(["skopeo", "copy", "-q", "--preserve-digests", "--dest-tls-verify=false",
                 f"oci:{layout}:{kind}", f"docker://{ref}"])
        refs[kind] = ref
    shutil.rmtree(layout)
    return layers, refs


if __name__ == "__main__":
    built, references = ensure()
    for la in built:
        print(la.name, la.files, la.size, {k: v[2] for k, v in la.blobs.items()})
    print(references)
