"""What every CRI container gets unless its config says otherwise.

The values follow containerd's CRI plugin, so that a pod behaves the same on
Dockyard as on a containerd node:

* the default capability set is containerd's (docker's) fourteen, in the
  bounding, effective and permitted sets; the inheritable set stays empty
  (CVE-2022-24769: an inheritable capability survives exec of a file with
  matching file capabilities);
* masked and read-only paths are containerd's: /proc files that leak host
  information or reach host devices, and /proc knobs that are global;
* the mounts are containerd's default Unix spec minus /run (the CRI plugin
  drops it), plus a read-only /sys/fs/cgroup like docker's.
"""

from __future__ import annotations

from typing import Any

from dockyard.runtime.kernel.capabilities import CAPABILITIES

DEFAULT_CAPABILITIES: tuple[str, ...] = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
    "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL",
    "CAP_AUDIT_WRITE",
)

ALL_CAPABILITIES: tuple[str, ...] = tuple(CAPABILITIES)

MASKED_PATHS: tuple[str, ...] = (
    "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
    "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
)

READONLY_PATHS: tuple[str, ...] = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")

PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# The pod's /dev/shm when the sandbox has its own IPC namespace (issue 4: 64 MiB).
SHM_SIZE = 64 * 1024 * 1024


def default_mounts(*, privileged: bool) -> list[dict[str, Any]]:
    """The filesystems every container sees.  A privileged container gets
    /sys and /sys/fs/cgroup read-write, as containerd gives it."""
    sys_mode = "rw" if privileged else "ro"
    return [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", sys_mode]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["nosuid", "noexec", "nodev", "relatime", sys_mode]},
    ]


def private_shm_mount(size: int = SHM_SIZE) -> dict[str, Any]:
    return {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
            "options": ["nosuid", "noexec", "nodev", "mode=1777", f"size={size}"]}
