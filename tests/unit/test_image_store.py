"""ImageStore: references name one image, lookups by ref/id/prefix, GC sets, and persistence across restarts."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from dockyard.cri.errors import FailedPrecondition, Internal, InvalidArgument, NotFound
from dockyard.cri.image.store import ImageRecord, ImageStore

A = "sha256:" + "a1" * 32
A2 = "sha256:" + "a1" * 6 + "b" * 52  # shares a 12-hex prefix with A
B = "sha256:" + "b2" * 32
MANIFEST = "sha256:" + "c3" * 32
INDEX = "sha256:" + "d4" * 32
LAYER = "sha256:" + "e5" * 32
CHAIN = "sha256:" + "f6" * 32

BUSYBOX = "docker.io/library/busybox:latest"
BUSYBOX_DIGEST = f"docker.io/library/busybox@{INDEX}"


def record(id: str = A, **kw: Any) -> ImageRecord:
    return ImageRecord(id=id, **kw)


@pytest.fixture
def store(tmp_path: Path) -> ImageStore:
    s = ImageStore(str(tmp_path / "images"))
    s.put(record(A, repo_tags=(BUSYBOX,), repo_digests=(BUSYBOX_DIGEST,), layers=(LAYER,), chain_ids=(CHAIN,),
                 blobs=(MANIFEST, INDEX), size=123))
    s.put(record(B, repo_tags=("registry.local:5000/app:v1", "registry.local:5000/app:v2")))
    s.put(record(A2))
    return s


@pytest.mark.parametrize(
    "text, expected",
    [
        (BUSYBOX, A),
        (BUSYBOX_DIGEST, A),
        (A, A),
        (A2, A2),
        (B[len("sha256:"):], B),
        (B[: len("sha256:") + 12], B),
        ("b2b2b2b2b2b2", B),
        ("a1a1a1a1a1a1a", A),
        ("a1a1a1a1a1a1b", A2),
        ("registry.local:5000/app:v2", B),
    ],
)
def test_get(store: ImageStore, text: str, expected: str) -> None:
    """A tag, digest ref, full id, bare hex or unique id prefix finds its image."""
    assert store.get(text).id == expected


@pytest.mark.parametrize(
    "text, error, words",
    [
        ("docker.io/library/busybox:1.36", NotFound, "busybox:1.36"),
        ("sha256:" + "0" * 64, NotFound, "0000"),
        ("0123", NotFound, "0123"),
        ("a1a1a1", InvalidArgument, "ambiguous"),
        ("sha256:a1a1a1a1a1a1", InvalidArgument, "ambiguous"),
        ("", InvalidArgument, "empty"),
        ("busybox", NotFound, "busybox"),
    ],
)
def test_get_failures(store: ImageStore, text: str, error: type[Exception], words: str) -> None:
    """Unknown names are NotFound and ambiguous prefixes InvalidArgument, each naming the text."""
    with pytest.raises(error, match=words):
        store.get(text)


def test_tag_moves_to_the_newer_image(store: ImageStore) -> None:
    """Putting an image with a tag another image holds moves the tag; the old image stays, untagged."""
    store.put(record(B, repo_tags=(BUSYBOX,)))
    assert store.get(BUSYBOX).id == B
    old = store.get(A)
    assert old.repo_tags == () and old.repo_digests == (BUSYBOX_DIGEST,)
    assert set(store.get(B).repo_tags) == {"registry.local:5000/app:v1", "registry.local:5000/app:v2", BUSYBOX}


def test_put_same_id_merges_references(store: ImageStore) -> None:
    """A second pull of the same image under another tag adds the tag and keeps the first."""
    store.put(record(A, repo_tags=("docker.io/library/busybox:1.36",), layers=(LAYER,), chain_ids=(CHAIN,)))
    assert store.get(A).repo_tags == (BUSYBOX, "docker.io/library/busybox:1.36")
    assert store.get(A).repo_digests == (BUSYBOX_DIGEST,)


@pytest.mark.parametrize("text", [BUSYBOX, BUSYBOX_DIGEST, A, "a1a1a1a1a1a1a"])
def test_remove_takes_the_whole_image(store: ImageStore, text: str) -> None:
    """Removing by any name removes the image with all its references and returns it."""
    removed = store.remove(text)
    assert removed.id == A
    for name in (BUSYBOX, BUSYBOX_DIGEST, A):
        with pytest.raises(NotFound):
            store.get(name)
    assert {r.id for r in store.list()} == {A2, B}


def test_remove_missing_is_not_found(store: ImageStore) -> None:
    """Removing an unknown image is NotFound naming it."""
    with pytest.raises(NotFound, match="nope"):
        store.remove("docker.io/library/nope:latest")


def test_referenced_sets(store: ImageStore) -> None:
    """GC keeps configs, layers, manifest/index blobs, repo digests' targets and chains of every image."""
    assert store.referenced_blobs() == {A, A2, B, LAYER, MANIFEST, INDEX}
    assert store.referenced_chains() == {CHAIN}
    store.remove(A)
    assert store.referenced_blobs() == {A2, B}
    assert store.referenced_chains() == set()


