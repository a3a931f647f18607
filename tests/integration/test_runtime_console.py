"""process.terminal: the pty master handed over --console-socket with SCM_RIGHTS."""

from __future__ import annotations

import os
import select
import socket
import threading
import time
from pathlib import Path

import pytest
from bundle import Bundle

pytestmark = pytest.mark.root


class ConsoleReceiver:
    """Listens on a unix socket and keeps the first fd a peer sends (as a shim does)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen(1)
        self.server.settimeout(15)
        self.fds: list[int] = []
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._accept)
        self._thread.start()

    def _accept(self) -> None:
        try:
            conn, _ = self.server.accept()
            with conn:
                _msg, fds, _flags, _addr = socket.recv_fds(conn, 4096, 4)
                self.fds = list(fds)
        except OSError as err:
            self.error = err

    def master(self) -> int:
        self._thread.join(15)
        assert self.error is None, f"receiving the console failed: {self.error}"
        assert len(self.fds) == 1, f"expected exactly one fd, got {self.fds}"
        return self.fds[0]

    def close(self) -> None:
        self._thread.join(15)
        self.server.close()
        for fd in self.fds:
            os.close(fd)


def read_until_closed(fd: int, timeout: float = 10.0) -> bytes:
    """Read the pty master until the slave side is gone (EIO) or nothing comes for `timeout`."""
    chunks = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if not ready:
            continue
        try:
            data = os.read(fd, 4096)
        except OSError:  # EIO: every slave fd is closed
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)


def test_console_socket_passes_pty_with_size(bundle: Bundle, tmp_path: Path) -> None:
    """with terminal true the runtime sends the pty master over --console-socket; the process has
    the slave /dev/pts/0 as its controlling tty, sized by consoleSize."""
    receiver = ConsoleReceiver(tmp_path / "console.sock")
    try:
        bundle.config["process"]["terminal"] = True
        bundle.config["process"]["consoleSize"] = {"height": 31, "width": 101}
        bundle.sh("stty size; tty; [ -t 0 ] && [ -t 1 ] && [ -t 2 ] && echo all-tty; ls -l /proc/self/fd/0")
        bundle.create_ok("--console-socket", str(receiver.path))
        master = receiver.master()
        assert os.isatty(master)
        assert bundle.invoke("start", bundle.id).returncode == 0
        output = read_until_closed(master).decode().replace("\r\n", "\n")
        lines = output.splitlines()
        assert lines[:3] == ["31 101", "/dev/pts/0", "all-tty"], output
        assert lines[3].endswith("/dev/pts/0")
    finally:
        if bundle.exists():
            bundle.delete(force=True)
        receiver.close()


def test_console_input_reaches_the_process(bundle: Bundle, tmp_path: Path) -> None:
    """bytes written to the master are the process's input (the pty is the real stdin)."""
    receiver = ConsoleReceiver(tmp_path / "console.sock")
    try:
        bundle.config["process"]["terminal"] = True
        bundle.sh("read line; echo got:$line")
        bundle.create_ok("--console-socket", str(receiver.path))
        master = receiver.master()
        assert bundle.invoke("start", bundle.id).returncode == 0
        os.write(master, b"hello\n")
        output = read_until_closed(master).decode()
        assert "got:hello" in output
    finally:
        if bundle.exists():
            bundle.delete(force=True)
        receiver.close()


def test_terminal_without_console_socket_is_refused(bundle: Bundle) -> None:
    """create with terminal true but no --console-socket fails and leaves nothing."""
    bundle.config["process"]["terminal"] = True
    done = bundle.create()
    assert done.returncode == 1
    assert "console" in done.stderr.lower()
    assert not bundle.exists()


def test_exec_tty_with_console_socket(bundle: Bundle, tmp_path: Path) -> None:
    """exec --tty --console-socket gives the exec'd process its own pty."""
    bundle.start_detached("sleep 1000")
    receiver = ConsoleReceiver(tmp_path / "exec-console.sock")
    try:
        done = bundle.invoke(
            "exec", "--tty", "--detach", "--console-socket", str(receiver.path), bundle.id, "sh", "-c", "tty; stty size"
        )
        assert done.returncode == 0, done.stderr
        output = read_until_closed(receiver.master()).decode().replace("\r\n", "\n")
        tty_line = output.splitlines()[0]
        assert tty_line.startswith("/dev/pts/"), output
    finally:
        bundle.delete(force=True)
        receiver.close()
