"""The systemd cgroup driver: the container's cgroup is a transient scope unit (manager.py)."""
