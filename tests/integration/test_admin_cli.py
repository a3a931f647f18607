"""The ``dockyard`` admin command against a real daemon: images import, export, ls, rm, pull
--platform, containers ls, pods ls, info.

Archives are made here: by skopeo from the test images in the local registry
(``docker-archive:`` as docker save writes it, ``oci-archive:`` and ``oci:``
layouts), and by hand for multi-image docker archives and malformed ones.
Rules checked: the names in an archive become the image's names; what is
imported runs through crictl; an export imports back as the same image;
import is as safe as pull (digests verified, layers through the same
unpacker, a malformed archive refused naming the entry, and an import killed
at any step leaves nothing once the daemon is back, or all of it when the
records were written); bad input is INVALID_ARGUMENT naming the field.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest
from bundle import SUBREAPER
from cri_api.v1 import api_pb2
from daemon_fixture import REGISTRY, Daemon, daemon_factory, dockyardd, test_registry  # noqa: F401 (fixtures)
from dockyard.cri import faults
from runtime_service_fixture import Pods, container_config, pods  # noqa: F401 (fixture)

pytestmark = pytest.mark.root

DOCKYARD = Path(sys.executable).parent / "dockyard"  # the console script pyproject installs


def admin_socket(daemon: Daemon) -> str:
    return str(Path(daemon.config["state_dir"]) / "admin.sock")


def dockyard(daemon: Daemon, *args: str, stdin: bytes | None = None, check: bool = True,
             timeout: float = 300) -> subprocess.CompletedProcess[bytes]:
    result = SUBREAPER.run([str(DOCKYARD), "--address", admin_socket(daemon), *args], input=stdin,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"dockyard {' '.join(args)} exited {result.returncode}: {result.stderr.decode()}")
    return result


def skopeo(source: str, dest: str) -> None:
    result = SUBREAPER.run(["skopeo", "copy", "-q", "--src-tls-verify=false", source, dest],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=300)
    assert result.returncode == 0, result.stderr


def image_status(daemon: Daemon, ref: str) -> api_pb2.Image | None:
    with daemon.channel() as ch:
        answer = daemon.images(ch).ImageStatus(api_pb2.ImageStatusRequest(image=api_pb2.ImageSpec(image=ref)))
    return answer.image if answer.HasField("image") else None


def stored(daemon: Daemon) -> dict[str, Any]:
    """What the daemon's stores hold: image ids, blobs, committed chains, ingest files."""
    root = daemon.root
    images = json.loads((root / "images" / "images.json").read_text())["images"] \
        if (root / "images" / "images.json").exists() else []
    chains = json.loads((root / "snapshots" / "metadata.json").read_text())["committed"] \
        if (root / "snapshots" / "metadata.json").exists() else {}
    blobs_dir = root / "content" / "blobs" / "sha256"
    return {
        "images": sorted(i["id"] for i in images),
        "blobs": sorted(p.name for p in blobs_dir.iterdir()) if blobs_dir.exists() else [],
        "chains": sorted(chains),
        "ingest": daemon.ingest_files(),
    }


NOTHING = {"images": [], "blobs": [], "chains": [], "ingest": []}


def whole(daemon: Daemon) -> None:
    """Every recorded image has all its blobs and snapshots."""
    root = daemon.root
    have = stored(daemon)
    for image in json.loads((root / "images" / "images.json").read_text())["images"]:
        for blob in (image["id"], *image["layers"], *image["blobs"]):
            assert blob.split(":")[1] in have["blobs"], (image["repo_tags"], blob)
        assert set(image["chain_ids"]) <= set(have["chains"]), image["repo_tags"]


@pytest.fixture
def archives(tmp_path: Path, test_registry: str) -> Path:  # noqa: F811
    directory = tmp_path / "archives"
    directory.mkdir()
    return directory


