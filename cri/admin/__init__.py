"""The admin service behind the ``dockyard`` command (api/admin.proto): one module per
RPC, wired through the same instrument wrapper (readiness, logs, metrics, the one
table of gRPC codes) as the CRI services by ``service.py``, on a socket of its own."""
