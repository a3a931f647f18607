"""The project's own protocol definitions: the daemon <-> shim API (api/shim.py), length-prefixed JSON frames."""
