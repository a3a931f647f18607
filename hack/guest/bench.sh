#!/bin/sh
# Run inside the test guest (make bench-guest boots it with this as the job):
# bench/runtime.py and bench/pod.py with the systemd cgroup driver, Dockyard
# against Debian's runc, crun and containerd (SystemdCgroup = true) in the
# same run.  Reports go to $DOCKYARD_GUEST_OUT (bench-runtime.txt,
# bench-pod.txt).  Absolute times under TCG mean nothing; the ratios do.
# BENCH_RUNTIME_ARGS / BENCH_POD_ARGS pass extra arguments.
set -u
out=${DOCKYARD_GUEST_OUT:?}
ip link set lo up
hack/registry.sh start >/dev/null
status=0
export DOCKYARD_BENCH_START_TIMEOUT=600
.venv/bin/python bench/runtime.py --systemd-cgroup ${BENCH_RUNTIME_ARGS:---runs 30} \
    >"$out/bench-runtime.txt" 2>&1 || status=1
.venv/bin/python bench/pod.py --systemd-cgroup --no-setup ${BENCH_POD_ARGS:---iterations 10 --pods 10} \
    >"$out/bench-pod.txt" 2>&1 || status=1
cat "$out/bench-runtime.txt" "$out/bench-pod.txt"
exit $status
