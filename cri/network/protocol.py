"""The CNI protocol as data: what a plugin gets (env, stdin) and what it answers.

No I/O here: ``cni.py`` runs the binaries; this module builds their input and
reads their output, so the rules are table-tested on plain dicts.

Facts about CNI the code depends on (spec 0.4.0, 1.0.0 and 1.1.0, plugins 1.1.1):

* A plugin is an executable named by its config's ``type``, looked up in
  ``CNI_PATH``.  Parameters come from the environment (``CNI_COMMAND``,
  ``CNI_CONTAINERID``, ``CNI_NETNS``, ``CNI_IFNAME``, ``CNI_PATH``,
  ``CNI_ARGS``); the network config comes on stdin as one JSON object.
* In a conflist, the runtime injects ``name`` and ``cniVersion`` of the list
  into every plugin's object, chains ADD results as ``prevResult`` into the
  next plugin, and passes ``runtimeConfig`` holding only the capabilities the
  plugin declared with ``"capabilities": {"portMappings": true}``.
* ADD runs the plugins in order; DEL in reverse order with the ADD result as
  ``prevResult`` (from 0.4.0 on; 0.3.x DEL gets no prevResult); CHECK in order
  with the ADD result (0.4.0 on; a list may set ``disableCheck``).
* Success is exit 0 with the result JSON on stdout (DEL and CHECK print
  nothing).  Failure is a non-zero exit with ``{"code", "msg", "details"}`` on
  stdout; plugins also log to stderr.  Codes 1-99 are the spec's (7 decode,
  11 try again later, ...), 100+ the plugin's own.
* 1.1.0 adds two verbs: STATUS (may the plugin serve ADD now? Non-zero
  exit, code 50 or 51, means no) and GC (forget every attachment not in
  ``cni.dev/valid-attachments``, a list of {containerID, ifname} in the
  config).  Both get only CNI_COMMAND and CNI_PATH in the environment and
  the plugin's config on stdin; libcni runs them only for lists of version
  1.1.0 or later, each plugin in order.  A 1.1.0 list may name the versions
  it supports in ``cniVersions``; the highest one known is used.
* Results of 0.3.0, 0.3.1 and 0.4.0 carry ``ips[].version`` ("4"/"6"); 1.0.0
  dropped it, and 1.1.0 results have the same shape.  Everything else we read (``interfaces``, ``ips[].address`` as
  CIDR, ``ips[].interface`` as an index into ``interfaces``) is the same, so
  converting between them is adding or dropping that one field.
* ``CNI_ARGS`` is ``K=V;K=V``; kubelet-style runtimes pass
  ``IgnoreUnknown=1`` first so plugins that do not know the K8S_* keys do not
  fail on them.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dockyard.cri import errors

SUPPORTED_VERSIONS = ("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
# Versions whose DEL gets prevResult and that know CHECK.
_PREV_ON_DEL = ("0.4.0", "1.0.0", "1.1.0")
# Versions with the STATUS and GC verbs.
_STATUS_AND_GC = ("1.1.0",)
# Versions whose results carry no ips[].version.
_NO_IP_VERSION = ("1.0.0", "1.1.0")
VALID_ATTACHMENTS = "cni.dev/valid-attachments"

# CNI's well-known error codes (spec "Error" section).
ERROR_CODES: dict[int, str] = {
    1: "incompatible CNI version",
    2: "unsupported field in network configuration",
    3: "container unknown or does not exist",
    4: "invalid necessary environment variables",
    5: "I/O failure",
    6: "failed to decode content",
    7: "invalid network config",
    11: "try again later",
    50: "plugin not available",
    51: "plugin not available, existing containers may have limited connectivity",
}
_TRY_AGAIN = 11


class PluginFailed(errors.Internal):
    """A CNI plugin exited non-zero or printed something that is not a result.

    Carries which plugin (``plugin``: its type), which command, the CNI error
    ``code`` (0 when the plugin gave none), ``msg`` and ``details``.
    """

    def __init__(self, plugin: str, command: str, code: int, msg: str, details: str = "") -> None:
        self.plugin = plugin
        self.command = command
        self.code = code
        self.msg = msg
        self.details = details
        text = f"CNI plugin {plugin} failed on {command}"
        if code:
            known = ERROR_CODES.get(code)
            text += f" (code {code}{': ' + known if known else ''})"
        text += f": {msg}"
        if details:
            text += f": {details}"
        super().__init__(text)


class PluginBusy(errors.Unavailable):
    """A plugin answered CNI code 11, "try again later"; the caller may retry."""

    def __init__(self, plugin: str, command: str, msg: str) -> None:
        self.plugin = plugin
        self.command = command
        super().__init__(f"CNI plugin {plugin} asks to retry {command} later: {msg}")


@dataclass(frozen=True, slots=True)
class RuntimeArgs:
    """What the runtime passes besides the network config, for one pod."""

    container_id: str
    netns: str
    ifname: str
    k8s_namespace: str = ""
    k8s_name: str = ""
    k8s_uid: str = ""

    def cni_args(self) -> str:
        pairs = [
            ("IgnoreUnknown", "1"),
            ("K8S_POD_NAMESPACE", self.k8s_namespace),
            ("K8S_POD_NAME", self.k8s_name),
            ("K8S_POD_INFRA_CONTAINER_ID", self.container_id),
            ("K8S_POD_UID", self.k8s_uid),
        ]
        for key, value in pairs:
            # ';' and '=' are the separators; a value holding one cannot be passed.
            if ";" in value or "=" in value:
                raise errors.InvalidArgument(f"CNI_ARGS value for {key} contains ';' or '=': {value!r}")
        return ";".join(f"{k}={v}" for k, v in pairs)


def plugin_env(command: str, args: RuntimeArgs, bin_dirs: Sequence[str],
               base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a plugin runs with; ``base`` is the daemon's (PATH etc.)."""
    if command not in ("ADD", "DEL", "CHECK", "VERSION"):
        raise ValueError(f"unknown CNI command {command!r}")
    env = dict(base or {})
    env.update({
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": args.container_id,
        "CNI_NETNS": args.netns,
        "CNI_IFNAME": args.ifname,
        "CNI_PATH": ":".join(bin_dirs),
        "CNI_ARGS": args.cni_args(),
    })
    return env


