"""The ImageService glue (server/images.py) and RPC modules over in-memory fakes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from cri_api.v1 import api_pb2

from dockyard.cri import errors
from dockyard.cri.metrics import Metrics
from dockyard.cri.server import image_list, image_pull, image_remove, image_status, imagefs_info
from dockyard.cri.image.leases import Leases
from dockyard.cri.server.images import Images, failure_reason, layer_diff_ids


@dataclass(frozen=True)
class Ref:
    text: str

    @property
    def repository(self) -> str:
        return self.text.split(":")[0]

    @property
    def domain(self) -> str:
        return self.text.split("/")[0] if "/" in self.text else "docker.io"

    def string(self) -> str:
        return self.text if ":" in self.text else self.text + ":latest"


def parse_ref(text: str) -> Ref:
    if " " in text or not text:
        raise errors.InvalidArgument(f"invalid reference {text!r}")
    return Ref(text)


@dataclass(frozen=True)
class Desc:
    media_type: str
    digest: str
    size: int


@dataclass(frozen=True)
class Pulled:
    reference: Ref
    config_digest: str
    config: dict[str, Any]
    layers: tuple[Desc, ...]
    manifest_digest: str


@dataclass
class Record:
    id: str
    repo_tags: list[str]
    repo_digests: list[str]
    size: int
    chain_ids: list[str]
    blobs: set[str]
    user: str = ""


class FakeContent:
    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.on_use: Callable[[str], None] = lambda digest: None

    def path(self, digest: str) -> str:
        return "/content/" + digest

    def has(self, digest: str) -> bool:
        self.on_use(digest)  # as ContentStore(on_use=...) does
        return digest in self.blobs

    def write(self, digest: str, data: bytes) -> None:
        self.on_use(digest)
        self.blobs[digest] = data

    def read(self, digest: str) -> bytes:
        if digest not in self.blobs:
            raise errors.NotFound(f"blob {digest}")
        return self.blobs[digest]

    def delete(self, digest: str) -> None:
        self.read(digest)
        del self.blobs[digest]

    def digests(self) -> set[str]:
        return set(self.blobs)

    def usage(self) -> tuple[int, int]:
        return sum(len(b) for b in self.blobs.values()), len(self.blobs)


class FakeSnapshotter:
    root = "/snapshots"

    def __init__(self, fail_on: str | None = None) -> None:
        self.chains: set[str] = set()
        # chains under a container's rootfs; and ones that became busy after GC looked
        self.used: set[str] = set()
        self.busy: set[str] = set()
        self.fail_on = fail_on
        self.calls: list[tuple[str, str | None]] = []
        self.staged: set[str] = set()  # staged and neither committed nor discarded
        self.flushed: list[str] = []  # chains flushed after their staging

    def unpack(self, layer_path: str, media_type: str, diff_id: str, parent: str | None) -> str:
        self.calls.append((diff_id, parent))
        if diff_id == self.fail_on:
            raise errors.InvalidArgument(f"layer {layer_path}: diff id mismatch")
        chain = self.chain_of(parent, diff_id)
        self.chains.add(chain)
        return chain

    def stage(self, layer_path: str, media_type: str, diff_id: str, chain: str,
              source: Any = None) -> tuple[str, str] | None:
        if chain in self.chains:
            return None
        if diff_id == self.fail_on:
            raise errors.InvalidArgument(f"layer {layer_path}: diff id mismatch")
        self.staged.add(chain)
        return (chain, diff_id)

    def flush(self, staged: tuple[str, str]) -> None:
        self.flushed.append(staged[0])

    def commit_staged(self, staged: tuple[str, str], parent: str | None) -> str:
        chain, diff_id = staged
        self.calls.append((diff_id, parent))
        self.staged.discard(chain)
        self.chains.add(chain)
        return chain

    def discard(self, staged: tuple[str, str]) -> None:
        self.staged.discard(staged[0])

    def committed(self) -> set[str]:
        return set(self.chains)

    def in_use(self) -> set[str]:
        return set(self.used)

    @staticmethod
    def chain_of(parent: str | None, diff_id: str) -> str:
        return f"{parent}/{diff_id}" if parent else diff_id

    def detach_committed(self, chain_id: str) -> Callable[[], None]:
        if chain_id in self.used or chain_id in self.busy:
            raise errors.FailedPrecondition(f"snapshot {chain_id} is in use")
        self.chains.discard(chain_id)
        return lambda: None

    def usage(self) -> tuple[int, int]:
        return 100 * len(self.chains), len(self.chains)


class FakeStore:
    def __init__(self) -> None:
        self.records: dict[str, Record] = {}

    def put(self, record: Record) -> None:
        for other in self.records.values():
            other.repo_tags = [t for t in other.repo_tags if t not in record.repo_tags]
        self.records[record.id] = record

    def get(self, ref: str) -> Record:
        for r in self.records.values():
            if ref == r.id or ref in r.repo_tags or ref in r.repo_digests:
                return r
        raise errors.NotFound(f"image {ref} not found")

    def list(self) -> list[Record]:
        return list(self.records.values())

    def remove(self, ref: str) -> Record:
        return self.records.pop(self.get(ref).id)

    def referenced_blobs(self) -> set[str]:
        return {b for r in self.records.values() for b in r.blobs}

    def referenced_chains(self) -> set[str]:
        return {c for r in self.records.values() for c in r.chain_ids}

    def usage(self) -> tuple[int, int]:
        return 10, 1


def image(name: str, layers: list[str]) -> Pulled:
    config = {"config": {"User": "1000:1000"}, "rootfs": {"type": "layers", "diff_ids": [f"diff-{l}" for l in layers]}}
    return Pulled(
        Ref(name), f"sha256:cfg-{name}", config,
        tuple(Desc("application/vnd.oci.image.layer.v1.tar+gzip", f"sha256:{l}", 10) for l in layers),
        f"sha256:man-{name}",
    )


class FakePuller:
    def __init__(self, content: FakeContent, images: dict[str, Pulled]) -> None:
        self.content = content
        self.images = images
        self.calls = 0
        self.gate: asyncio.Event | None = None
        self.fail_after_layers = False

    async def pull(self, ref: Ref, auth: Any, platform: Any = None, on_layer: Any = None,
                   on_layer_start: Any = None) -> Pulled:
        self.calls += 1
        if ref.string() not in self.images:
            raise errors.PullError(f"image {ref.string()} not found", reason="not_found")
        pulled = self.images[ref.string()]
        for i, layer in enumerate(pulled.layers):
            if not self.content.has(layer.digest):
                self.content.write(layer.digest, b"layer")
            if on_layer is not None:  # as the real puller: each layer as soon as its blob is in
                on_layer(i, layer, pulled.config["rootfs"]["diff_ids"])
        if self.fail_after_layers:
            await asyncio.sleep(0)  # the stagings get to start
            raise errors.PullError(f"image {ref.string()}: manifest changed", reason="registry_error")
        if self.gate is not None:
            await self.gate.wait()
        self.content.write(pulled.config_digest, json.dumps(pulled.config).encode())
        self.content.write(pulled.manifest_digest, b"{}")
        return pulled


def make_record(pulled: Pulled, chain_ids: list[str], size: int) -> Record:
    blobs = {pulled.config_digest, pulled.manifest_digest, *(l.digest for l in pulled.layers)}
    return Record(pulled.config_digest, [pulled.reference.string()], [f"{pulled.reference.text}@{pulled.manifest_digest}"],
                  size, chain_ids, blobs, user=pulled.config["config"]["User"])


@dataclass
class World:
    content: FakeContent = field(default_factory=FakeContent)
    snapshotter: FakeSnapshotter = field(default_factory=FakeSnapshotter)
    store: FakeStore = field(default_factory=FakeStore)
    metrics: Metrics = field(default_factory=Metrics)
    puller: FakePuller | None = None
    images: Images | None = None


@pytest.fixture
def world() -> World:
    w = World()
    w.puller = FakePuller(w.content, {"a:latest": image("a", ["l1", "l2"]), "b:latest": image("b", ["l1", "l3"])})
    leases = Leases()
    w.content.on_use = leases.hold
    w.images = Images(content=w.content, snapshotter=w.snapshotter, store=w.store, puller=w.puller,
                      metrics=w.metrics, parse_reference=parse_ref, make_record=make_record, leases=leases)
    return w


def metric(w: World, name: str, **labels: str) -> float:
    return w.metrics.registry.get_sample_value(name, labels) or 0.0


def pull(w: World, ref: str) -> api_pb2.PullImageResponse:
    assert w.images is not None
    req = api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=ref))
    return asyncio.run(image_pull.pull_image(w.images, lambda a: a, req))


async def held_pulls(w: World, *refs: str) -> list[asyncio.Task[Any]]:
    """Images.pull of each ref, started and held at the puller's gate (the caller opens it)."""
    assert w.images is not None and w.puller is not None
    w.puller.gate = asyncio.Event()
    pulls = [asyncio.create_task(w.images.pull(ref, None)) for ref in refs]
    await asyncio.sleep(0.01)
    return pulls


