"""Reading the cgroup filesystems: where the hierarchies are mounted (mountinfo,
mode), where a ``linux.cgroupsPath`` lands in each (cgroup_path), control
file I/O (files) and the stats those files hold (stats_v1, stats_v2).

The runtime's managers (dockyard.runtime.cgroups) write limits through these;
the daemon reads a container's usage with them.
"""
