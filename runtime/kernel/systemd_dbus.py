"""systemd's manager over D-Bus: the transient units of the systemd cgroup driver.

The one module that speaks D-Bus, through jeepney (its blocking I/O on the
system bus); the runtime's systemd manager and the daemon's pod slices call
it.  Everything above sees typed errors: a unit that exists already is
AlreadyExists, a unit systemd does not know is NotFound, a bus that is not
there is Unsupported, and any other refusal carries systemd's error name.

Facts about systemd that shape it (systemd's D-Bus API, org.freedesktop.systemd1(5)):

* ``StartTransientUnit(name, mode, properties a(sv), aux a(sa(sv)))``
  returns a job at once; the unit is ready only when that job ends, which
  systemd announces with the ``JobRemoved(id, job, unit, result)`` signal
  to the client that queued it.  So the match is added before the call,
  and the wait reads signals until its job's, whose result must be
  ``done``.
* A scope needs processes when it starts (``PIDs``): systemd creates its
  cgroup, writes the resource properties there, then moves them in.
* A transient unit stays loaded while it is active, or failed until
  ``ResetFailedUnit``; its name cannot be used again before then.  A scope
  whose processes all exit stops, and systemd removes its cgroup.
* ``StopUnit`` of a unit not loaded is ``NoSuchUnit``: already gone.

jeepney costs about 12 ms to import (with its socket and selectors), so
only the systemd driver's paths load this module (runtime/kernel/lean/README.md).
"""

from __future__ import annotations

import errno

from .errors import AlreadyExists, NotFound, RuntimeFault, Unsupported

TYPE_CHECKING = False  # typing stays off the hot paths: runtime/kernel/lean/README.md
if TYPE_CHECKING:
    from collections.abc import Sequence

    from jeepney.io.blocking import DBusConnection  # type: ignore[import-untyped]  # jeepney has no types

    # One property as jeepney writes a D-Bus (sv): (name, (signature, value)).
    Property = tuple[str, tuple[str, object]]

SYSTEM_BUS = "/run/dbus/system_bus_socket"
SYSTEMD_BOOTED = "/run/systemd/system"  # sd_booted(3): systemd is PID 1
DESTINATION = "org.freedesktop.systemd1"
OBJECT = "/org/freedesktop/systemd1"
MANAGER = "org.freedesktop.systemd1.Manager"
CALL_TIMEOUT = 30.0
JOB_TIMEOUT = 30.0

_UNIT_EXISTS = "org.freedesktop.systemd1.UnitExists"
_NO_SUCH_UNIT = ("org.freedesktop.systemd1.NoSuchUnit", "org.freedesktop.systemd1.LoadFailed")


def booted() -> bool:
    """Whether systemd runs this host (sd_booted: its runtime dir exists)."""
    from .lean import leanpath

    return leanpath.isdir(SYSTEMD_BOOTED)


class SystemdError(RuntimeFault):
    """systemd refused a call; ``name`` is its D-Bus error name."""

    def __init__(self, op: str, target: str, name: str, detail: str) -> None:
        super().__init__(op, target, f"{detail} ({name})" if detail else name)
        self.name = name


def _fault(op: str, unit: str, name: str, detail: str) -> RuntimeFault:
    if name == _UNIT_EXISTS:
        return AlreadyExists(op, unit, f"a systemd unit of that name exists already: {detail}")
    if name in _NO_SUCH_UNIT:
        return NotFound(op, unit, detail or "systemd has no such unit loaded")
    return SystemdError(op, unit, name, detail)