def test_pull_unpacks_chain_and_records(world: World) -> None:
    """PullImage unpacks each layer on its parent chain, flushing each as it is
    staged, and answers the config digest."""
    resp = pull(world, "a")
    assert resp.image_ref == "sha256:cfg-a"
    assert world.snapshotter.calls == [("diff-l1", None), ("diff-l2", "diff-l1")]
    assert sorted(world.snapshotter.flushed) == ["diff-l1", "diff-l1/diff-l2"]
    assert world.store.get("a:latest").chain_ids == ["diff-l1", "diff-l1/diff-l2"]
    assert metric(world, "dockyard_image_pulls_success_total") == 1
    assert metric(world, "dockyard_image_pulls_in_progress") == 0


def test_concurrent_pulls_share_work(world: World) -> None:
    """Two PullImage calls of one reference at once make one registry pull."""
    assert world.images is not None and world.puller is not None
    puller = world.puller

    async def scenario() -> list[Any]:
        first, second = await held_pulls(world, "a", "a:latest")
        puller.gate.set()
        return await asyncio.gather(first, second)

    one, two = asyncio.run(scenario())
    assert one is two
    assert puller.calls == 1


def test_cancelled_caller_does_not_cancel_shared_pull(world: World) -> None:
    """One waiter going away leaves the shared pull running for the other."""
    assert world.images is not None and world.puller is not None
    puller = world.puller

    async def scenario() -> Any:
        first, second = await held_pulls(world, "a", "a")
        first.cancel()
        await asyncio.sleep(0.01)
        puller.gate.set()
        return await second

    assert asyncio.run(scenario()).id == "sha256:cfg-a"


