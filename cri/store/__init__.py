"""Sandbox and container metadata: versioned JSON records under root_dir."""
