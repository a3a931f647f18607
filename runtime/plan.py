"""Spec -> the plan the init carries out.

Everything that can be checked or computed before a process is forked is
done here, in the parent: capability masks, rlimits, devices, mount options,
the compiled seccomp program.  The forked init then only performs syscalls,
and a bad config fails ``create`` before any namespace, mount or cgroup
exists.
"""

from __future__ import annotations

from .kernel.capabilities import to_mask
from .kernel.errors import InvalidSpec
from .kernel.lean.records import Record
from .rlimits import parse_rlimits
from .seccomp import CompiledFilter, compile_filter
from .spec import Process, Spec

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
class CapSets(Record):
    bounding: int
    effective: int
    permitted: int
    inheritable: int
    ambient: int
class ProcessPlan(Record):
    args: tuple[str, ...]
    env: tuple[str, ...]
    cwd: str
    uid: int
    gid: int
    additional_gids: tuple[int, ...]
    umask: int | None
    caps: CapSets | None          # None: the spec gives no capabilities; keep root's
    rlimits: tuple[tuple[int, int, int], ...]
    no_new_privileges: bool
    apparmor_profile: str
    selinux_label: str
    oom_score_adj: int | None
    terminal: bool
    console_size: tuple[int, int] | None
    seccomp: CompiledFilter | None
    last_cap: int

    def path_env(self) -> str:
        for item in self.env:
            if item.startswith("PATH="):
                return item[5:]
        return DEFAULT_PATH


def plan_process(process: Process, spec: Spec, last_cap: int, field: str = "process") -> ProcessPlan:
    caps = None
    if process.capabilities is not None:
        c = process.capabilities
        f = f"{field}.capabilities"
        caps = CapSets(
            bounding=to_mask(c.bounding, f"{f}.bounding", last_cap),
            effective=to_mask(c.effective, f"{f}.effective", last_cap),
            permitted=to_mask(c.permitted, f"{f}.permitted", last_cap),
            inheritable=to_mask(c.inheritable, f"{f}.inheritable", last_cap),
            ambient=to_mask(c.ambient, f"{f}.ambient", last_cap),
        )
    seccomp = compile_filter(spec.linux.seccomp) if spec.linux.seccomp is not None else None
    if process.terminal and process.console_size is not None and 0 in process.console_size:
        raise InvalidSpec(f"{field}.consoleSize", "height and width must both be set")
    return ProcessPlan(
        args=process.args,
        env=process.env,
        cwd=process.cwd,
        uid=process.user.uid,
        gid=process.user.gid,
        additional_gids=process.user.additional_gids,
        umask=process.user.umask,
        caps=caps,
        rlimits=parse_rlimits(list(process.rlimits), f"{field}.rlimits"),
        no_new_privileges=process.no_new_privileges,
        apparmor_profile=process.apparmor_profile,
        selinux_label=process.selinux_label,
        oom_score_adj=process.oom_score_adj,
        terminal=process.terminal,
        console_size=process.console_size,
        seccomp=seccomp,
        last_cap=last_cap,
    )