@pytest.mark.parametrize(
    ("err", "reason"),
    [
        (errors.PullError("x", reason="digest_mismatch"), "digest_mismatch"),
        (errors.NotFound("x"), "not_found"),
        (errors.Unauthenticated("x"), "unauthorized"),
        (errors.InvalidArgument("x"), "bad_layer"),
        (errors.DeadlineExceeded("x"), "timeout"),
        (errors.Unavailable("x"), "registry_error"),
        (asyncio.CancelledError(), "cancelled"),
        (KeyError("x"), "internal"),
    ],
)
def test_failure_reasons(err: BaseException, reason: str) -> None:
    """Each failure lands in one metrics reason."""
    assert failure_reason(err) == reason


@pytest.mark.parametrize(
    ("config", "count", "ok"),
    [
        ({"rootfs": {"diff_ids": ["a", "b"]}}, 2, True),
        ({"rootfs": {"diff_ids": ["a"]}}, 2, False),
        ({"rootfs": {}}, 0, False),
        ({}, 0, False),
        ({"rootfs": {"diff_ids": [1]}}, 1, False),
    ],
)
def test_layer_diff_ids(config: dict[str, Any], count: int, ok: bool) -> None:
    """config.rootfs.diff_ids must list one string per manifest layer."""
    if ok:
        assert layer_diff_ids(config, count, "r") == config["rootfs"]["diff_ids"]
    else:
        with pytest.raises(errors.PullError) as info:
            layer_diff_ids(config, count, "r")
        assert info.value.reason == "bad_layer"