def verb_env(command: str, bin_dirs: Sequence[str], base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of STATUS and GC: no container, netns or interface."""
    if command not in ("STATUS", "GC"):
        raise ValueError(f"not a network-wide CNI command: {command!r}")
    return {**(base or {}), "CNI_COMMAND": command, "CNI_PATH": ":".join(bin_dirs)}


def runtime_config_for(plugin: Mapping[str, Any], runtime_config: Mapping[str, Any]) -> dict[str, Any]:
    """Only the capabilities this plugin declared, and only those we have a value for (libcni's rule)."""
    declared = plugin.get("capabilities") or {}
    return {cap: runtime_config[cap] for cap, on in declared.items() if on is True and cap in runtime_config}


def plugin_stdin(network: Mapping[str, Any], plugin: Mapping[str, Any], *,
                 prev_result: Mapping[str, Any] | None,
                 runtime_config: Mapping[str, Any]) -> bytes:
    """The JSON one plugin of a conflist reads on stdin."""
    conf = dict(plugin)
    conf["name"] = network["name"]
    conf["cniVersion"] = network["cniVersion"]
    # The capabilities declaration is for the runtime, not the plugin; keeping
    # it is harmless (libcni keeps it too), and plugins like portmap read it.
    selected = runtime_config_for(plugin, runtime_config)
    if selected:
        conf["runtimeConfig"] = selected
    else:
        conf.pop("runtimeConfig", None)
    if prev_result is not None:
        conf["prevResult"] = dict(prev_result)
    else:
        conf.pop("prevResult", None)
    return json.dumps(conf, sort_keys=True).encode()


def verb_stdin(network: Mapping[str, Any], plugin: Mapping[str, Any],
               valid_attachments: Sequence[Mapping[str, str]] | None = None) -> bytes:
    """What one plugin reads on STATUS (no attachments) or GC (the attachments to keep)."""
    conf = {k: v for k, v in plugin.items() if k not in ("runtimeConfig", "prevResult")}
    conf["name"] = network["name"]
    conf["cniVersion"] = network["cniVersion"]
    if valid_attachments is not None:
        conf[VALID_ATTACHMENTS] = [dict(a) for a in valid_attachments]
    return json.dumps(conf, sort_keys=True).encode()


def has_status_and_gc(version: str) -> bool:
    return version in _STATUS_AND_GC


def highest_version(versions: Sequence[str]) -> str | None:
    """The highest of ``versions`` this runtime speaks (a 1.1.0 list's cniVersions)."""
    known = [v for v in versions if v in SUPPORTED_VERSIONS]
    return max(known, key=SUPPORTED_VERSIONS.index) if known else None


def del_gets_prev_result(version: str) -> bool:
    return version in _PREV_ON_DEL


def supports_check(version: str) -> bool:
    return version in _PREV_ON_DEL


def build_runtime_config(port_mappings: Sequence[Mapping[str, Any]],
                         bandwidth: Mapping[str, Any] | None,
                         dns: Mapping[str, Any] | None) -> dict[str, Any]:
    """The runtimeConfig capability values of one pod (absent ones left out)."""
    config: dict[str, Any] = {}
    if port_mappings:
        config["portMappings"] = [_port_mapping(m, i) for i, m in enumerate(port_mappings)]
    if bandwidth:
        config["bandwidth"] = dict(bandwidth)
    if dns:
        config["dns"] = dict(dns)
    return config


def _port_mapping(mapping: Mapping[str, Any], index: int) -> dict[str, Any]:
    # portmap's schema: hostPort, containerPort, protocol (lowercase), hostIP.
    where = f"port_mappings[{index}]"
    host_port = mapping.get("hostPort")
    container_port = mapping.get("containerPort")
    for key, value in (("hostPort", host_port), ("containerPort", container_port)):
        if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 65536:
            raise errors.InvalidArgument(f"{where}.{key} must be a port 1-65535, got {value!r}")
    protocol = str(mapping.get("protocol", "tcp")).lower()
    if protocol not in ("tcp", "udp", "sctp"):
        raise errors.InvalidArgument(f"{where}.protocol must be tcp, udp or sctp, got {protocol!r}")
    out: dict[str, Any] = {"hostPort": host_port, "containerPort": container_port, "protocol": protocol}
    host_ip = mapping.get("hostIP") or ""
    if host_ip:
        out["hostIP"] = host_ip
    return out


# --- results -----------------------------------------------------------------

def parse_result(plugin: str, command: str, stdout: bytes) -> dict[str, Any]:
    """A plugin's ADD output as a dict, or PluginFailed if it is not a result object."""
    try:
        value = json.loads(stdout)
    except (ValueError, UnicodeDecodeError) as err:
        raise PluginFailed(plugin, command, 0, "result is not JSON", _clip(stdout)) from err
    if not isinstance(value, dict):
        raise PluginFailed(plugin, command, 0, "result is not a JSON object", _clip(stdout))
    return value


def convert_result(result: Mapping[str, Any], to_version: str) -> dict[str, Any]:
    """Re-express a 0.3.x/0.4.0/1.0.0 result in ``to_version``.

    Raises InvalidArgument for a result we cannot read (e.g. 0.2.0's ip4/ip6 shape).
    """
    if to_version not in SUPPORTED_VERSIONS:
        raise errors.InvalidArgument(f"unsupported CNI version {to_version!r}")
    source = str(result.get("cniVersion", ""))
    if source and source not in SUPPORTED_VERSIONS:
        raise errors.InvalidArgument(f"CNI result version {source!r} is not one of {', '.join(SUPPORTED_VERSIONS)}")
    out = dict(result)
    out["cniVersion"] = to_version
    ips: list[dict[str, Any]] = []
    for index, entry in enumerate(result.get("ips") or []):
        if not isinstance(entry, Mapping) or not isinstance(entry.get("address"), str):
            raise errors.InvalidArgument(f"CNI result ips[{index}] has no address")
        ip = dict(entry)
        if to_version in _NO_IP_VERSION:
            ip.pop("version", None)
        else:
            ip["version"] = str(_interface_of(ip["address"], f"ips[{index}].address").version)
        ips.append(ip)
    if "ips" in result:
        out["ips"] = ips
    return out


def result_ips(result: Mapping[str, Any], ifname: str) -> list[str]:
    """The pod's addresses (no prefix length): those on ``ifname`` inside the
    sandbox, IPv4 first (the CRI's primary IP is the first one).

    IPs that name no interface count as the pod's, as libcni's users treat
    them; IPs on another interface (the host's bridge) do not.
    """
    interfaces = result.get("interfaces") or []
    found: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
    for index, entry in enumerate(result.get("ips") or []):
        iface_index = entry.get("interface")
        if isinstance(iface_index, int) and 0 <= iface_index < len(interfaces):
            iface = interfaces[iface_index]
            if iface.get("name") != ifname or not iface.get("sandbox"):
                continue
        found.append(_interface_of(entry.get("address", ""), f"ips[{index}].address").ip)
    found.sort(key=lambda ip: ip.version)
    return [str(ip) for ip in found]


def _interface_of(cidr: object, where: str) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
    try:
        return ipaddress.ip_interface(str(cidr))
    except ValueError as err:
        raise errors.InvalidArgument(f"CNI result {where} is not an address: {cidr!r}") from err


# --- errors ------------------------------------------------------------------

def plugin_error(plugin: str, command: str, returncode: int, stdout: bytes, stderr: bytes) -> errors.CriError:
    """The typed error for a plugin that exited ``returncode`` != 0."""
    try:
        value = json.loads(stdout) if stdout.strip() else None
    except (ValueError, UnicodeDecodeError):
        value = None
    if isinstance(value, dict) and ("msg" in value or "code" in value):
        code = value.get("code")
        code = code if isinstance(code, int) and not isinstance(code, bool) else 0
        msg = str(value.get("msg") or "")
        details = str(value.get("details") or "")
        if code == _TRY_AGAIN:
            return PluginBusy(plugin, command, msg)
        return PluginFailed(plugin, command, code, msg or "(no message)", details)
    # No structured error: the most useful text is whatever it printed.
    text = _clip(stderr) or _clip(stdout)
    how = f"exit status {returncode}" if returncode >= 0 else f"killed by signal {-returncode}"
    return PluginFailed(plugin, command, 0, how, text)


def _clip(raw: bytes, limit: int = 2048) -> str:
    text = raw.decode("utf-8", "replace").strip()
    return text if len(text) <= limit else text[:limit] + "..."
