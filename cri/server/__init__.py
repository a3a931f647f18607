"""The CRI gRPC services: one module per RPC, wired by service.py, all behind instrument.py."""