def test_failed_pull_keeps_nothing(world: World) -> None:
    """A layer that fails to unpack fails the pull, counts the reason, and GC removes its blobs."""
    world.snapshotter.fail_on = "diff-l2"
    with pytest.raises(errors.InvalidArgument, match="pulling a:latest: layer"):
        pull(world, "a")
    assert world.content.blobs == {}
    assert world.snapshotter.chains == set()
    assert metric(world, "dockyard_image_pulls_failure_total", reason="bad_layer") == 1


def test_layers_staged_before_a_failure_are_discarded(world: World) -> None:
    """Layers unpacked while the pull went on are dropped when it fails: none committed, none left staged."""
    assert world.puller is not None
    world.puller.fail_after_layers = True
    with pytest.raises(errors.PullError):
        pull(world, "a:latest")
    assert world.snapshotter.chains == set()
    assert world.snapshotter.staged == set()


def test_missing_image_is_not_found(world: World) -> None:
    """A reference the registry lacks fails with the PullError (NotFound group)."""
    with pytest.raises(errors.PullError) as info:
        pull(world, "nope")
    assert info.value.code == "NotFound" and "nope" in info.value.message


def test_remove_gcs_only_unshared(world: World) -> None:
    """RemoveImage drops the image's blobs and snapshots but keeps those another image uses."""
    pull(world, "a")
    pull(world, "b")
    assert world.images is not None
    asyncio.run(image_remove.remove_image(world.images, api_pb2.RemoveImageRequest(image=api_pb2.ImageSpec(image="a"))))
    assert "sha256:l1" in world.content.blobs and "sha256:l2" not in world.content.blobs
    assert "sha256:cfg-a" not in world.content.blobs
    assert world.snapshotter.chains == {"diff-l1", "diff-l1/diff-l3"}
    # idempotent: removing again is fine
    asyncio.run(image_remove.remove_image(world.images, api_pb2.RemoveImageRequest(image=api_pb2.ImageSpec(image="a"))))


def test_remove_while_a_container_uses_the_image(world: World) -> None:
    """RemoveImage of an image whose layers back a container: the record goes,
    the snapshots the container is built on stay (no error after the record
    is gone), and they are collected once the container's rootfs is released."""
    pull(world, "a")
    assert world.images is not None
    world.snapshotter.used = {"diff-l1", "diff-l1/diff-l2"}
    asyncio.run(image_remove.remove_image(world.images, api_pb2.RemoveImageRequest(image=api_pb2.ImageSpec(image="a"))))
    with pytest.raises(errors.NotFound):
        world.images.get("a")
    assert world.snapshotter.chains == {"diff-l1", "diff-l1/diff-l2"}
    world.snapshotter.used = set()
    asyncio.run(world.images.rootfs_released())
    assert world.snapshotter.chains == set()


def test_gc_that_meets_a_busy_snapshot_keeps_it_and_goes_on(world: World) -> None:
    """A snapshot that became busy between GC's choice and its removal is kept
    for the next run; GC neither fails nor stops at it."""
    pull(world, "a")
    assert world.images is not None
    world.snapshotter.busy = {"diff-l1"}
    world.store.records.clear()
    assert world.images.collect_garbage()[1] == 1  # diff-l1/diff-l2 went, diff-l1 was busy
    assert world.snapshotter.chains == {"diff-l1"}


def test_remove_during_pull_collects_at_once_and_keeps_the_pulls_blobs(world: World) -> None:
    """RemoveImage while another pull runs collects what only the removed image used right
    away; what the pull looked up or wrote (its lease) survives, shared or fresh."""
    assert world.images is not None and world.puller is not None
    images, puller = world.images, world.puller
    pull(world, "a")

    async def scenario() -> None:
        [pulling] = await held_pulls(world, "b")
        await images.remove("a")
        # a's own layer, config and manifest are gone now; l1 (shared, held) and l3 (fresh) stay
        assert world.content.digests() == {"sha256:l1", "sha256:l3"}
        # a's own chain went; l1's is held by b's lease (its blob was in before the
        # gate, so b staged it already, found it committed, and will reuse it)
        assert world.snapshotter.chains == {"diff-l1"}
        puller.gate.set()
        await pulling

    asyncio.run(scenario())
    assert world.content.digests() == {"sha256:l1", "sha256:l3", "sha256:cfg-b", "sha256:man-b"}
    assert world.snapshotter.chains == {"diff-l1", "diff-l1/diff-l3"}
    assert images.leases.open_count() == 0


