#!/usr/bin/env python3
"""Time create + start + wait + delete of busybox `true` for OCI runtimes.

    python bench/runtime.py [--runs 50] [--warmup 2]

Two phases (one with --systemd-cgroup), each interleaving its runtimes round by round (the order rotates
every round so no runtime always goes first):

  hybrid   the host's mount namespace, cgroups as they stand: v1 hierarchies
           plus the cgroup2 mount at /sys/fs/cgroup/unified (hugetlb only).
           dockyard-runc and runc.
  systemd  (--systemd-cgroup, instead of the two above) a cgroup v2 host
           with systemd as PID 1 (the test guest: make bench-guest); every
           runtime gets --systemd-cgroup, so each container is a transient
           scope that systemd makes over D-Bus. dockyard-runc, runc, crun.
  private  a private mount namespace (`unshare -m`) with
           /sys/fs/cgroup/unified unmounted there only, because Debian's crun
           1.8.1 refuses the hybrid layout. crun, runc and dockyard-runc, so
           the comparison with crun is made under equal conditions.

Every runtime has its own --root in a temp dir and its own copy of the busybox
bundle (build/bundles/busybox, args ["true"], terminal false, the bundle's
default namespaces). One sample is the wall time of

  RUNTIME create --bundle B --pid-file P ID   (until that command exits)
  RUNTIME start ID                            (until that command exits)
  wait for the container's init to exit       (pidfd_open + poll)
  RUNTIME delete ID

Peak RSS, two figures:
  cli   the largest maxrss of the create/start/delete commands (and the
        helpers they reaped), from --rss-runs extra, untimed runs wrapped in
        GNU time (see with_rss_probe for why a wrapper is needed);
  init  the maxrss of the container's init when it exits. The kernel keeps a
        process's peak across execve, so this is the runtime's init stage
        (Go for runc, C for crun, Python for dockyard-runc), including pages
        it inherited from the runtime process that forked or vforked it,
        rather than `true`. The bench makes itself a child subreaper so the
        orphaned init becomes its child and wait4 returns its rusage.

A runtime that fails (for example dockyard-runc while it is being written) is
reported with its error and dropped after three failures in a row; the others
go on.

The floor: when dockyard-runc's binary is a script, each round also times one
bare start of the interpreter its #! line names, with the same flags
(`python3 -IS -c pass`). A cycle runs three such processes (create, start,
delete), so three floors are what a CPython CLI pays before any line of its
own runs; the report sets that against runc's whole cycle.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCE_BUNDLE = REPO / "build" / "bundles" / "busybox"
UNIFIED_MOUNT = "/sys/fs/cgroup/unified"
PR_SET_CHILD_SUBREAPER = 36
TIME_BINARY = "/usr/bin/time"
MAX_CONSECUTIVE_FAILURES = 3
EXIT_TIMEOUT_S = 10.0
COMMAND_TIMEOUT_S = 30.0
STEPS = ("create", "start", "wait", "delete")
FLOOR = "floor"  # the Samples name of the bare interpreter starts


@dataclass(frozen=True, slots=True)
class Runtime:
    name: str
    binary: str


@dataclass(slots=True)
class Samples:
    """Everything one runtime produced in one phase."""

    name: str
    binary: str
    version: str
    totals_ms: list[float] = field(default_factory=list)
    steps_ms: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STEPS})
    cli_peak_rss_kib: int = 0
    init_peak_rss_kib: int = 0
    failures: int = 0
    consecutive_failures: int = 0
    last_error: str = ""
    dropped: bool = False


class StepFailed(Exception):
    def __init__(self, step: str, detail: str) -> None:
        super().__init__(f"{step}: {detail}")
        self.step = step
        self.detail = detail


def set_child_subreaper() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(err)}")


def runtime_version(binary: str) -> str:
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10)
    except OSError as err:
        return f"unavailable ({err.strerror})"
    lines = (out.stdout or out.stderr).strip().splitlines()
    if out.returncode != 0:
        return f"--version exited {out.returncode}: {lines[-1] if lines else ''}"
    return lines[0] if lines else "(empty --version)"


def interpreter_of(binary: str) -> list[str] | None:
    """The interpreter and flags a script's #! line names; None for a binary."""
    try:
        with open(binary, "rb") as f:
            first = f.readline(256)
    except OSError:
        return None
    if not first.startswith(b"#!"):
        return None
    return first[2:].decode(errors="replace").split()


