"""Following a blob as it is written (cri/content/follow.py), and unpacking a
layer from it (cri/server/layer_unpack.py): end-of-file only after the commit,
an abort is never mistaken for the end, and a staging whose download was
retried is staged again from the blob."""

from __future__ import annotations

import asyncio
import hashlib
import io
import tarfile
import threading
from pathlib import Path
from typing import Any

import pytest
import zstandard

from dockyard.cri.content.follow import SourceAborted
from dockyard.cri.content.store import ContentStore
from dockyard.cri.errors import Internal, PullError
from dockyard.cri.server.layer_unpack import LayerUnpacker
from dockyard.cri.snapshot.unpack import apply_layer

TZST = "application/vnd.oci.image.layer.v1.tar+zstd"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def store(tmp_path: Path) -> ContentStore:
    return ContentStore(str(tmp_path / "content"))


def test_a_reader_gets_what_was_written_and_the_end_only_after_the_commit(store: ContentStore) -> None:
    data = b"0123456789" * 1000
    writer = store.open_writer(sha(data), len(data))
    writer.write(data[:3000])
    with writer.follow("blob") as reader:
        assert reader.read(1 << 20) == data[:3000]
        writer.write(data[3000:])
        assert reader.read(5000) == data[3000:8000]
        writer.commit()  # renamed away from under the reader's fd
        assert reader.read(1 << 20) == data[8000:]
        assert reader.read(1 << 20) == b""


def test_a_reader_waiting_for_bytes_gets_them_when_they_are_written(store: ContentStore) -> None:
    data = b"x" * 4096
    writer = store.open_writer(sha(data), len(data))
    got: list[bytes] = []
    with writer.follow("blob") as reader:
        thread = threading.Thread(target=lambda: got.extend(iter(lambda: reader.read(1 << 20), b"")))
        thread.start()
        writer.write(data[:1000])
        writer.write(data[1000:])
        writer.commit()
        thread.join()
    assert b"".join(got) == data


@pytest.mark.parametrize("ending", ["abort", "wrong digest", "too many bytes"])
def test_a_blob_that_does_not_commit_fails_its_reader(store: ContentStore, ending: str) -> None:
    """Even with bytes unread, a reader of a failed blob raises rather than ending cleanly."""
    data = b"abc" * 100
    writer = store.open_writer(sha(data), len(data))
    writer.write(data[:100])
    with writer.follow("layer sha256:feed") as reader:
        if ending == "abort":
            writer.abort()
        elif ending == "wrong digest":
            writer.write(b"z" * 200)
            with pytest.raises(PullError):
                writer.commit()
        else:
            with pytest.raises(PullError):
                writer.write(b"z" * 1000)
        with pytest.raises(SourceAborted, match="layer sha256:feed"):
            reader.read(1 << 20)


def test_a_committed_blob_cannot_be_followed(store: ContentStore) -> None:
    writer = store.open_writer(sha(b"a"), 1)
    writer.write(b"a")
    writer.commit()
    with pytest.raises(Internal):
        writer.follow("blob")


