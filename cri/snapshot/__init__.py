"""Snapshots: safe layer unpacking and the overlayfs snapshotter keyed by chain id."""
