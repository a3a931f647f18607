"""A container's (or an exec's) process states, and what each state allows.

::

    create --> created --start--> running --exit--> stopped --delete--> (gone)
                  |                                    ^
                  +--------------exit (killed)---------+
                  +--delete--> (gone)

One type per state (containerd's runc shim, youki's predicates): each holds
the predicates of what may be done in it, and ``check`` turns a refused
action into "cannot <action> a container in <state> state".  An exec process
has no created state: ``exec --detach`` returns once it runs.

``kill`` with ``all`` is allowed after the init exited: in a pod sharing one
pid namespace the container's other processes can outlive it, and the
runtime's ``kill --all`` reaches them through the cgroup, until the shim
deletes the container from the runtime (at the exit, which kills them too:
shim/service.py); after that it has nothing left to do.
"""

from __future__ import annotations

from dockyard.api.shim import Code, ShimError


class State:
    name = ""
    can_start = False
    can_kill = False
    can_kill_all = False
    can_delete = False
    can_exec = False
    can_update = False
    can_checkpoint = False
    is_alive = False

    def __repr__(self) -> str:
        return f"<{self.name}>"


class Created(State):
    name = "created"
    can_start = True
    can_kill = True
    can_kill_all = True
    can_delete = True  # the runtime's delete kills the waiting init
    is_alive = True


class Running(State):
    name = "running"
    can_kill = True
    can_kill_all = True
    can_exec = True
    can_update = True
    can_checkpoint = True
    is_alive = True


class Stopped(State):
    name = "stopped"
    can_kill_all = True
    can_delete = True


CREATED = Created()
RUNNING = Running()
STOPPED = Stopped()
BY_NAME = {s.name: s for s in (CREATED, RUNNING, STOPPED)}

# event -> {from: to}; anything absent is an illegal transition.
TRANSITIONS: dict[str, dict[State, State]] = {
    "start": {CREATED: RUNNING},
    "exit": {CREATED: STOPPED, RUNNING: STOPPED},
}

_PREDICATE = {
    "start": "can_start", "kill": "can_kill", "kill_all": "can_kill_all", "delete": "can_delete",
    "exec": "can_exec", "update": "can_update", "checkpoint": "can_checkpoint",
}


def check(state: State, action: str, what: str = "container") -> None:
    """Raise FailedPrecondition unless ``action`` is allowed in ``state``."""
    if not getattr(state, _PREDICATE[action]):
        verb = "kill all processes of" if action == "kill_all" else action
        raise ShimError(Code.FAILED_PRECONDITION, f"cannot {verb} a {what} in {state.name} state")


def advance(state: State, event: str) -> State:
    """The state after ``event``; an illegal transition names both."""
    to = TRANSITIONS[event].get(state)
    if to is None:
        raise ShimError(Code.FAILED_PRECONDITION, f"illegal transition: {event} in {state.name} state")
    return to


def exit_status(wait_status: int) -> int:
    """The shell's view of a waitpid status: the exit code, or 128 + the killing signal."""
    if wait_status & 0x7F == 0:
        return (wait_status >> 8) & 0xFF
    return 128 + (wait_status & 0x7F)