def _layer(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


class Trickle:
    """A download whose first reads return a byte each, as a followed blob
    may while its first write is short."""

    def __init__(self, data: bytes) -> None:
        self.data, self.position = data, 0

    def read(self, n: int = -1, /) -> bytes:
        n = 1 if self.position < 3 else n
        out = self.data[self.position : self.position + n]
        self.position += len(out)
        return out


def test_a_layer_is_sniffed_past_short_first_reads(tmp_path: Path) -> None:
    tar = _layer({"a": b"A" * 5000})
    assert apply_layer(Trickle(zstandard.ZstdCompressor().compress(tar)), str(tmp_path), TZST) == sha(tar)
    assert (tmp_path / "a").read_bytes() == b"A" * 5000


def test_a_layer_unpacks_from_its_download_in_small_pieces(store: ContentStore, tmp_path: Path) -> None:
    tar = _layer({"a": b"A" * 70_000, "b/c": b"C" * 1000})
    blob = zstandard.ZstdCompressor().compress(tar)
    writer = store.open_writer(sha(blob), len(blob))
    dest = tmp_path / "dest"
    dest.mkdir()
    result: list[str] = []
    with writer.follow("layer") as reader:
        thread = threading.Thread(target=lambda: result.append(apply_layer(reader, str(dest), TZST)))
        thread.start()
        writer.write(blob[:2])
        for i in range(2, len(blob), 4096):
            writer.write(blob[i : i + 4096])
        writer.commit()
        thread.join()
    assert result == [sha(tar)]
    assert (dest / "a").read_bytes() == b"A" * 70_000 and (dest / "b" / "c").read_bytes() == b"C" * 1000


# --- LayerUnpacker: which stagings follow a download, and the retry ---------


class Layer:
    def __init__(self, digest: str) -> None:
        self.digest = digest
        self.media_type = TZST


class Source:
    """A followed download that either ends cleanly or was abandoned."""

    def __init__(self, aborted: bool = False) -> None:
        self.aborted = aborted
        self.closed = False

    def read(self, n: int = -1, /) -> bytes:
        if self.aborted:
            raise SourceAborted("layer: its download was abandoned")
        return b""

    def close(self) -> None:
        self.closed = True


class Snapshotter:
    def __init__(self) -> None:
        self.stages: list[tuple[str, Any]] = []  # (chain, source or None)
        self.committed: list[str] = []

    def stage(self, layer_path: str, media_type: str, diff_id: str, chain: str, source: Any = None) -> Any:
        self.stages.append((chain, source))
        if source is not None:
            source.read(1)
        return chain

    def flush(self, staged: Any) -> None:
        pass

    def commit_staged(self, staged: Any, parent: str | None) -> str:
        self.committed.append(staged)
        return str(staged)

    def discard(self, staged: Any) -> None:
        pass


def _unpacker(snapshotter: Snapshotter) -> LayerUnpacker:
    return LayerUnpacker(snapshotter, lambda digest: f"/blobs/{digest}", lambda parent, diff: f"{parent}/{diff}")


def test_a_started_download_is_staged_from_its_bytes_once() -> None:
    async def run() -> tuple[Snapshotter, Source]:
        snapshotter, source = Snapshotter(), Source()
        unpacker = _unpacker(snapshotter)
        layers = (Layer("sha256:l0"),)
        unpacker.layer_started(0, layers[0], ["d0"], lambda what: source)
        unpacker.layer_ready(0, layers[0], ["d0"])  # the blob is in: already under way
        await unpacker.commit_all(layers, ["d0"])
        await unpacker.close()
        return snapshotter, source

    snapshotter, source = asyncio.run(run())
    assert snapshotter.stages == [("None/d0", source)]
    assert snapshotter.committed == ["None/d0"]
    assert source.closed


@pytest.mark.parametrize("retry_started", [True, False])
def test_a_staging_whose_download_was_retried_is_staged_again(retry_started: bool) -> None:
    """The first attempt's source is abandoned; the retry's start (or, failing
    that, commit_all with the blob in the store) stages the layer again."""

    async def run() -> tuple[Snapshotter, list[Source]]:
        snapshotter = Snapshotter()
        unpacker = _unpacker(snapshotter)
        layers = (Layer("sha256:l0"), Layer("sha256:l1"))
        diff_ids = ["d0", "d1"]
        first, retry = Source(aborted=True), Source()
        unpacker.layer_started(1, layers[1], diff_ids, lambda what: first)
        if retry_started:
            await asyncio.wait([unpacker._tasks[1]])  # the staging has met the abort
            assert first.closed
            unpacker.layer_started(1, layers[1], diff_ids, lambda what: retry)
        unpacker.layer_ready(0, layers[0], diff_ids)
        chains = await unpacker.commit_all(layers, diff_ids)
        await unpacker.close()
        assert chains == ["None/d0", "None/d0/d1"]
        return snapshotter, [first, retry]

    snapshotter, (first, retry) = asyncio.run(run())
    restaged = retry if retry_started else None
    assert ("None/d0/d1", first) in snapshotter.stages and ("None/d0/d1", restaged) in snapshotter.stages
    assert snapshotter.committed == ["None/d0", "None/d0/d1"]