class Systemd:
    """A connection to systemd on the system bus; use as a context manager."""

    def __init__(self, conn: DBusConnection) -> None:
        self._conn = conn

    @classmethod
    def connect(cls) -> Systemd:
        if not booted():
            raise Unsupported("connect to systemd", SYSTEMD_BOOTED,
                              "systemd is not this host's init; the systemd cgroup driver needs it")
        from .lean.venv import site_packages_on_path

        site_packages_on_path()
        from jeepney.io.blocking import open_dbus_connection

        try:
            # The bus daemon may start on this first connection (socket
            # activation), which takes seconds on a slow machine: jeepney's
            # default of 1 s for the authentication is too short.
            return cls(open_dbus_connection(bus=f"unix:path={SYSTEM_BUS}", auth_timeout=CALL_TIMEOUT))
        except OSError as err:
            raise RuntimeFault("connect to the system bus", SYSTEM_BUS, "" if err.errno else str(err),
                               err.errno or 0) from err

    def __enter__(self) -> Systemd:
        return self

    def __exit__(self, *exc: object) -> None:
        self._conn.close()

    def _call(self, op: str, unit: str, method: str, signature: str, *body: object,
              interface: str = MANAGER) -> tuple[object, ...]:
        from jeepney import DBusAddress, MessageType, new_method_call  # type: ignore[import-untyped]
        from jeepney.low_level import HeaderFields  # type: ignore[import-untyped]

        message = new_method_call(DBusAddress(OBJECT, DESTINATION, interface), method, signature, body)
        try:
            reply = self._conn.send_and_get_reply(message, timeout=CALL_TIMEOUT)
        except TimeoutError as err:
            raise RuntimeFault(op, unit, f"systemd did not answer {method} in {CALL_TIMEOUT:.0f} s",
                               errno.ETIMEDOUT) from err
        if reply.header.message_type is MessageType.error:
            name = str(reply.header.fields.get(HeaderFields.error_name, "unknown error"))
            detail = str(reply.body[0]) if reply.body and isinstance(reply.body[0], str) else ""
            raise _fault(op, unit, name, detail)
        return tuple(reply.body)

    def _run_job(self, op: str, unit: str, method: str, signature: str, *body: object) -> str:
        """Call a method that queues a job; wait for the job's end; its result."""
        from jeepney import MatchRule, message_bus
        from jeepney.io.blocking import Proxy

        # No sender in the rule: the bus would resolve systemd's well-known
        # name, but jeepney's local filter compares the header's sender, which
        # is systemd's unique name (":1.x"); the object path is systemd's own.
        rule = MatchRule(type="signal", interface=MANAGER, member="JobRemoved", path=OBJECT)
        Proxy(message_bus, self._conn).AddMatch(rule)
        with self._conn.filter(rule, bufsize=64) as queue:
            (job,) = self._call(op, unit, method, signature, *body)
            while True:
                try:
                    signal = self._conn.recv_until_filtered(queue, timeout=JOB_TIMEOUT)
                except TimeoutError as err:
                    raise RuntimeFault(op, unit, f"systemd's job {job} did not end in {JOB_TIMEOUT:.0f} s",
                                       errno.ETIMEDOUT) from err
                _, removed_job, _, result = signal.body
                if removed_job == job:
                    return str(result)

    def start_transient_unit(self, unit: str, properties: Sequence[Property]) -> None:
        """Start ``unit`` with ``properties``; raise unless its job ended ``done``
        (then the unit has failed: it is reset, so that nothing of it is left).

        A unit of that name that exists already is AlreadyExists, unless it
        is a failed one (a scope whose processes were OOM-killed stays
        loaded as failed): that one is reset and the start tried once more,
        as runc does.  An active unit is never touched."""
        op = "start systemd unit"
        props = list(properties)
        try:
            result = self._run_job(op, unit, "StartTransientUnit", "ssa(sv)a(sa(sv))", unit, "fail", props, [])
        except AlreadyExists:
            self.reset_failed(unit)
            result = self._run_job(op, unit, "StartTransientUnit", "ssa(sv)a(sa(sv))", unit, "fail", props, [])
        if result != "done":
            self.reset_failed(unit)
            raise SystemdError(op, unit, "JobFailed", f"its start job ended {result!r} (see journalctl -u {unit})")

    def stop_unit(self, unit: str) -> bool:
        """Stop ``unit`` and let systemd forget it (reset it if it failed).
        False when systemd has no such unit (already gone)."""
        try:
            self._run_job("stop systemd unit", unit, "StopUnit", "ss", unit, "replace")
        except NotFound:
            return False
        self.reset_failed(unit)
        return True

    def reset_failed(self, unit: str) -> None:
        try:
            self._call("reset systemd unit", unit, "ResetFailedUnit", "s", unit)
        except NotFound:
            pass

    def set_unit_properties(self, unit: str, properties: Sequence[Property]) -> None:
        """Change a running unit's properties (runtime only: not kept across a reboot)."""
        if properties:
            self._call("set systemd unit properties", unit, "SetUnitProperties", "sba(sv)", unit, True,
                       list(properties))

    def version(self) -> int:
        """systemd's version number (``252`` of ``"252.33-1~deb12u1"``); 0 if unreadable."""
        (value,) = self._call("read systemd's version", MANAGER, "Get", "ss", MANAGER, "Version",
                              interface="org.freedesktop.DBus.Properties")
        text = str(value[1] if isinstance(value, tuple) else value).lstrip("v")
        digits = ""
        for ch in text:
            if not ch.isdigit():
                break
            digits += ch
        return int(digits) if digits else 0