def test_gc_is_not_starved_by_overlapping_pulls(world: World) -> None:
    """With pulls always in flight (one starts before the last ends), RemoveImage still collects."""
    assert world.images is not None and world.puller is not None
    images, puller = world.images, world.puller
    pull(world, "a")

    async def scenario() -> None:
        [first] = await held_pulls(world, "b")
        removal = asyncio.create_task(images.remove("a"))
        await asyncio.wait_for(asyncio.shield(removal), 5)  # answered while the pull still waits
        assert "sha256:l2" not in world.content.blobs and "sha256:cfg-a" not in world.content.blobs
        puller.gate.set()
        await first

    asyncio.run(scenario())


def test_concurrent_removals_are_all_collected(world: World) -> None:
    """Two RemoveImage calls at once: when both have answered, neither image's blobs remain."""
    assert world.images is not None
    images = world.images
    pull(world, "a")
    pull(world, "b")

    async def scenario() -> None:
        await asyncio.gather(images.remove("a"), images.remove("b"))

    asyncio.run(scenario())
    assert world.content.blobs == {} and world.snapshotter.chains == set()


def test_a_failing_gc_does_not_fail_remove(world: World, caplog: pytest.LogCaptureFixture) -> None:
    """The record is gone whatever GC meets; a GC failure is logged and the next GC collects."""
    assert world.images is not None
    images = world.images
    pull(world, "a")
    real_delete = world.content.delete

    def broken(digest: str) -> None:
        raise OSError(5, "Input/output error")

    world.content.delete = broken  # type: ignore[method-assign]
    asyncio.run(images.remove("a"))
    assert "garbage collection failed" in caplog.text
    with pytest.raises(errors.NotFound):
        images.get("a")
    world.content.delete = real_delete  # type: ignore[method-assign]
    asyncio.run(images.request_gc())
    assert world.content.blobs == {}


def test_status_list_and_fsinfo(world: World) -> None:
    """ImageStatus (verbose), ListImages (filtered) and ImageFsInfo read the records."""
    pull(world, "a")
    pull(world, "b")
    assert world.images is not None
    images = world.images
    pinned = frozenset({"b:latest"})
    st = asyncio.run(image_status.image_status(images, pinned, api_pb2.ImageStatusRequest(
        image=api_pb2.ImageSpec(image="a"), verbose=True)))
    assert st.image.id == "sha256:cfg-a" and st.image.uid.value == 1000 and not st.image.pinned
    assert json.loads(st.info["info"])["imageSpec"]["rootfs"]["diff_ids"] == ["diff-l1", "diff-l2"]
    missing = asyncio.run(image_status.image_status(images, pinned, api_pb2.ImageStatusRequest(
        image=api_pb2.ImageSpec(image="zzz"))))
    assert not missing.HasField("image")
    everything = asyncio.run(image_list.list_images(images, pinned, api_pb2.ListImagesRequest()))
    assert [i.id for i in everything.images] == ["sha256:cfg-a", "sha256:cfg-b"]
    assert [i.pinned for i in everything.images] == [False, True]
    only = asyncio.run(image_list.list_images(images, pinned, api_pb2.ListImagesRequest(
        filter=api_pb2.ImageFilter(image=api_pb2.ImageSpec(image="b")))))
    assert [i.id for i in only.images] == ["sha256:cfg-b"]
    info = asyncio.run(imagefs_info.imagefs_info(images, api_pb2.ImageFsInfoRequest()))
    fs = info.image_filesystems[0]
    assert fs.fs_id.mountpoint == "/snapshots"
    assert fs.used_bytes.value == world.content.usage()[0] + 300 + 10
    assert fs.inodes_used.value == len(world.content.blobs) + 3 + 1


@pytest.mark.parametrize(
    ("user", "uid", "name"),
    [("", None, ""), ("0", 0, ""), ("1000:1000", 1000, ""), ("nobody", None, "nobody"), ("www:www", None, "www")],
)
def test_user_of(user: str, uid: int | None, name: str) -> None:
    """Config.User becomes the CRI uid or username."""
    assert image_status.user_of(user) == (uid, name)
