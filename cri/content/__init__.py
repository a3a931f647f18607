"""Content store: blobs (manifests, configs, layers) addressed by digest."""
