"""Crash-safe file replacement for the daemon's stores: the runtime's
implementation (dockyard.runtime.kernel.durable), one copy for both."""

from dockyard.runtime.kernel.durable import TEMP_PREFIX, fsync_dir, remove_temporaries, temp_name, write_atomic

__all__ = ["TEMP_PREFIX", "fsync_dir", "remove_temporaries", "temp_name", "write_atomic"]
