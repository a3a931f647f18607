"""Pulling from OCI distribution / Docker Registry v2 registries.

hosts.py  — containerd's hosts.toml directory layout -> the hosts to try
auth.py   — WWW-Authenticate parsing, bearer and basic credentials
client.py — the HTTP client: TLS, plain HTTP only where configured or to loopback, retries, no-progress timeout
puller.py — manifest/index -> config and layers into the content store, verified while streaming
"""
