"""dockyard-runc: a runc-compatible OCI runtime."""
