"""Image reference parsing and docker normalisation."""

from __future__ import annotations

import pytest

from dockyard.cri.errors import InvalidArgument
from dockyard.cri.image.reference import Reference, parse_reference

D = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "domain", "path", "tag", "digest"),
    [
        ("busybox", "docker.io", "library/busybox", "latest", None),
        ("busybox:1.36", "docker.io", "library/busybox", "1.36", None),
        (f"busybox@{D}", "docker.io", "library/busybox", None, D),
        (f"busybox:1.36@{D}", "docker.io", "library/busybox", "1.36", D),
        ("library/busybox", "docker.io", "library/busybox", "latest", None),
        ("user/app", "docker.io", "user/app", "latest", None),
        ("docker.io/busybox", "docker.io", "library/busybox", "latest", None),
        ("index.docker.io/busybox", "docker.io", "library/busybox", "latest", None),
        ("index.docker.io/user/app:v1", "docker.io", "user/app", "v1", None),
        ("registry.k8s.io/pause:3.10", "registry.k8s.io", "pause", "3.10", None),
        ("127.0.0.1:5000/busybox", "127.0.0.1:5000", "busybox", "latest", None),
        ("127.0.0.1:5000/a/b:t", "127.0.0.1:5000", "a/b", "t", None),
        (f"127.0.0.1:5000/a/b@{D}", "127.0.0.1:5000", "a/b", None, D),
        (f"host:5000/x:tag@{D}", "host:5000", "x", "tag", D),
        ("localhost/app", "localhost", "app", "latest", None),
        ("localhost:5000/app:dev", "localhost:5000", "app", "dev", None),
        ("[::1]:5000/app", "[::1]:5000", "app", "latest", None),
        ("Example.COM/app", "Example.COM", "app", "latest", None),
        ("a.b/c__d/e-f.g/h---i:Tag_1.2-x", "a.b", "c__d/e-f.g/h---i", "Tag_1.2-x", None),
    ],
)
def test_parse(text: str, domain: str, path: str, tag: str | None, digest: str | None) -> None:
    assert parse_reference(text) == Reference(domain, path, tag, digest)


@pytest.mark.parametrize(
    ("text", "canonical", "repository"),
    [
        ("busybox", "docker.io/library/busybox:latest", "docker.io/library/busybox"),
        (f"h:5000/a/b@{D}", f"h:5000/a/b@{D}", "h:5000/a/b"),
        (f"x.io/y:tag@{D}", f"x.io/y:tag@{D}", "x.io/y"),
    ],
)
def test_canonical_string(text: str, canonical: str, repository: str) -> None:
    ref = parse_reference(text)
    assert ref.string() == canonical == str(ref)
    assert ref.repository == repository
    assert parse_reference(canonical) == ref


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "empty"),
        ("BusyBox", "lowercase"),
        ("docker.io/Library/busybox", "lowercase"),
        ("busybox@sha256:abc", "malformed digest"),
        ("busybox@sha256:" + "AB" * 32, "malformed digest"),
        ("busybox@sha512:" + "ab" * 64, "unsupported digest algorithm"),
        ("busybox@" + "ab" * 32, "malformed digest"),
        ("busybox:", "malformed tag"),
        ("busybox:-x", "malformed tag"),
        ("busybox:" + "t" * 129, "malformed tag"),
        (":tag", "missing repository"),
        ("host:5000/", "malformed repository"),
        ("a//b", "malformed repository"),
        ("a/b/", "malformed repository"),
        ("-a/b", "malformed repository"),
        ("bad_host.com/app", "malformed registry host"),
        ("ab" * 32, "image ID"),
        ("x.io/" + "a" * 260, "longer than 255"),
        ("busy box", "malformed"),
    ],
)
def test_rejected(text: str, why: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_reference(text)
    assert why in str(info.value)
    assert repr(text) in str(info.value)


def test_object_prefers_digest() -> None:
    assert parse_reference(f"x.io/y:t@{D}").object() == D
    assert parse_reference("x.io/y:t").object() == "t"
