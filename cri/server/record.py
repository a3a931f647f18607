"""A pulled image -> the ImageRecord the image store keeps.

The references: the tag the caller pulled (none for a digest-only pull) and
the repo digest ``domain/path@<top manifest or index digest>``; the blobs to
keep are the config (the id), the layers, the top manifest or index and the
manifest chosen from an index (``dockyard images export`` writes it).

An imported image (``import_record``) is named by the archive: each name a
tag, and ``domain/path@<digest>`` of what the archive's entry pointed at.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from dockyard.cri.image.archive.layout import ArchiveImage
from dockyard.cri.image.reference import Reference
from dockyard.cri.image.registry.puller import PulledImage
from dockyard.cri.image.store import ImageRecord


def make_record(pulled: PulledImage, chain_ids: Sequence[str], size: int) -> ImageRecord:
    ref = pulled.reference
    tags = (f"{ref.repository}:{ref.tag}",) if ref.tag else ()
    return ImageRecord.from_config(
        id=pulled.config_digest,
        config=pulled.config,
        repo_tags=tags,
        repo_digests=(pulled.repo_digest,),
        size=size,
        chain_ids=chain_ids,
        layers=[layer.digest for layer in pulled.layers],
        blobs=tuple(dict.fromkeys((pulled.manifest_digest, pulled.platform_manifest_digest or pulled.manifest_digest))),
    )


def import_record(image: ArchiveImage, chain_ids: Sequence[str], parse_reference: Callable[[str], Reference]) -> ImageRecord:
    refs = [parse_reference(name) for name in image.names]
    return ImageRecord.from_config(
        id=image.config_digest,
        config=image.config,
        repo_tags=[r.string() for r in refs if r.tag and not r.digest],
        repo_digests=list(dict.fromkeys(f"{r.repository}@{image.top_digest}" for r in refs)),
        size=sum(layer.size for layer in image.layers),
        chain_ids=chain_ids,
        layers=[layer.digest for layer in image.layers],
        blobs=tuple(dict.fromkeys((image.top_digest, image.manifest_digest, *image.blobs))),
    )