def prepare_bundle(dest: Path) -> None:
    """A private copy of the busybox bundle whose process runs `true`."""
    shutil.copytree(SOURCE_BUNDLE / "rootfs", dest / "rootfs", symlinks=True)
    config = json.loads((SOURCE_BUNDLE / "config.json").read_text())
    config["process"]["args"] = ["true"]
    config["process"]["terminal"] = False
    config["root"] = {"path": "rootfs"}
    config["hostname"] = "bench"
    (dest / "config.json").write_text(json.dumps(config, indent=2))


def run_command(argv: list[str], log_fd: int) -> int:
    """Run argv to completion with stdout/stderr into log_fd; its exit status.

    posix_spawn + wait4 rather than subprocess: the same small cost for every
    runtime and nothing else in the way.
    """
    pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=[
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_DUP2, log_fd, 1),
        (os.POSIX_SPAWN_DUP2, log_fd, 2),
    ])
    # A pidfd turns readable the moment the command exits (it is a zombie
    # until reaped, so the open cannot miss it): no polling interval is
    # added to any step.
    pidfd = os.pidfd_open(pid)
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        if not poller.poll(COMMAND_TIMEOUT_S * 1000):
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            raise StepFailed(argv[3] if len(argv) > 3 else argv[0], f"timed out after {COMMAND_TIMEOUT_S}s")
    finally:
        os.close(pidfd)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def with_rss_probe(argv: list[str], out: Path) -> list[str]:
    """argv wrapped in GNU time, which writes the command's peak RSS (KiB) to out.

    Facts about ru_maxrss that force the wrapper: the kernel folds the old
    mm's high-water mark into the process's maxrss at execve, and
    posix_spawn's vfork child execs while still sharing this Python
    process's mm; wait4 on a command spawned from here therefore reports at
    least this interpreter's RSS. GNU time is a small C process that forks
    its own child, so the figure it reports is the runtime's (plus about
    1 MiB of time's own pages), including helpers the runtime reaped.
    """
    return [TIME_BINARY, "-f", "%M", "-o", str(out), *argv]


