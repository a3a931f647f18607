#!/usr/bin/env python3
"""Boot the test guest, run one job in it, and exit with the job's status.

    hack/guest/run.py [--out DIR] [--timeout S] [--accel auto|tcg|kvm] [--skip MODULE]... [-- COMMAND...]

The guest is Debian's own kernel (hack/guest/build.sh) under Debian's
qemu-system-x86: cgroup v2 only, systemd as PID 1, AppArmor on, no network
device. Its root is this host's root, read-only over 9p under a tmpfs overlay,
so it runs this checkout, its venv and the test images at the same paths.
COMMAND (default: the guest suite, `pytest tests/guest`, less each
tests/guest/MODULE.py named by --skip) runs as a shell command from the
checkout in the systemd unit dockyard-guest-job.service; the guest powers
off when it ends. OUT (default: a fresh directory under
build/guest/runs/) is shared writable at the same path in the guest: the job
writes its results there (the default job: junit.xml), hack/guest/job.sh its
exit status, and this runner the serial console (console.log).

Exit status: the job's, or 2 when the guest never reported one (boot
failure, timeout, crash), with the console's tail on stderr.

Why TCG by default: KVM guests on this machine hang right after the kernel is
loaded. With --accel auto, KVM is used only when /dev/kvm opens and a probe
boot (the initramfs prints a marker and powers off) finished on it; the
probe's answer is cached per host kernel, guest kernel and qemu version in
build/guest/accel.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "build" / "guest"
QEMU = "qemu-system-x86_64"

PROBE_MARKER = "DOCKYARD-GUEST-PROBE-OK"
JOB_START_MARKER = "DOCKYARD-GUEST-JOB-START"
PROBE_TIMEOUT = 60.0

# -v: one line per test on the console as it ends (PYTHONUNBUFFERED, job.sh);
# faulthandler_timeout: a test stuck for minutes prints every thread's stack.
DEFAULT_JOB = (
    ".venv/bin/python -m pytest -v -p no:cacheprovider -rs -o faulthandler_timeout=180 tests/guest"
    ' --junitxml="$DOCKYARD_GUEST_OUT/junit.xml"'
)

# The kernel command line of every boot. Why each part:
KERNEL_ARGS = [
    "console=ttyS0",  # the serial port is the only console; run.py reads it
    "panic=-1",  # a panic reboots, and -no-reboot turns that into qemu's exit
    "loglevel=4",
    "systemd.show_status=error",  # the console carries the job's output, not boot progress
    # A node's kernel: the unified hierarchy only, systemd as PID 1, AppArmor.
    "systemd.unified_cgroup_hierarchy=1",
    "cgroup_no_v1=all",
    "apparmor=1",
    "security=apparmor",
    # Only the test target: basic.target and the job (hack/guest/units).
    "systemd.unit=dockyard-guest.target",
    "systemd.firstboot=off",
    "fstab=no",
    # The host's enabled units that have no place in a guest with no NIC.
    "systemd.mask=systemd-timesyncd.service",
    # Pages for the hugetlb controller's tests (2 MiB each).
    "hugepages=16",
    # CPU-bug mitigations cost TCG (which emulates the barriers) and prove
    # nothing the tests check.
    "mitigations=off",
]


def kernel_release() -> str:
    return (BUILD / "kernel" / "release").read_text().strip()


def kernel_image() -> Path:
    return BUILD / "kernel" / "boot" / f"vmlinuz-{kernel_release()}"


def qemu_argv(accel: str, out: Path, extra_args: list[str], memory_mib: int, cpus: int) -> list[str]:
    append = [
        *KERNEL_ARGS,
        f"dockyard.repo={REPO}",
        f"dockyard.kernel={BUILD / 'kernel'}",
        f"dockyard.out={out}",
        *extra_args,
    ]
    return [
        "nice", "-n", "10",
        QEMU,
        "-machine", "q35",
        "-accel", accel,
        "-cpu", "host" if accel == "kvm" else "max",
        "-smp", str(cpus),
        "-m", str(memory_mib),
        "-nodefaults", "-no-user-config", "-display", "none", "-monitor", "none", "-no-reboot",
        "-chardev", "stdio,id=console,signal=off",
        "-serial", "chardev:console",
        "-kernel", str(kernel_image()),
        "-initrd", str(BUILD / "initrd.img"),
        "-append", " ".join(append),
        # The host's root, read-only; multidevs=remap keeps inode numbers of
        # its different devices from colliding in the guest.
        "-virtfs", "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
        "-virtfs", f"local,path={out},mount_tag=out,security_model=none,multidevs=remap",
        # A block device for the io controller's tests (reads return zeros, writes vanish).
        "-blockdev", "driver=null-co,node-name=scratch,size=67108864",
        "-device", "virtio-blk-pci,drive=scratch,serial=dockyard-scratch",
        "-device", "virtio-rng-pci",
    ]


def boot(argv: list[str], log: Path, timeout: float, echo: bool, stop_marker: str | None = None) -> tuple[bool, float | None]:
    """Run qemu, copy the console to `log` (and stdout), return (exited in time, seconds to the job)."""
    started = time.monotonic()
    job_at: float | None = None
    proc = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    assert proc.stdout is not None
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    try:
        with open(log, "wb") as sink:
            for line in proc.stdout:
                sink.write(line)
                sink.flush()
                text = line.decode(errors="replace")
                if job_at is None and JOB_START_MARKER in text:
                    job_at = time.monotonic() - started
                if echo:
                    sys.stdout.write(text.replace("\r", ""))
                    sys.stdout.flush()
                if stop_marker is not None and stop_marker in text:
                    proc.kill()
        proc.wait()
    finally:
        in_time = timer.is_alive()
        timer.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return in_time, job_at


def kvm_usable(out: Path) -> bool:
    """Whether KVM both opens and boots Debian's kernel to the initramfs here (cached)."""
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    os.close(fd)
    qemu_version = subprocess.run([QEMU, "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    key = f"{os.uname().release} {kernel_release()} {qemu_version}"
    cache = BUILD / "accel"
    if cache.exists():
        cached_key, _, answer = cache.read_text().rpartition("\n")
        if cached_key == key:
            return answer == "kvm"
    log = out / "kvm-probe.log"
    argv = qemu_argv("kvm", out, ["dockyard.probe=1"], 512, 1)
    boot(argv, log, PROBE_TIMEOUT, echo=False, stop_marker=PROBE_MARKER)
    works = PROBE_MARKER in log.read_text(errors="replace")
    cache.write_text(f"{key}\n{'kvm' if works else 'tcg'}")
    print(f"guest: KVM probe {'booted' if works else 'did not boot'}; using {'kvm' if works else 'tcg'}", file=sys.stderr)
    return works


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="shared results directory (default: a new one under build/guest/runs)")
    parser.add_argument("--timeout", type=float, default=1500.0, help="seconds before the guest is killed")
    parser.add_argument("--accel", choices=("auto", "tcg", "kvm"), default="auto")
    parser.add_argument("--memory", type=int, default=4096, help="guest memory in MiB")
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--quiet", action="store_true", help="do not copy the console to stdout")
    parser.add_argument("--skip", action="append", default=[], metavar="MODULE",
                        help="leave tests/guest/MODULE.py out of the default job")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then a shell command run in the guest")
    args = parser.parse_args()

    if not (BUILD / "initrd.img").exists() or not (BUILD / "kernel" / "release").exists():
        print("guest: build/guest is not built; run hack/guest/build.sh", file=sys.stderr)
        return 2
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if command and args.skip:
        parser.error("--skip applies to the default job only")
    job = " ".join(command) if command else DEFAULT_JOB + "".join(
        f" --ignore=tests/guest/{module}.py" for module in args.skip
    )

    if args.out is None:
        (BUILD / "runs").mkdir(parents=True, exist_ok=True)
        out = Path(tempfile.mkdtemp(prefix=time.strftime("%Y%m%d-%H%M%S-"), dir=BUILD / "runs"))
    else:
        out = args.out.resolve()
        out.mkdir(parents=True, exist_ok=True)
        (out / "status").unlink(missing_ok=True)
    (out / "job").write_text(f"# written by hack/guest/run.py\n{job}\n")

    accel = args.accel
    if accel == "auto":
        accel = "kvm" if kvm_usable(out) else "tcg"
    argv = qemu_argv(accel, out, [], args.memory, args.cpus)
    (out / "qemu.argv").write_text(shlex.join(argv) + "\n")
    print(f"guest: booting {kernel_release()} under {accel}; results in {out}", file=sys.stderr)
    started = time.monotonic()
    in_time, job_at = boot(argv, out / "console.log", args.timeout, echo=not args.quiet)
    elapsed = time.monotonic() - started
    status_file = out / "status"
    boot_note = f"reached its job in {job_at:.1f} s, " if job_at is not None else ""
    if not status_file.exists():
        reason = "timed out" if not in_time else "stopped"
        tail = "".join((out / "console.log").read_text(errors="replace").splitlines(True)[-40:])
        print(f"{tail}\nguest: {reason} after {elapsed:.0f} s without a job status ({boot_note}console: {out}/console.log)", file=sys.stderr)
        return 2
    status = int(status_file.read_text().strip() or "2")
    print(f"guest: {boot_note}job exited {status}, {elapsed:.0f} s in all", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
