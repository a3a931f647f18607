"""The CRI socket's own gRPC server (see server.py for why): HTTP/2 frames,
gRPC messages and one connection's state kept pure, asyncio I/O apart."""
