"""The project's own protocol definitions (the shim API), generated with grpcio-tools."""