def test_survives_restart(store: ImageStore) -> None:
    """A new store on the same root sees the same records, field for field."""
    store.put(ImageRecord.from_config(id="sha256:" + "9" * 64, config={"config": {"Env": ["A=1"], "Labels": {"x": "y"}}}))
    again = ImageStore(store.root)
    assert again.list() == store.list()
    assert again.get("sha256:" + "9" * 64).labels == {"x": "y"}
    assert [n for n in os.listdir(store.root)] == ["images.json"]


@pytest.mark.parametrize(
    "content, error",
    [
        ("{", Internal),
        ("[]", Internal),
        (json.dumps({"version": 99, "images": []}), FailedPrecondition),
        (json.dumps({"version": 1}), Internal),
        (json.dumps({"version": 1, "images": [{"id": "nope"}]}), Internal),
        (json.dumps({"version": 1, "images": [{"id": A, "repo_tags": "x"}]}), Internal),
        (json.dumps({"version": 1, "images": [{"id": A, "unknown_field": 1}]}), Internal),
    ],
)
def test_bad_store_file_is_refused(tmp_path: Path, content: str, error: type[Exception]) -> None:
    """A corrupt or newer store file stops loading with an error naming the file (nothing is dropped silently)."""
    (tmp_path / "images.json").write_text(content)
    with pytest.raises(error, match="images.json"):
        ImageStore(str(tmp_path))


@pytest.mark.parametrize(
    "config, fields",
    [
        ({}, {"entrypoint": (), "cmd": (), "env": (), "user": "", "working_dir": ""}),
        ({"config": None}, {"cmd": ()}),
        (
            {
                "config": {
                    "Entrypoint": ["/bin/sh", "-c"],
                    "Cmd": ["echo hi"],
                    "Env": ["PATH=/bin"],
                    "WorkingDir": "/w",
                    "User": "1000:1000",
                    "ExposedPorts": {"80/tcp": {}, "443/tcp": {}},
                    "Volumes": {"/data": {}},
                    "StopSignal": "SIGQUIT",
                    "Labels": {"maintainer": "me"},
                }
            },
            {
                "entrypoint": ("/bin/sh", "-c"),
                "cmd": ("echo hi",),
                "env": ("PATH=/bin",),
                "working_dir": "/w",
                "user": "1000:1000",
                "exposed_ports": ("443/tcp", "80/tcp"),
                "volumes": ("/data",),
                "stop_signal": "SIGQUIT",
                "labels": {"maintainer": "me"},
            },
        ),
        ({"config": {"Cmd": None, "Labels": None}}, {"cmd": (), "labels": {}}),
    ],
)
def test_from_config(config: dict[str, Any], fields: dict[str, Any]) -> None:
    """The config fields containers need are taken from the image config; absent or null ones are empty."""
    r = ImageRecord.from_config(id=A, config=config, repo_tags=[BUSYBOX], size=5)
    for name, value in fields.items():
        assert getattr(r, name) == value
    assert r.repo_tags == (BUSYBOX,) and r.size == 5


@pytest.mark.parametrize(
    "config, words",
    [
        ({"config": {"Cmd": "echo"}}, "Cmd"),
        ({"config": {"Env": [1]}}, "Env"),
        ({"config": {"User": 0}}, "User"),
        ({"config": {"ExposedPorts": ["80"]}}, "ExposedPorts"),
        ({"config": {"Labels": {"a": 1}}}, "Labels"),
        ({"config": []}, "config.config"),
    ],
)
def test_from_config_refuses_malformed(config: dict[str, Any], words: str) -> None:
    """A malformed config field is InvalidArgument naming the image and the field."""
    with pytest.raises(InvalidArgument, match=words) as info:
        ImageRecord.from_config(id=A, config=config)
    assert A in str(info.value)


def test_put_refuses_bad_id(store: ImageStore) -> None:
    """An image id must be a sha256 digest."""
    with pytest.raises(InvalidArgument, match="busybox"):
        store.put(record("busybox"))
