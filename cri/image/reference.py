"""Image references: parsing and docker's normalisation rules.

Grammar (distribution/reference, restated):

    reference  := name [ ":" tag ] [ "@" digest ]
    name       := [ domain "/" ] component ( "/" component )*
    domain     := host [ ":" port ]         host: DNS labels joined by ".", or [IPv6]
    component  := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
    tag        := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
    digest     := "sha256:" 64 lowercase hex

The first path element is a domain only if it contains "." or ":", is
"localhost", or has an uppercase letter (docker's rule; the uppercase case then
fails as a bad domain only if it is not a valid hostname). Otherwise the domain
is docker.io, and a single-component docker.io path gets "library/" in front.
"index.docker.io" is the same registry as "docker.io". The default tag
"latest" is added only when neither tag nor digest is given. Only sha256
digests are accepted: the content store verifies sha256, and an image we
cannot verify is not pulled.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dockyard.cri.errors import InvalidArgument

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_TOTAL_LENGTH_MAX = 255

_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_PATH_RE = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_DOMAIN_LABEL = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_RE = re.compile(rf"(?:{_DOMAIN_LABEL}(?:\.{_DOMAIN_LABEL})*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?")
_TAG_RE = re.compile(r"[\w][\w.-]{0,127}", re.ASCII)
_DIGEST_RE = re.compile(r"sha256:[a-f0-9]{64}")
_ANY_DIGEST_RE = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")
_ID_RE = re.compile(r"[a-f0-9]{64}")


@dataclass(frozen=True, slots=True)
class Reference:
    """A normalised image reference; `domain` and `path` are never empty."""

    domain: str
    path: str
    tag: str | None
    digest: str | None

    @property
    def repository(self) -> str:
        return f"{self.domain}/{self.path}"

    def string(self) -> str:
        """The canonical text: "docker.io/library/busybox:latest", "h:5000/a@sha256:..."."""
        text = self.repository
        if self.tag is not None:
            text += ":" + self.tag
        if self.digest is not None:
            text += "@" + self.digest
        return text

    def object(self) -> str:
        """What goes after /manifests/ in a registry URL: the digest if known, else the tag."""
        if self.digest is not None:
            return self.digest
        assert self.tag is not None  # parse_reference guarantees one of them
        return self.tag

    def __str__(self) -> str:
        return self.string()


def is_valid_digest(text: str) -> bool:
    return _DIGEST_RE.fullmatch(text) is not None


def parse_reference(text: str) -> Reference:
    """Parse and normalise an image reference; InvalidArgument names the text."""

    def bad(why: str) -> InvalidArgument:
        return InvalidArgument(f"invalid image reference {text!r}: {why}")

    if not text:
        raise bad("empty")
    if _ID_RE.fullmatch(text):
        raise bad("a 64-character hex string is an image ID, not a repository name")

    rest = text
    digest: str | None = None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        if not _DIGEST_RE.fullmatch(digest):
            if _ANY_DIGEST_RE.fullmatch(digest) and not digest.startswith("sha256:"):
                raise bad(f"unsupported digest algorithm in {digest!r} (only sha256)")
            raise bad(f"malformed digest {digest!r}")

    tag: str | None = None
    # A ":" after the last "/" starts the tag; one before it is a port.
    colon = rest.rfind(":")
    if colon > rest.rfind("/"):
        rest, tag = rest[:colon], rest[colon + 1 :]
        if not _TAG_RE.fullmatch(tag):
            raise bad(f"malformed tag {tag!r}")
    if not rest:
        raise bad("missing repository name")

    domain, path = _split_domain(rest)
    if not _DOMAIN_RE.fullmatch(domain):
        raise bad(f"malformed registry host {domain!r}")
    if path != path.lower() and _PATH_RE.fullmatch(path.lower()):
        raise bad("repository name must be lowercase")
    if not _PATH_RE.fullmatch(path):
        raise bad(f"malformed repository name {path!r}")
    if len(domain) + 1 + len(path) > NAME_TOTAL_LENGTH_MAX:
        raise bad(f"repository name longer than {NAME_TOTAL_LENGTH_MAX} characters")

    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = OFFICIAL_REPO_PREFIX + path
    if tag is None and digest is None:
        tag = DEFAULT_TAG
    return Reference(domain=domain, path=path, tag=tag, digest=digest)


def _split_domain(name: str) -> tuple[str, str]:
    first, sep, remainder = name.partition("/")
    if not sep:
        return DEFAULT_DOMAIN, name
    if "." in first or ":" in first or first == "localhost" or first != first.lower():
        return first, remainder
    return DEFAULT_DOMAIN, name
