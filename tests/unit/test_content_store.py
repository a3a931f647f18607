"""ContentStore and digest parsing: blobs appear under their digest only when complete and verified."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from dockyard.cri.content.digest import digest_hex, is_digest
from dockyard.cri.content.store import ContentStore
from dockyard.cri.errors import InvalidArgument, NotFound, PullError

HEX = "a" * 64


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def store(tmp_path: object) -> ContentStore:
    return ContentStore(str(tmp_path))


@pytest.mark.parametrize(
    "digest, hexpart",
    [
        (f"sha256:{HEX}", HEX),
        ("sha256:" + "0123456789abcdef" * 4, "0123456789abcdef" * 4),
    ],
)
def test_digest_hex_accepts_sha256(digest: str, hexpart: str) -> None:
    """A well-formed sha256 digest yields its hex part."""
    assert digest_hex(digest) == hexpart
    assert is_digest(digest)


@pytest.mark.parametrize(
    "digest, words",
    [
        ("sha512:" + "a" * 128, "unsupported algorithm"),
        ("md5:" + "a" * 32, "unsupported algorithm"),
        (HEX, "missing"),
        ("sha256:" + "A" * 64, "hex"),
        ("sha256:" + "a" * 63, "hex"),
        ("sha256:../../etc/passwd", "hex"),
        ("sha256:", "hex"),
    ],
)
def test_digest_hex_rejects(digest: str, words: str) -> None:
    """Only sha256 with 64 lowercase hex is accepted; the error names the digest."""
    with pytest.raises(InvalidArgument) as info:
        digest_hex(digest)
    assert digest in str(info.value)
    assert words in str(info.value)
    assert not is_digest(digest)


def test_write_commit_read(store: ContentStore) -> None:
    """A committed blob is readable under its digest, listed, sized, and the ingest dir is empty."""
    data = b"hello world" * 1000
    d = sha(data)
    with store.open_writer(d, len(data)) as w:
        w.write(data[:5000])
        w.write(data[5000:])
        path = w.commit()
    assert path == store.path(d)
    assert store.has(d) and store.read(d) == data and store.size(d) == len(data)
    assert store.digests() == {d}
    assert os.listdir(store.ingest_dir) == []


@pytest.mark.parametrize(
    "payload, claimed_size, digest_of, words",
    [
        (b"abc", 3, b"abd", "content has digest"),
        (b"abc", 4, b"abc", "got 3 bytes, expected 4"),
        (b"abcd", 3, b"abc", "more than the expected 3 bytes"),
    ],
)
def test_mismatch_keeps_nothing(
    store: ContentStore, payload: bytes, claimed_size: int, digest_of: bytes, words: str
) -> None:
    """A digest or size mismatch raises PullError(digest_mismatch) naming the digest and leaves no file."""
    d = sha(digest_of)
    with pytest.raises(PullError) as info:
        with store.open_writer(d, claimed_size) as w:
            w.write(payload)
            w.commit()
    assert info.value.reason == "digest_mismatch"
    assert d in str(info.value) and words in str(info.value)
    assert not store.has(d)
    assert os.listdir(store.ingest_dir) == []


def test_context_manager_aborts_on_error(store: ContentStore) -> None:
    """Leaving the writer without commit (an exception, a cancellation) deletes the temp file."""
    d = sha(b"x")
    with pytest.raises(RuntimeError):
        with store.open_writer(d, None) as w:
            w.write(b"x")
            raise RuntimeError("network went away")
    assert os.listdir(store.ingest_dir) == [] and not store.has(d)


def test_rejects_non_sha256(store: ContentStore) -> None:
    """open_writer refuses other algorithms, naming the digest."""
    with pytest.raises(InvalidArgument, match="sha512"):
        store.open_writer("sha512:" + "a" * 128, None)


@pytest.mark.parametrize("op", ["read", "size", "delete"])
def test_missing_blob_is_not_found(store: ContentStore, op: str) -> None:
    """Reading, sizing or deleting an absent blob is NotFound naming the digest."""
    d = sha(b"absent")
    with pytest.raises(NotFound, match=d):
        getattr(store, op)(d)


def test_put_and_delete(store: ContentStore) -> None:
    """put() stores a whole blob; delete() removes it."""
    d = sha(b"{}")
    store.put(d, b"{}")
    assert store.digests() == {d}
    store.delete(d)
    assert store.digests() == set() and not store.has(d)


def test_usage_counts_blobs(store: ContentStore) -> None:
    """usage() grows by the blob's blocks and one inode per blob."""
    before_bytes, before_inodes = store.usage()
    data = os.urandom(100_000)
    store.put(sha(data), data)
    after_bytes, after_inodes = store.usage()
    assert after_inodes == before_inodes + 1
    assert after_bytes >= before_bytes + 100_000


def test_kill_9_mid_write_leaves_only_an_ingest_temp(store: ContentStore) -> None:
    """A writer killed with SIGKILL mid-blob never exposes a partial blob; clean_temporary() removes the leftover."""
    data = os.urandom(1 << 20)
    d = sha(data)
    child = textwrap.dedent(
        f"""
        import sys
        from dockyard.cri.content.store import ContentStore
        w = ContentStore({store.root!r}).open_writer({d!r}, {len(data)})
        w.write(sys.stdin.buffer.read({len(data) // 2}))
        w._file.flush()
        print("half", flush=True)
        sys.stdin.buffer.read()
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", child], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(data[: len(data) // 2])
    proc.stdin.flush()
    assert proc.stdout.readline() == b"half\n"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdin.close()
    proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    assert not store.has(d) and store.digests() == set()
    leftovers = os.listdir(store.ingest_dir)
    assert len(leftovers) == 1
    assert os.path.getsize(os.path.join(store.ingest_dir, leftovers[0])) == len(data) // 2
    assert store.clean_temporary() == 1
    assert os.listdir(store.ingest_dir) == []