def test_import_docker_archive_and_run_it_with_crictl(pods: Pods, archives: Path) -> None:
    """docker-archive (as docker save writes it): imported under its name, listed by crictl
    and run by it, listed by dockyard images ls, containers ls and pods ls, counted by info."""
    archive = archives / "busybox-docker.tar"
    skopeo(f"docker://{REGISTRY}/busybox:latest", f"docker-archive:{archive}:import.test/tools/busybox:v1")
    out = dockyard(pods.daemon, "images", "import", str(archive)).stdout.decode()
    assert "imported import.test/tools/busybox:v1 sha256:" in out
    status = image_status(pods.daemon, "import.test/tools/busybox:v1")
    assert status is not None and status.repo_digests[0].startswith("import.test/tools/busybox@sha256:")
    assert "import.test/tools/busybox" in pods.crictl("images")

    pod, pod_cfg = pods.run_pod("imported")
    cfg = container_config("c", ["sleep", "1000"], image={"image": "import.test/tools/busybox:v1"})
    cid = pods.crictl("create", pod, pods.write("c", cfg), pod_cfg)
    pods.crictl("start", cid)
    assert pods.crictl("exec", "-s", cid, "echo", "ran from an imported image") == "ran from an imported image"

    listed = dockyard(pods.daemon, "images", "ls").stdout.decode()
    assert "import.test/tools/busybox:v1" in listed and status.id[7:19] in listed
    assert cid[:13] in dockyard(pods.daemon, "containers", "ls").stdout.decode()
    assert pod[:13] in dockyard(pods.daemon, "pods", "ls").stdout.decode()
    info = json.loads(dockyard(pods.daemon, "info", "--json").stdout)
    assert (info["pods"], info["containers"], info["images"]) == (1, 1, 2)  # the pause image too
    assert info["admin_socket"] == admin_socket(pods.daemon) and info["network_ready"] is True
    assert int(info["image_fs_used_bytes"]) > 0 and info["image_fs_mountpoint"].endswith("/snapshots")
    pods.crictl("rmp", "-f", pod)


def test_import_gzipped_oci_archive_from_stdin(dockyardd: Daemon, archives: Path) -> None:
    """An OCI layout tar, gzip-compressed, piped to `images import -`: the ref name skopeo wrote
    names it, its three layers (a whiteout, an opaque dir) are unpacked and its id is the
    registry's."""
    oci = archives / "layers3-oci.tar"
    skopeo(f"docker://{REGISTRY}/layers3:latest", f"oci-archive:{oci}:docker.io/library/layers3:oci")
    out = dockyard(dockyardd, "images", "import", "-", stdin=gzip.compress(oci.read_bytes())).stdout.decode()
    assert "imported docker.io/library/layers3:oci" in out
    status = image_status(dockyardd, "layers3:oci")
    pulled = dockyardd.pull(f"{REGISTRY}/layers3:latest")
    assert status is not None and status.id == pulled  # the same config: the same image
    assert len(stored(dockyardd)["chains"]) == 3
    whole(dockyardd)


def _merge_docker_archives(paths: list[Path], out: Path) -> None:
    """One docker-archive holding every image of ``paths`` (a multi-image docker save)."""
    items: list[Any] = []
    seen: set[str] = set()
    with tarfile.open(out, "w") as merged:
        for path in paths:
            with tarfile.open(path) as t:
                for member in t.getmembers():
                    if member.name == "manifest.json":
                        items += json.load(t.extractfile(member))  # type: ignore[arg-type]
                    elif member.name not in seen and member.name != "repositories":
                        seen.add(member.name)
                        merged.addfile(member, t.extractfile(member) if member.isfile() else None)
        data = json.dumps(items).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(data)
        merged.addfile(info, io.BytesIO(data))


