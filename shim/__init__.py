"""dockyard-shim: the per-pod parent of containers. Built in a later issue."""