def wait_for_exit(pid: int) -> int:
    """Block until pid exits; its maxrss in KiB when it is our child (subreaper), else 0."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        pidfd = -1
    if pidfd >= 0:
        try:
            poller = select.poll()
            poller.register(pidfd, select.POLLIN)
            if not poller.poll(EXIT_TIMEOUT_S * 1000):
                raise StepFailed("wait", f"container init {pid} still running after {EXIT_TIMEOUT_S}s")
        finally:
            os.close(pidfd)
    try:
        waited, _status, usage = os.wait4(pid, os.WNOHANG)
    except ChildProcessError:
        return 0
    return usage.ru_maxrss if waited == pid else 0


def reap_orphans() -> None:
    # As a subreaper we inherit any process a runtime leaves orphaned.
    while True:
        try:
            waited, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if waited == 0:
            return


def last_lines(path: Path, count: int = 3) -> str:
    lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    return " | ".join(lines[-count:]) if lines else "(no output)"


class Bench:
    def __init__(self, runtimes: list[Runtime], workdir: Path, global_flags: list[str] | None = None) -> None:
        self.workdir = workdir
        self.global_flags = global_flags or []  # before every verb: --systemd-cgroup
        self.samples: dict[str, Samples] = {}
        self.roots: dict[str, Path] = {}
        self.bundles: dict[str, Path] = {}
        for rt in runtimes:
            self.samples[rt.name] = Samples(rt.name, rt.binary, runtime_version(rt.binary))
            self.roots[rt.name] = workdir / rt.name / "root"
            self.bundles[rt.name] = workdir / rt.name / "bundle"
            self.roots[rt.name].mkdir(parents=True)
            prepare_bundle(self.bundles[rt.name])
        self.runtimes = runtimes
        ours = next((rt for rt in runtimes if rt.name == "dockyard-runc"), None)
        interp = interpreter_of(ours.binary) if ours else None
        self.floor_argv = [*interp, "-c", "pass"] if interp else None
        if self.floor_argv:
            self.samples[FLOOR] = Samples(FLOOR, " ".join(self.floor_argv), "one bare interpreter start")

    def time_floor(self, keep_times: bool) -> None:
        if not self.floor_argv:
            return
        s = self.samples[FLOOR]
        with open(os.devnull, "wb") as devnull:
            t0 = time.perf_counter()
            code = run_command(self.floor_argv, devnull.fileno())
            ms = (time.perf_counter() - t0) * 1000
        if code != 0:
            s.failures += 1
            s.last_error = f"exit {code}"
        elif keep_times:
            s.totals_ms.append(ms)

    def one_run(self, rt: Runtime, seq: int, probe_rss: bool) -> tuple[float, dict[str, float], int, int]:
        """One create/start/wait/delete; (total ms, ms per step, CLI peak RSS KiB, init RSS KiB).

        With probe_rss each command runs under GNU time (the timings are then
        not used); without it the CLI RSS is 0.
        """
        root = str(self.roots[rt.name])
        bundle = self.bundles[rt.name]
        cid = f"bench-{rt.name}-{os.getpid()}-{seq}{'-rss' if probe_rss else ''}"
        pid_file = bundle / "init.pid"
        rss_file = self.workdir / rt.name / "rss"
        log = self.workdir / rt.name / "last.log"
        pid_file.unlink(missing_ok=True)
        base = [rt.binary, *self.global_flags, "--root", root]
        cli_rss = 0
        marks = [time.perf_counter()]
        init_rss = 0
        with log.open("wb") as log_file:
            fd = log_file.fileno()

            def step(name: str, argv: list[str]) -> None:
                nonlocal cli_rss
                if probe_rss:
                    argv = with_rss_probe(argv, rss_file)
                code = run_command(argv, fd)
                marks.append(time.perf_counter())
                if code != 0:
                    raise StepFailed(name, f"exit {code}")
                if probe_rss:
                    cli_rss = max(cli_rss, int(rss_file.read_text().split()[-1]))

            try:
                step("create", [*base, "create", "--bundle", str(bundle), "--pid-file", str(pid_file), cid])
                init_pid = int(pid_file.read_text().strip())
                step("start", [*base, "start", cid])
                init_rss = wait_for_exit(init_pid)
                marks.append(time.perf_counter())
                step("delete", [*base, "delete", cid])
            except (StepFailed, OSError, ValueError) as err:
                detail = err.detail if isinstance(err, StepFailed) else repr(err)
                name = err.step if isinstance(err, StepFailed) else "run"
                output = last_lines(log)
                with open(os.devnull, "wb") as devnull:
                    run_command([*base, "delete", "--force", cid], devnull.fileno())
                raise StepFailed(name, f"{detail}; output: {output}") from err
            finally:
                reap_orphans()
        steps = {name: (marks[i + 1] - marks[i]) * 1000 for i, name in enumerate(STEPS)}
        return (marks[-1] - marks[0]) * 1000, steps, cli_rss, init_rss

    def record(self, rt: Runtime, seq: int, probe_rss: bool, keep_times: bool) -> None:
        s = self.samples[rt.name]
        if s.dropped:
            return
        try:
            total, steps, cli_rss, init_rss = self.one_run(rt, seq, probe_rss)
        except StepFailed as err:
            s.failures += 1
            s.consecutive_failures += 1
            s.last_error = str(err)
            if s.consecutive_failures >= MAX_CONSECUTIVE_FAILURES:
                s.dropped = True
            return
        s.consecutive_failures = 0
        s.cli_peak_rss_kib = max(s.cli_peak_rss_kib, cli_rss)
        s.init_peak_rss_kib = max(s.init_peak_rss_kib, init_rss)
        if keep_times:
            s.totals_ms.append(total)
            for k, v in steps.items():
                s.steps_ms[k].append(v)

    def run(self, runs: int, warmup: int, rss_runs: int) -> None:
        seq = 0
        for rnd in range(warmup + runs):
            offset = rnd % len(self.runtimes)
            for rt in self.runtimes[offset:] + self.runtimes[:offset]:
                self.record(rt, seq, probe_rss=False, keep_times=rnd >= warmup)
                seq += 1
            self.time_floor(keep_times=rnd >= warmup)
        for _ in range(rss_runs):
            for rt in self.runtimes:
                self.record(rt, seq, probe_rss=True, keep_times=False)
                seq += 1


# --- reporting --------------------------------------------------------------

def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def p90(values: list[float]) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=10, method="inclusive")[8]


def render_phase(title: str, samples: list[Samples], runs: int) -> str:
    lines = [title]
    runc = next((s for s in samples if s.name == "runc" and s.totals_ms), None)
    header = (f"  {'runtime':<13} {'ok':>7} {'median':>8} {'p90':>8} {'min':>8} "
              f"{'create':>7} {'start':>7} {'wait':>7} {'delete':>7} {'vs runc':>8} "
              f"{'cli RSS':>8} {'init RSS':>9}")
    lines.append(header)
    lines.append("  " + "-" * (len(header) - 2))
    for s in samples:
        ok = f"{len(s.totals_ms)}/{runs}"
        if s.name == FLOOR:
            lines.extend(render_floor(s, runc, ok))
            continue
        if not s.totals_ms:
            lines.append(f"  {s.name:<13} {ok:>7}  no successful run")
        else:
            med = median(s.totals_ms)
            ratio = f"{med / median(runc.totals_ms):.2f}x" if runc else "-"
            step_cols = " ".join(f"{median(s.steps_ms[k]):7.1f}" for k in STEPS)
            lines.append(
                f"  {s.name:<13} {ok:>7} {med:8.1f} {p90(s.totals_ms):8.1f} {min(s.totals_ms):8.1f} "
                f"{step_cols} {ratio:>8} {s.cli_peak_rss_kib / 1024:6.1f}Mi {s.init_peak_rss_kib / 1024:7.1f}Mi")
        if s.failures:
            state = "dropped" if s.dropped else "kept going"
            lines.append(f"  {'':<13} {s.failures} failure(s), {state}; last: {s.last_error[:400]}")
    return "\n".join(lines)


def render_floor(s: Samples, runc: Samples | None, ok: str) -> list[str]:
    if not s.totals_ms:
        return [f"  {s.name:<13} {ok:>7}  no successful start; last: {s.last_error}"]
    med = median(s.totals_ms)
    line = f"  {s.name:<13} {ok:>7} {med:8.1f} {p90(s.totals_ms):8.1f} {min(s.totals_ms):8.1f}  one `{s.binary}`"
    if runc is None:
        return [line]
    share = 3 * med / median(runc.totals_ms)
    three = (f"  {'':<13} three of them (create, start, delete): {3 * med:.1f} ms, "
             f"{share:.2f}x runc's whole cycle, before any dockyard-runc code runs")
    return [line, three]


def render(phases: list[tuple[str, list[Samples]]], runs: int) -> str:
    out = ["times in ms (medians per step); RSS = peak maxrss, cli = runtime commands, "
           "init = container init before execve", ""]
    versions: dict[str, tuple[str, str]] = {}
    for _title, samples in phases:
        for s in samples:
            versions.setdefault(s.name, (s.binary, s.version))
    for name, (binary, version) in versions.items():
        out.append(f"  {name:<13} {binary}  [{version}]")
    for title, samples in phases:
        out.append("")
        out.append(render_phase(title, samples, runs))
    return "\n".join(out)


# --- phases -------------------------------------------------------------------

def run_phase(runtimes: list[Runtime], args: argparse.Namespace) -> list[Samples]:
    set_child_subreaper()
    with tempfile.TemporaryDirectory(prefix="dockyard-bench-") as tmp:
        bench = Bench(runtimes, Path(tmp), ["--systemd-cgroup"] if args.systemd_cgroup else [])
        bench.run(args.runs, args.warmup, args.rss_runs)
    return list(bench.samples.values())


def run_private_phase(args: argparse.Namespace) -> list[Samples]:
    """Re-run this script in a private mount namespace without the unified mount."""
    with tempfile.NamedTemporaryFile(prefix="dockyard-bench-", suffix=".json") as out:
        inner = [sys.executable, str(Path(__file__).resolve()), "--inner", out.name,
                 "--runs", str(args.runs), "--warmup", str(args.warmup), "--rss-runs", str(args.rss_runs),
                 "--dockyard", args.dockyard, "--runc", args.runc, "--crun", args.crun]
        # If the unmount fails the phase must stop, not run in the hybrid layout.
        script = f'if mountpoint -q {UNIFIED_MOUNT}; then umount {UNIFIED_MOUNT} || exit 1; fi; exec "$@"'
        subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", *inner], check=True)
        data = json.loads(Path(out.name).read_text())
    return [Samples(**d) for d in data]


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--runs", type=int, default=50, help="measured runs per runtime and phase (default 50)")
    p.add_argument("--warmup", type=int, default=2, help="unmeasured runs first (default 2)")
    p.add_argument("--rss-runs", type=int, default=3, help="extra runs under GNU time for the CLI RSS (default 3)")
    p.add_argument("--dockyard", default=str(REPO / ".venv" / "bin" / "dockyard-runc"))
    p.add_argument("--runc", default=shutil.which("runc") or "/usr/sbin/runc")
    p.add_argument("--crun", default=shutil.which("crun") or "/usr/bin/crun")
    p.add_argument("--phase", choices=("both", "hybrid", "private"), default="both")
    p.add_argument("--json", dest="json_out", help="also write the raw samples as JSON here")
    p.add_argument("--systemd-cgroup", action="store_true",
                   help="one phase instead, every runtime with --systemd-cgroup (a cgroup v2 host with "
                        "systemd as PID 1: the test guest, make bench-guest)")
    p.add_argument("--inner", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.runs < 1:
        p.error("--runs must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if os.geteuid() != 0:
        print("bench/runtime.py must run as root", file=sys.stderr)
        return 1
    if not (SOURCE_BUNDLE / "config.json").is_file():
        print(f"{SOURCE_BUNDLE} missing: run `make images` first", file=sys.stderr)
        return 1
    dockyard = Runtime("dockyard-runc", args.dockyard)
    runc = Runtime("runc", args.runc)
    crun = Runtime("crun", args.crun)

    if args.inner:
        samples = run_phase([dockyard, runc, crun], args)
        Path(args.inner).write_text(json.dumps([asdict(s) for s in samples]))
        return 0

    phases: list[tuple[str, list[Samples]]] = []
    if args.systemd_cgroup:
        # Each container a transient scope in system.slice (every runtime's
        # default for an empty cgroupsPath), made by systemd over D-Bus.
        print(f"systemd driver phase: {args.runs} runs each ...", file=sys.stderr, flush=True)
        phases.append(("cgroup v2, the systemd cgroup driver (--systemd-cgroup)",
                       run_phase([dockyard, runc, crun], args)))
    elif args.phase in ("both", "hybrid"):
        print(f"hybrid phase: {args.runs} runs each ...", file=sys.stderr, flush=True)
        phases.append(("hybrid cgroups (host mount namespace, v1 + unified/hugetlb)",
                       run_phase([dockyard, runc], args)))
    if args.phase in ("both", "private") and not args.systemd_cgroup:
        print(f"private phase: {args.runs} runs each ...", file=sys.stderr, flush=True)
        phases.append((f"v1 only (private mount namespace, {UNIFIED_MOUNT} unmounted)",
                       run_private_phase(args)))
    print(render(phases, args.runs))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(
            {title: [asdict(s) for s in samples] for title, samples in phases}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
