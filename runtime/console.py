"""The container's terminal, handed over ``--console-socket``.

Facts: the pty must come from the *container's* devpts instance, so it is
opened after pivot_root through /dev/ptmx (a symlink to pts/ptmx).  The
master goes to whoever listens on the console socket, as one SCM_RIGHTS
message whose data is the pty's name (runc's convention, which containerd
reads); the init keeps only the slave, which becomes its stdio and, after
setsid(), its controlling terminal through TIOCSCTTY.  /dev/console is the
slave bind-mounted, as programs expect.
"""

from __future__ import annotations

import fcntl
import struct
import termios

from .kernel import syscalls
from .kernel.errors import SyscallError
from .kernel.lean import leanos, leansocket


def set_size(fd: int, size: tuple[int, int]) -> None:
    rows, cols = size
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def setup(console_sock_fd: int, size: tuple[int, int] | None, bind_console: bool) -> None:
    try:
        master, slave = leanos.openpty()
    except OSError as err:
        raise SyscallError("open pty", "/dev/ptmx", err.errno or 0) from err
    name = leanos.ttyname(slave)
    if size is not None:
        set_size(master, size)
    sock = leansocket.socket(fileno=console_sock_fd)
    try:
        # One message: the pty's name, with the master as SCM_RIGHTS.
        leansocket.send_fds(sock, [name.encode()], [master])
    except OSError as err:
        raise SyscallError("send pty master", "--console-socket", err.errno or 0) from err
    finally:
        sock.close()
        leanos.close(master)
    for target in (0, 1, 2):
        leanos.dup2(slave, target)
    try:
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    except OSError as err:
        raise SyscallError("ioctl TIOCSCTTY", name, err.errno or 0) from err
    if bind_console:
        try:
            if not leanos.path.exists("/dev/console"):
                with open("/dev/console", "w"):
                    pass
            syscalls.mount(name, "/dev/console", None, syscalls.MS_BIND)
        except OSError as err:
            raise SyscallError("bind /dev/console", name, err.errno or 0) from err
    if slave > 2:
        leanos.close(slave)
