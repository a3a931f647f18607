#!/bin/sh
# Inside the test guest, as the systemd unit dockyard-guest-job.service: run
# the command the host wrote to $DOCKYARD_GUEST_OUT/job and leave its exit
# status in $DOCKYARD_GUEST_OUT/status, which hack/guest/run.py reads back.
out="$DOCKYARD_GUEST_OUT"
cd "$DOCKYARD_GUEST_REPO" || exit 1
echo "DOCKYARD-GUEST-JOB-START $(cut -d' ' -f1 /proc/uptime)"
rc=0
# The console is a pipe to the journal: without this Python holds its output
# until it exits, and a stuck job shows nothing.
export PYTHONUNBUFFERED=1
/bin/sh "$out/job" || rc=$?
echo "$rc" > "$out/status"
sync
echo "DOCKYARD-GUEST-JOB-END rc=$rc $(cut -d' ' -f1 /proc/uptime)"
