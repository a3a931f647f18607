"""The "fork" launch strategy: the bundled dockyard-runc, run in a fork of the shim.

Why: a fresh interpreter's start (the floor row of README's runtime results)
comes before the runtime does anything, and every create, start, exec and
delete of a pod paid it; a fork of the shim starts at once (README's pod
and streaming figures come from this).
Only the dockyard-runc of the shim's own installation qualifies
(oci_runtime.is_bundled_runtime): one installation, one version of the
code.  Any other binary is executed (oci_runtime.SpawnBinary).

The child is made to look like a freshly executed runtime first: the
shim's signal handling undone, the given stdio on 0-2 and every other fd
closed, the runtime's modules loaded anew from disk (a shim that outlived
an upgrade must not mix its old copy with the new code), and no garbage
collection, whose finalizers could close the shim's old fd numbers after
the runtime reused them.  The shim is single-threaded, so the fork copies
no lock held by another thread.

The layering exception: this module, and no other in shim/, runs the
runtime's own code.  It names the CLI's module (``RUNTIME_CLI``) and loads it
by that name in the child only, at run time, so the shim's process never
imports it; tests/unit/test_layering.py checks that this is the one place.
"""

from __future__ import annotations

import sys

from dockyard.runtime.kernel.lean import leanos, leansignal

RUNTIME_CLI = "dockyard.runtime.cli.main"
RUNTIME_PACKAGE = "dockyard.runtime"


# What the systemd driver's runtime code imports from outside dockyard.runtime.
SYSTEMD_BUS_MODULE = "jeepney.io.blocking"


class ForkBundled:
    name = "fork"

    def __init__(self, *, systemd_cgroup: bool = False) -> None:
        if systemd_cgroup:
            preload_systemd_bus()

    def launch(self, argv: list[str], stdio: tuple[int, int, int]) -> int:
        sys.stdout.flush()  # nothing of the shim's may come out of the child's stdio
        sys.stderr.flush()
        pid = leanos.fork()
        if pid == 0:
            become_runtime(argv[1:], stdio)  # never returns
        return pid


def preload_systemd_bus() -> None:
    """Import jeepney's blocking D-Bus client once, in the shim, for the forks.

    With the systemd cgroup driver every create and run asks systemd for a
    scope over D-Bus, and the fork found jeepney unloaded each time: in the
    test guest (TCG) its import took 220 ms of a 1.06 s ``create``, against
    0.07 s for the D-Bus work itself (12 ms here).  Loaded before the fork,
    it is there already.  The price is the shim's memory (socket, selectors,
    enum and jeepney stay loaded: README's guest results give the figure)
    and its start, which a spare shim pays before its pod exists; so only a
    shim started with the systemd driver pays it.  Unlike the runtime's own
    modules, which each fork reloads, jeepney is a pinned dependency of the
    installation, not code that changes under a running shim.
    """
    from dockyard.runtime.kernel.lean.venv import site_packages_on_path

    site_packages_on_path()
    __import__(SYSTEMD_BUS_MODULE)


def become_runtime(argv: list[str], stdio: tuple[int, int, int]) -> None:
    """In a fork of the shim: run dockyard-runc's main with ``argv``, then exit.  Never returns."""
    code = 1
    try:
        import gc

        gc.disable()
        leansignal.set_wakeup_fd(-1)
        for signum in (leansignal.SIGCHLD, leansignal.SIGTERM, leansignal.SIGINT, leansignal.SIGHUP,
                       leansignal.SIGPIPE, leansignal.SIGXFSZ):
            leansignal.signal(signum, leansignal.SIG_DFL)
        for n, fd in enumerate(stdio):  # all >= 3: the shim's own 0-2 are taken (main.py)
            leanos.dup2(fd, n)
            leanos.set_inheritable(n, True)  # as posix_spawn's dup2 leaves them: the container inherits them
        leanos.closerange(3, 1 << 20)
        prefix = RUNTIME_PACKAGE + "."
        for name in [m for m in sys.modules if m == RUNTIME_PACKAGE or m.startswith(prefix)]:
            del sys.modules[name]
        main = __import__(RUNTIME_CLI, fromlist=["main"]).main

        code = main(argv)
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException as err:  # the child must never fall back into the shim's loop
        try:
            leanos.write(2, f"dockyard-runc (in the shim's fork): {type(err).__name__}: {err}\n".encode())
        except OSError:
            pass
    finally:
        leanos._exit(code)
