"""dockyard-shim: the per-pod parent of containers, which keeps their stdio, logs and exit status."""
