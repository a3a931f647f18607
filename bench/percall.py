"""Daemon CPU per CRI call, one call at a time: dockyardd against Debian's containerd 1.6.

kubelet's polling is a few cheap calls made very often (bench/density.py's
steady state), so what one such call costs the daemon decides its share of
a node's CPU.  Both daemons run side by side, set up as bench/pod.py sets
them up, each with one pod and one running busybox container.  For each
verb, a Go gRPC client (bench/percall_client, built by
hack/install-percall-client.sh: the grpc-go and cri-api modules kubelet
uses) makes 200 uncounted calls, then ``--calls`` calls (a tenth as many
ExecSyncs, kubelet's exec probe) one after another on one connection; the
daemon's CPU (utime + stime of all its threads, from /proc) is read before
and after.  Rounds alternate which daemon goes first.

Reported per verb: the median over rounds of the daemon's CPU per call, of
its shims' (the pod's and, for dockyardd, its idle spare: utime + stime of
each and of the children it reaped, which holds the runtime's processes and
an exec'd command), and of the client's wall time per call, and the ratio
dockyardd / containerd.
The target is the issue's: at or below containerd's.  The clock behind
/proc's CPU times ticks at 10 ms, so ``--calls`` 3000 bounds the error near
1%.

    .venv/bin/python bench/percall.py [--calls 3000] [--rounds 3] [--no-setup]
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import subprocess
import sys

import grpc

from daemons import REPO
from density import cpu_seconds_of
from pod import both_sides, describe, prepare, print_leftovers, start_side
from stream import Target, start_container, stop_all

CLIENT = REPO / "build" / "bin" / "percall_client"
VERBS = ("ContainerStatus", "PodSandboxStatus", "ListContainers", "ListPodSandbox",
         "ListContainerStats", "ListPodSandboxStats", "ExecSync")
# ExecSync starts a process in the container each time: a tenth of the calls
# keeps its batch near the others' length, and at a millisecond or more per
# call the 10 ms tick still bounds the error near 1%.
SHARE = {"ExecSync": 0.1}


def cpu_metric(verb: str) -> str:
    return f"{verb} daemon CPU"


def wall_metric(verb: str) -> str:
    return f"  {verb} wall"


def shim_metric(verb: str) -> str:
    return f"  {verb} shim CPU"


def shims_cpu_seconds(t: Target) -> float:
    """utime + stime of the side's shims and of the children they reaped (the runtime's
    processes, and the exec'd command, whose orphans the shim reaps as subreaper)."""
    return sum(cpu_seconds_of(pid, reaped=True) for pid in t.side.shim_pids())


def measure(t: Target, verb: str, calls: int) -> None:
    """One batch of ``calls`` calls of ``verb``: the daemon's CPU and the client's wall time per call."""
    assert t.side.daemon is not None
    object_id = {"ContainerStatus": t.container_id, "ExecSync": t.container_id,
                 "PodSandboxStatus": t.pod_id}.get(verb, "-")
    client = subprocess.Popen([str(CLIENT), str(t.side.daemon.socket), verb, object_id, str(calls)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert client.stdin is not None and client.stdout is not None
    try:
        if client.stdout.readline().strip() != "warm":
            raise RuntimeError(f"percall_client {verb} against {t.side.name} failed during warm-up")
        pid = t.side.daemon.proc.pid
        before, shims_before = cpu_seconds_of(pid), shims_cpu_seconds(t)
        client.stdin.write("go\n")
        client.stdin.flush()
        wall = client.stdout.readline().strip()
        after, shims_after = cpu_seconds_of(pid), shims_cpu_seconds(t)
    finally:
        if client.wait(60) != 0:
            raise RuntimeError(f"percall_client {verb} against {t.side.name} exited {client.returncode}")
    t.add(cpu_metric(verb), (after - before) * 1e6 / calls)
    t.add(wall_metric(verb), float(wall))
    t.add(shim_metric(verb), (shims_after - shims_before) * 1e6 / calls)


def print_table(targets: list[Target]) -> None:
    names = [t.side.name for t in targets]
    print(f"\n{'median per call (us)':34s}" + "".join(f"{n:>12s}" for n in names) + ("   dy/cd" if len(names) == 2 else ""))
    for metric in (m(verb) for verb in VERBS for m in (cpu_metric, shim_metric, wall_metric)):
        meds = [statistics.median(t.samples[metric]) if t.samples.get(metric) else float("nan") for t in targets]
        line = f"{metric:34s}" + "".join(f"{m:12.0f}" for m in meds)
        if len(meds) == 2 and meds[1] > 0:
            ratio = meds[0] / meds[1]
            line += f"   {ratio:5.2f} {'ok' if ratio <= 1.0 else 'OVER'}"
        elif len(meds) == 2:
            line += "       -" if meds[0] == 0 else "       - OVER"
        print(line)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=3000, help="counted calls per verb, daemon and round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, alternating which daemon goes first")
    parser.add_argument("--no-setup", action="store_true", help="assume the registry runs and holds the images")
    args = parser.parse_args(argv)
    if not CLIENT.is_file():
        raise SystemExit(f"bench: {CLIENT} missing (hack/install-percall-client.sh)")
    base = prepare("percall", args.no_setup)
    cgroup_base = f"/dybench-{secrets.token_hex(4)}"
    targets = [Target(s) for s in both_sides(base, "dypc", 205)]
    started = True
    print(f"load average at start: {os.getloadavg()[0]:.2f} (1 min), {os.cpu_count()} CPUs")
    try:
        for t in targets:
            start_side(t.side, cgroup_base)
            start_container(t, cgroup_base, base / "logs")
        for r in range(args.rounds):
            for t in (targets if r % 2 == 0 else targets[::-1]):
                for verb in VERBS:
                    measure(t, verb, max(1, int(args.calls * SHARE.get(verb, 1))))
    except (grpc.RpcError, RuntimeError, OSError) as err:
        print(f"bench: aborted: {describe(err)}", file=sys.stderr)
        started = False
    finally:
        left = stop_all(targets, cgroup_base, base)
    print(f"load average at end: {os.getloadavg()[0]:.2f} (1 min)")
    print_table(targets)
    print_leftovers(left)
    failures = [f for t in targets for f in t.side.failures]
    for failure in failures:
        print(f"failure: {failure}")
    return 0 if started and not left and not failures else 1


if __name__ == "__main__":
    sys.exit(main())
