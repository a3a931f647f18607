"""Which AppArmor profiles the kernel has loaded.

Facts:
* AppArmor is on when ``/sys/module/apparmor/parameters/enabled`` reads ``Y``.
* Loaded profiles are listed, ``name (mode)`` a line, in securityfs's
  ``apparmor/profiles`` (mounted at /sys/kernel/security on every distro
  that runs AppArmor).
* Asking for an unknown profile with ``exec <name>`` in
  ``/proc/self/attr/apparmor/exec`` is not refused by every kernel: Debian's
  6.1 accepts it from an unconfined process and the program then runs
  unconfined.  So whoever applies a profile checks this list first.
"""

from __future__ import annotations

ENABLED_FILE = "/sys/module/apparmor/parameters/enabled"
PROFILES_FILE = "/sys/kernel/security/apparmor/profiles"


def enabled(path: str = ENABLED_FILE) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read().strip() == b"Y"
    except OSError:
        return False


def parse_profiles(text: str) -> frozenset[str]:
    """Names in the profiles list ("name (mode)" lines) (pure)."""
    names = set()
    for line in text.splitlines():
        name, _, mode = line.rstrip().rpartition(" ")
        if name and mode.startswith("(") and mode.endswith(")"):
            names.add(name)
    return frozenset(names)


def loaded_profiles(path: str = PROFILES_FILE) -> frozenset[str] | None:
    """The loaded profiles; None when the list cannot be read (securityfs not mounted)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return parse_profiles(f.read())
    except OSError:
        return None