def test_multi_image_archives(dockyardd: Daemon, archives: Path) -> None:
    """A docker-archive and an OCI layout holding two images each: every image imported, each
    under its own name; two names of one image in an OCI layout make one image with both."""
    one, two = archives / "one.tar", archives / "two.tar"
    skopeo(f"docker://{REGISTRY}/busybox:latest", f"docker-archive:{one}:multi.test/a:1")
    skopeo(f"docker://{REGISTRY}/layers3:latest", f"docker-archive:{two}:multi.test/b:1")
    _merge_docker_archives([one, two], archives / "both.tar")
    out = dockyard(dockyardd, "images", "import", str(archives / "both.tar")).stdout.decode()
    assert "multi.test/a:1" in out and "multi.test/b:1" in out
    layout = archives / "layout"
    for ref, name in (("busybox:latest", "docker.io/library/busybox:oci1"), ("layers3:latest", "q.test/l3:oci2"),
                      ("busybox:latest", "docker.io/library/busybox:oci3")):
        skopeo(f"docker://{REGISTRY}/{ref}", f"oci:{layout}:{name}")
    tar = archives / "layout.tar"
    with tarfile.open(tar, "w") as t:
        for entry in sorted(layout.rglob("*")):
            t.add(entry, arcname=str(entry.relative_to(layout)), recursive=False)
    out = dockyard(dockyardd, "images", "import", str(tar)).stdout.decode()
    assert out.count("imported ") == 2, out
    a = image_status(dockyardd, "busybox:oci1")
    assert a is not None and {"docker.io/library/busybox:oci1", "docker.io/library/busybox:oci3"} <= set(a.repo_tags)
    assert image_status(dockyardd, "q.test/l3:oci2") is not None
    assert image_status(dockyardd, "multi.test/a:1").id == a.id  # type: ignore[union-attr]
    whole(dockyardd)


