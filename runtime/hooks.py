"""Running OCI hooks: the container state on stdin, args and env exactly as
the spec gives them (nothing inherited), and an optional timeout after which
the hook is killed.

Which hook runs where (OCI runtime spec, "Lifecycle"):

* prestart, createRuntime: the runtime's namespaces, by the parent during
  ``create``, after the namespaces exist and before pivot_root;
* createContainer: the container's namespaces, by the init before pivot_root
  (so its path still resolves on the host);
* startContainer: the container's namespaces, by the init after ``start``
  released it and before the user's program is executed;
* poststart: the runtime's namespaces, by ``start``; a failure only warns;
* poststop: the runtime's namespaces, by ``delete``; a failure only warns.
"""

from __future__ import annotations

from .kernel.errors import HookFailed
from .kernel.lean import jsonfast

TYPE_CHECKING = False  # typing stays off the hot paths: runtime/kernel/lean/README.md
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from .spec import Hook, Spec


def run_hooks(kind: str, hooks: Sequence[Hook], state: dict[str, Any]) -> None:
    if not hooks:
        return
    import subprocess  # only containers with hooks pay for this import

    payload = jsonfast.dumps(state).encode()
    for i, hook in enumerate(hooks):
        argv = list(hook.args) or [hook.path]
        env = dict(item.split("=", 1) for item in hook.env)
        target = f"hooks.{kind}[{i}] {hook.path}"
        try:
            proc = subprocess.run(argv, executable=hook.path, env=env, input=payload, capture_output=True,
                                  timeout=hook.timeout, close_fds=True)
        except subprocess.TimeoutExpired as err:
            raise HookFailed(f"run {kind} hook", target, f"timed out after {hook.timeout}s") from err
        except OSError as err:
            raise HookFailed(f"run {kind} hook", target, str(err), err.errno or 0) from err
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).decode(errors="replace").strip()[-500:]
            raise HookFailed(f"run {kind} hook", target, f"exit status {proc.returncode}: {tail}")


def hook_state(spec: Spec, container_id: str, status: str, pid: int, bundle: str) -> dict[str, Any]:
    """The container state a hook reads on stdin (OCI runtime spec, "State")."""
    state: dict[str, Any] = {"ociVersion": spec.oci_version, "id": container_id, "status": status,
                             "pid": pid, "bundle": bundle}
    if spec.annotations:
        state["annotations"] = spec.annotations
    return state
