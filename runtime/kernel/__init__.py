"""The kernel-facing leaf of dockyard: what every part needs and nothing else.

syscalls (the one way into the kernel), errors (typed, with op, target and
errno), durable (atomic files), securejoin (paths resolved inside a root),
capabilities, seccomp_profile (linux.seccomp checked), cgroupfs/ (where the
cgroup hierarchies are and what their files say) and lean/ (the start-up
diet: see lean/README.md).

The rule (tests/unit/test_layering.py): this package imports nothing of
dockyard outside itself, and it is the only part of dockyard.runtime that
dockyard.cri, dockyard.shim and dockyard.api may import.
"""
