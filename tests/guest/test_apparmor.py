"""AppArmor on a node's kernel: dockyardd's default profile loads and
confines, and dockyard-runc applies ``process.apparmorProfile`` to a
container's init and to an exec'd process.

Only the guest can show this: the build VM's kernel has AppArmor off.
What each test reads back is the kernel's own answer: the profile in
``/proc/self/attr/current`` and the EACCES of an operation it denies.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bundle import Bundle
from dockyard.cri.apparmor import default_profile_text
from dockyard.runtime.kernel import apparmor
from guest_env import run

DEFAULT = "dockyard-default"
# A Localhost profile as a user would load one: everything but writes under /tmp.
DENY_TMP = "dockyard-test-deny-tmp"
DENY_TMP_TEXT = f"""#include <tunables/global>
profile {DENY_TMP} flags=(attach_disconnected,mediate_deleted) {{
  #include <abstractions/base>
  file,
  capability,
  network,
  signal,
  deny /tmp/** w,
}}
"""


def load(text: str) -> None:
    # apparmor_parser through guest_env.run: the suite's subreaper must not take its exit status
    run(["apparmor_parser", "--replace"], input=text, check=True)


@pytest.fixture(scope="module", autouse=True)
def _profiles() -> None:
    assert apparmor.enabled(), "AppArmor is off in the guest (its kernel command line turns it on)"
    load(default_profile_text())
    load(DENY_TMP_TEXT)


def with_tmpfs_tmp(bundle: Bundle) -> None:
    bundle.config["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]})


def test_init_runs_under_its_profile(bundle: Bundle) -> None:
    """The container's program runs confined by process.apparmorProfile (enforce
    mode), and the default profile denies mounting even with CAP_SYS_ADMIN
    (which, unconfined, mounts a tmpfs in the container's own mount
    namespace: the control case)."""
    caps = {k: ["CAP_SYS_ADMIN", "CAP_DAC_OVERRIDE"] for k in ("bounding", "effective", "permitted")}
    script = "cat /proc/self/attr/current; echo; mount -t tmpfs t /tmp 2>&1; echo mount=$?"
    bundle.config["process"]["capabilities"] = caps
    control = bundle.run_ok(script)
    assert control.splitlines()[0] == "unconfined" and "mount=0" in control, control
    bundle.config["process"]["apparmorProfile"] = DEFAULT
    out = bundle.run_ok(script)
    assert out.splitlines()[0] == f"{DEFAULT} (enforce)", out
    assert "mount=0" not in out and "ermission denied" in out, out


def test_localhost_profile_confines_init_and_exec(bundle: Bundle) -> None:
    """A loaded profile named in the spec confines the init, and `exec` runs
    the new process under the spec's profile as well (also with --apparmor)."""
    with_tmpfs_tmp(bundle)
    bundle.config["process"]["apparmorProfile"] = DENY_TMP
    bundle.start_detached("sleep 1000")
    try:
        done = bundle.invoke("exec", bundle.id, "sh", "-c",
                             "cat /proc/self/attr/current; echo; touch /tmp/x 2>&1; echo rc=$?")
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines()[0] == f"{DENY_TMP} (enforce)", done.stdout
        assert "Permission denied" in done.stdout and "rc=1" in done.stdout, done.stdout
        done = bundle.invoke("exec", "--apparmor", "unconfined", bundle.id, "cat", "/proc/self/attr/current")
        assert done.returncode == 0 and done.stdout.strip() == "unconfined", (done.stdout, done.stderr)
    finally:
        bundle.delete(force=True)


def test_unloaded_profile_is_an_error(bundle: Bundle) -> None:
    """A profile the kernel does not have fails create, naming the profile; nothing is left."""
    bundle.config["process"]["apparmorProfile"] = "dockyard-no-such-profile"
    bundle.sh("true")
    done = bundle.run()
    assert done.returncode != 0
    assert "dockyard-no-such-profile" in done.stderr, done.stderr


def test_runtime_features_report_apparmor(runtime: Path) -> None:
    done = run([str(runtime), "features"], check=True)
    assert json.loads(done.stdout)["linux"]["apparmor"]["enabled"] is True
