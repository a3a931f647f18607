"""AppArmor on the node: is it on, which profiles are loaded, and the
profile dockyardd gives containers whose security context asks for the
runtime's default.

Facts about AppArmor this relies on:

* It is on when ``/sys/module/apparmor/parameters/enabled`` reads ``Y``
  (Debian and Ubuntu kernels boot with it on; this project's build VM has
  it off, the test guest on).
* The loaded profiles are listed, one ``name (mode)`` a line, in
  ``/sys/kernel/security/apparmor/profiles`` (securityfs).  Reading it is
  cheap, so each container create reads it again: an administrator may
  load or remove a profile at any time.
* ``apparmor_parser --replace`` compiles a profile's text (from stdin) and
  loads it, replacing one of the same name; nothing on disk changes.
* A process's profile changes at its next execve after it writes
  ``exec <name>`` to ``/proc/self/attr/apparmor/exec`` (the runtime's init
  does that, runtime/privileges.py), so the runtime's own setup before the
  container's program is not confined by it.

The default profile is written for containers: it allows what programs
normally do (files, network, capabilities the runtime left them), and
denies what a container must never do to its node: mounting, writing the
kernel's knobs in /proc and /sys, reading firmware and security state,
tracing processes outside its own profile.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading

from dockyard.runtime.kernel import apparmor as kernel_apparmor
from dockyard.runtime.kernel.apparmor import PROFILES_FILE, parse_profiles

from . import errors
from .oci.security import APPARMOR_DEFAULT as DEFAULT_PROFILE

log = logging.getLogger("dockyard.cri.apparmor")

__all__ = ["AppArmor", "DEFAULT_PROFILE", "default_profile_text", "load_profile", "loaded_profiles", "parse_profiles"]


def default_profile_text(name: str = DEFAULT_PROFILE) -> str:
    """The default profile's source, for apparmor_parser (pure)."""
    return f"""\
# dockyardd's default AppArmor profile for containers (loaded by dockyardd).
#include <tunables/global>

profile {name} flags=(attach_disconnected,mediate_deleted) {{
  #include <abstractions/base>

  # What programs in a container normally do.
  file,
  network,
  capability,
  umount,
  signal (send,receive) peer={name},
  signal (receive) peer=unconfined,
  ptrace (trace,read,tracedby,readby) peer={name},

  # Never mount: a container's mounts are made for it before its program runs.
  deny mount,
  deny remount,
  deny pivot_root,

  # The kernel's knobs and secrets in /proc.
  deny @{{PROC}}/sysrq-trigger rwklx,
  deny @{{PROC}}/kcore rwklx,
  deny @{{PROC}}/sys/kernel/core_pattern w,
  deny @{{PROC}}/sys/kernel/modprobe w,
  deny @{{PROC}}/sys/kernel/hotplug w,
  deny @{{PROC}}/sys/vm/** w,
  deny @{{PROC}}/sys/fs/** w,
  deny @{{PROC}}/timer_list r,
  deny @{{PROC}}/keys r,

  # The node's devices, firmware and security state in /sys.
  deny /sys/firmware/** rwklx,
  deny /sys/kernel/security/** rwklx,
  deny /sys/kernel/debug/** rwklx,
  deny /sys/power/** w,
  deny /sys/devices/**/power/** w,
  deny /sys/module/** w,
}}
"""


def loaded_profiles(path: str = PROFILES_FILE) -> frozenset[str]:
    names = kernel_apparmor.loaded_profiles(path)
    return frozenset() if names is None else names


class AppArmor:
    """The node's AppArmor as container creates need it."""

    def __init__(self, enabled: bool | None = None, profiles_file: str = PROFILES_FILE) -> None:
        self.enabled = kernel_apparmor.enabled() if enabled is None else enabled
        self.profiles_file = profiles_file
        self._lock = threading.Lock()

    def loaded(self) -> frozenset[str]:
        """The profiles loaded now (empty when AppArmor is off); the default
        profile is loaded first if it is not (blocking: call in a thread)."""
        if not self.enabled:
            return frozenset()
        names = loaded_profiles(self.profiles_file)
        if DEFAULT_PROFILE in names:
            return names
        with self._lock:
            names = loaded_profiles(self.profiles_file)
            if DEFAULT_PROFILE not in names:
                load_profile(default_profile_text())
                names = loaded_profiles(self.profiles_file)
        return names


def load_profile(text: str) -> None:
    """Compile and load (or replace) a profile with apparmor_parser."""
    parser = shutil.which("apparmor_parser") or ("/sbin/apparmor_parser" if os.path.exists("/sbin/apparmor_parser")
                                                 else None)
    if parser is None:
        raise errors.FailedPrecondition("AppArmor is on but apparmor_parser is not installed "
                                        "(Debian: apparmor), so dockyardd cannot load its default profile")
    done = subprocess.run([parser, "--replace"], input=text.encode(), capture_output=True, check=False)
    if done.returncode != 0:
        raise errors.Internal(f"apparmor_parser could not load {DEFAULT_PROFILE}: "
                              f"{errors.shorten(done.stderr.decode(errors='replace').strip(), 1000)}")
    log.info("loaded the AppArmor profile %s", DEFAULT_PROFILE)