def test_export_imports_back_as_the_same_image(daemon_factory: Any, test_registry: str, tmp_path: Path) -> None:  # noqa: F811
    """images export writes an OCI layout that skopeo reads, and that another daemon imports as
    the same image (id, names, manifest digest); a name that names nothing leaves no file."""
    first, second = daemon_factory().start(), daemon_factory().start()
    image_id = first.pull("busybox")
    first.pull(f"{REGISTRY}/multi:latest")
    out = tmp_path / "export.tar"
    dockyard(first, "images", "export", str(out), "busybox", f"{REGISTRY}/multi:latest")
    with tarfile.open(out) as t:
        names = t.getnames()
        index = json.load(t.extractfile("index.json"))  # type: ignore[arg-type]
    assert {"oci-layout", "index.json", "manifest.json"} <= set(names)
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".dockyard-export-")]
    # multi's linux/amd64 config is busybox's: one image, exported once with both its names.
    annotated = [m["annotations"]["io.containerd.image.name"] for m in index["manifests"]]
    assert annotated == ["docker.io/library/busybox:latest", f"{REGISTRY}/multi:latest"]
    assert len({m["digest"] for m in index["manifests"]}) == 1
    # skopeo reads an export as an OCI layout (its entry's ref name is the tag, as docker writes it).
    layers3 = first.pull(f"{REGISTRY}/layers3:latest")
    dockyard(first, "images", "export", str(tmp_path / "one.tar"), f"{REGISTRY}/layers3:latest")
    inspect = SUBREAPER.run(["skopeo", "inspect", "--raw", f"oci-archive:{tmp_path / 'one.tar'}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)
    assert inspect.returncode == 0, inspect.stderr
    assert json.loads(inspect.stdout)["config"]["digest"] == layers3

    piped = dockyard(first, "images", "export", "-", "busybox").stdout
    dockyard(second, "images", "import", "-", stdin=piped)
    back = image_status(second, "busybox")
    assert back is not None and back.id == image_id
    before = image_status(first, "busybox")
    # busybox was pulled by its manifest: the same repo digest. multi came from an index, of which
    # only this node's manifest is kept and exported: its digest names that manifest now.
    assert before is not None and before.repo_digests[0].startswith("docker.io/library/busybox@")
    assert before.repo_digests[0] in back.repo_digests
    dockyard(second, "images", "import", str(out))
    assert image_status(second, f"{REGISTRY}/multi:latest") is not None
    whole(second)

    missing = dockyard(first, "images", "export", str(tmp_path / "x.tar"), "nothing-here:1", check=False)
    assert missing.returncode == 1 and b"NOT_FOUND" in missing.stderr and b"nothing-here" in missing.stderr
    assert not (tmp_path / "x.tar").exists()


def _corrupted_oci(source: Path, out: Path) -> str:
    """``source`` with one layer blob's bytes changed; returns that entry's name."""
    with tarfile.open(source) as src, tarfile.open(out, "w") as dst:
        index = json.load(src.extractfile("index.json"))  # type: ignore[arg-type]
        manifest = json.load(src.extractfile(f"blobs/sha256/{index['manifests'][0]['digest'][7:]}"))  # type: ignore[arg-type]
        victim = f"blobs/sha256/{manifest['layers'][-1]['digest'][7:]}"
        for member in src.getmembers():
            data = src.extractfile(member).read() if member.isfile() else None  # type: ignore[union-attr]
            if member.name == victim and data is not None:
                data = data[:-1] + bytes([data[-1] ^ 1])
            dst.addfile(member, io.BytesIO(data) if data is not None else None)
    return victim


def test_malformed_archives_are_refused_naming_the_entry(dockyardd: Daemon, archives: Path) -> None:
    """A layer whose bytes are not its digest, an archive cut short, and a file that is no archive:
    each refused with INVALID_ARGUMENT naming the entry (or the archive), and nothing kept."""
    oci = archives / "l3.tar"
    skopeo(f"docker://{REGISTRY}/layers3:latest", f"oci-archive:{oci}:docker.io/library/layers3:bad")
    victim = _corrupted_oci(oci, archives / "corrupt.tar")
    result = dockyard(dockyardd, "images", "import", str(archives / "corrupt.tar"), check=False)
    assert result.returncode == 1
    assert f"INVALID_ARGUMENT: archive entry '{victim}': blob sha256:{victim[13:]}" in result.stderr.decode()
    assert stored(dockyardd) == NOTHING

    cut = gzip.compress(oci.read_bytes())[:-4096]
    result = dockyard(dockyardd, "images", "import", "-", stdin=cut, check=False)
    assert result.returncode == 1 and b"INVALID_ARGUMENT: archive" in result.stderr, result.stderr
    assert stored(dockyardd) == NOTHING

    result = dockyard(dockyardd, "images", "import", "-", stdin=b"not an archive\n" * 100, check=False)
    assert result.returncode == 1 and b"INVALID_ARGUMENT: archive: not a valid tar stream" in result.stderr
    assert stored(dockyardd) == NOTHING


IMPORT_POINTS = sorted(p for p in faults.POINTS if p.startswith("ImportImages/"))


@pytest.mark.parametrize("point", IMPORT_POINTS)
def test_import_killed_midway_leaves_nothing(daemon_factory: Any, archives: Path, point: str) -> None:  # noqa: F811
    """The daemon killed at each step of an import of a two-image archive: once it is back,
    nothing of the import is left (or, killed after the records were written, all of it, whole);
    the import then succeeds."""
    one, two = archives / "one.tar", archives / "two.tar"
    skopeo(f"docker://{REGISTRY}/busybox:latest", f"docker-archive:{one}:kill.test/a:1")
    skopeo(f"docker://{REGISTRY}/layers3:latest", f"docker-archive:{two}:kill.test/b:1")
    both = archives / "both.tar"
    _merge_docker_archives([one, two], both)
    daemon: Daemon = daemon_factory()
    daemon.env = {faults.ENV: point}
    daemon.start()
    result = dockyard(daemon, "images", "import", str(both), check=False)
    assert result.returncode != 0
    assert daemon.proc is not None and daemon.proc.wait(60) == -signal.SIGKILL
    daemon.stop()
    daemon.env = {}
    daemon.start()
    after = stored(daemon)
    if point == "ImportImages/recorded":
        assert len(after["images"]) == 2 and after["ingest"] == []
        whole(daemon)
    else:
        assert after == NOTHING, after
    dockyard(daemon, "images", "import", str(both))
    assert image_status(daemon, "kill.test/a:1") is not None and image_status(daemon, "kill.test/b:1") is not None
    whole(daemon)


def test_ls_rm_pull_platform_and_bad_input(dockyardd: Daemon) -> None:
    """pull --platform takes that platform's manifest from an index; rm removes every name of an
    image and says which names were not found; bad input is INVALID_ARGUMENT naming the field."""
    dockyard(dockyardd, "images", "pull", f"{REGISTRY}/multi:latest")
    amd64 = image_status(dockyardd, f"{REGISTRY}/multi:latest")
    out = dockyard(dockyardd, "images", "pull", "--platform", "linux/arm64", f"{REGISTRY}/multi:latest").stdout.decode()
    arm64 = image_status(dockyardd, f"{REGISTRY}/multi:latest")
    assert amd64 is not None and arm64 is not None and arm64.id != amd64.id and arm64.id in out
    config = json.loads((dockyardd.root / "content" / "blobs" / "sha256" / arm64.id[7:]).read_text())
    assert config["architecture"] == "arm64"
    # The tag moved to the arm64 image; the amd64 one is left without a name, known by its id.
    assert sorted(dockyard(dockyardd, "images", "ls", "-q").stdout.decode().split()) == sorted(
        [amd64.id, f"{REGISTRY}/multi:latest"])

    result = dockyard(dockyardd, "images", "rm", arm64.id, "not-here:1", check=False)
    assert result.returncode == 1 and b"not found: not-here:1" in result.stderr
    assert f"removed {arm64.id}".encode() in result.stdout
    dockyard(dockyardd, "images", "rm", amd64.id)
    assert stored(dockyardd) == NOTHING

    for args, field in ((("images", "pull", "--platform", "linux/arm64/v8/x", "busybox"), "platform"),
                        (("images", "pull", "bad ref"), "invalid image reference"),
                        (("images", "import", "--base-name", "x.io/app:1", "-"), "options.base_name"),
                        (("images", "import", "--platform", "???", "-"), "options.platform")):
        result = dockyard(dockyardd, *args, stdin=b"", check=False)
        assert result.returncode == 1, args
        assert b"INVALID_ARGUMENT" in result.stderr and field.encode() in result.stderr, result.stderr
    unreachable = SUBREAPER.run([str(DOCKYARD), "--address", "/nonexistent/admin.sock", "info"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    assert unreachable.returncode == 3 and b"no admin socket" in unreachable.stderr


def test_admin_socket_is_root_only(dockyardd: Daemon) -> None:
    """The admin socket is the owner's alone (0600), unlike the CRI socket (0660)."""
    assert oct(os.stat(admin_socket(dockyardd)).st_mode & 0o777) == "0o600"
    dockyardd.stop()
    assert not os.path.exists(admin_socket(dockyardd))


def test_kind_load_equivalent(dockyardd: Daemon, archives: Path) -> None:
    """What deploy/NODE.md tells kind users to run: `docker save IMAGE | dockyard images import -`
    (here skopeo writes docker save's format), then the image is known to the CRI."""
    archive = archives / "save.tar"
    skopeo(f"docker://{REGISTRY}/busybox:latest", f"docker-archive:{archive}:my-app:dev")
    dockyard(dockyardd, "images", "import", "-", stdin=archive.read_bytes())
    status = image_status(dockyardd, "docker.io/library/my-app:dev")
    assert status is not None
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    assert digest  # the archive itself is not kept: only its blobs
    assert not any(p.name.startswith("ingest") for p in dockyardd.root.iterdir() if p.is_file())
    shutil.rmtree(archives)
