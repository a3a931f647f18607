"""A pulled image -> the ImageRecord the image store keeps.

The references: the tag the caller pulled (none for a digest-only pull) and
the repo digest ``domain/path@<top manifest or index digest>``; the blobs to
keep are the config (the id), the layers and the top manifest or index.
"""

from __future__ import annotations

from collections.abc import Sequence

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
        blobs=(pulled.manifest_digest,),
    )
