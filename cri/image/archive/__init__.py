"""Image archives: ``dockyard images import`` and ``export``.

reader.py  — the archive stream (tar, gzip or zstd) into the content store, once, front to back
layout.py  — which images it holds and their names: an OCI image layout or docker save's
export.py  — images as an OCI image layout tar with docker's manifest.json
"""
