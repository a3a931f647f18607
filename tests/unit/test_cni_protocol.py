"""The CNI protocol on data: plugin env and stdin, result conversion, IPs, errors."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dockyard.cri import errors
from dockyard.cri.network.protocol import (
    PluginBusy,
    PluginFailed,
    RuntimeArgs,
    build_runtime_config,
    convert_result,
    del_gets_prev_result,
    has_status_and_gc,
    highest_version,
    parse_result,
    plugin_env,
    plugin_error,
    plugin_stdin,
    result_ips,
    runtime_config_for,
    supports_check,
    verb_env,
    verb_stdin,
)

ARGS = RuntimeArgs("abc123", "/run/dockyard/netns/abc123", "eth0", "default", "web", "uid-1")
NETWORK: dict[str, Any] = {
    "cniVersion": "1.0.0",
    "name": "dockyard",
    "plugins": [
        {"type": "bridge", "bridge": "dockyard0", "ipam": {"type": "host-local"}},
        {"type": "portmap", "capabilities": {"portMappings": True}},
        {"type": "loopback"},
    ],
}
RESULT_1_0 = {
    "cniVersion": "1.0.0",
    "interfaces": [
        {"name": "dockyard0", "mac": "aa:aa:aa:aa:aa:aa"},
        {"name": "veth1", "mac": "bb:bb:bb:bb:bb:bb"},
        {"name": "eth0", "mac": "cc:cc:cc:cc:cc:cc", "sandbox": "/run/dockyard/netns/abc123"},
    ],
    "ips": [{"interface": 2, "address": "10.88.0.5/16", "gateway": "10.88.0.1"}],
    "routes": [{"dst": "0.0.0.0/0"}],
}


def test_env_carries_every_cni_variable_and_the_k8s_args() -> None:
    env = plugin_env("ADD", ARGS, ["/usr/lib/cni", "/opt/cni/bin"], {"PATH": "/usr/bin"})
    assert env == {
        "PATH": "/usr/bin",
        "CNI_COMMAND": "ADD",
        "CNI_CONTAINERID": "abc123",
        "CNI_NETNS": "/run/dockyard/netns/abc123",
        "CNI_IFNAME": "eth0",
        "CNI_PATH": "/usr/lib/cni:/opt/cni/bin",
        "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;"
                    "K8S_POD_INFRA_CONTAINER_ID=abc123;K8S_POD_UID=uid-1",
    }


@pytest.mark.parametrize("command", ["add", "GET", ""])
def test_env_refuses_unknown_commands(command: str) -> None:
    with pytest.raises(ValueError):
        plugin_env(command, ARGS, [])


@pytest.mark.parametrize("bad", ["a;b", "a=b"])
def test_cni_args_refuse_separators_in_values(bad: str) -> None:
    with pytest.raises(errors.InvalidArgument, match="K8S_POD_NAME"):
        RuntimeArgs("id", "", "eth0", "ns", bad, "uid").cni_args()


@pytest.mark.parametrize(
    ("plugin", "runtime", "want"),
    [
        ({"type": "bridge"}, {"portMappings": [1]}, {}),
        ({"type": "portmap", "capabilities": {"portMappings": True}}, {"portMappings": [1]}, {"portMappings": [1]}),
        ({"type": "portmap", "capabilities": {"portMappings": False}}, {"portMappings": [1]}, {}),
        ({"type": "portmap", "capabilities": {"portMappings": True}}, {}, {}),
        ({"type": "x", "capabilities": {"bandwidth": True, "dns": True}},
         {"bandwidth": {"ingressRate": 1}, "dns": {"servers": ["1.1.1.1"]}, "portMappings": [1]},
         {"bandwidth": {"ingressRate": 1}, "dns": {"servers": ["1.1.1.1"]}}),
        # declared, but the pod brings no value: left out (libcni), not an error
        ({"type": "x", "capabilities": {"ips": True, "mac": True, "portMappings": True}}, {"dns": {}}, {}),
        # any capability passes through when the runtime has a value for it
        ({"type": "x", "capabilities": {"ipRanges": True, "ips": True}},
         {"ipRanges": [[{"subnet": "10.88.0.0/16"}]], "ips": ["10.88.0.9/16"]},
         {"ipRanges": [[{"subnet": "10.88.0.0/16"}]], "ips": ["10.88.0.9/16"]}),
    ],
)
def test_runtime_config_holds_only_declared_capabilities(
    plugin: dict[str, Any], runtime: dict[str, Any], want: dict[str, Any]
) -> None:
    assert runtime_config_for(plugin, runtime) == want


def test_stdin_injects_name_version_prev_result_and_runtime_config() -> None:
    stdin = json.loads(plugin_stdin(NETWORK, NETWORK["plugins"][1], prev_result=RESULT_1_0,
                                    runtime_config={"portMappings": [{"hostPort": 80}]}))
    assert stdin == {
        "type": "portmap", "capabilities": {"portMappings": True},
        "name": "dockyard", "cniVersion": "1.0.0",
        "prevResult": RESULT_1_0, "runtimeConfig": {"portMappings": [{"hostPort": 80}]},
    }


def test_stdin_of_first_plugin_has_no_prev_result_and_no_runtime_config() -> None:
    stdin = json.loads(plugin_stdin(NETWORK, NETWORK["plugins"][0], prev_result=None,
                                    runtime_config={"portMappings": [{"hostPort": 80}]}))
    assert "prevResult" not in stdin and "runtimeConfig" not in stdin
    assert stdin["name"] == "dockyard" and stdin["bridge"] == "dockyard0"


def test_stdin_overrides_a_plugin_supplied_name_and_version() -> None:
    plugin = {"type": "loopback", "name": "other", "cniVersion": "0.3.1", "prevResult": {"x": 1}}
    stdin = json.loads(plugin_stdin(NETWORK, plugin, prev_result=None, runtime_config={}))
    assert (stdin["name"], stdin["cniVersion"]) == ("dockyard", "1.0.0")
    assert "prevResult" not in stdin


@pytest.mark.parametrize(
    ("version", "prev_on_del", "check", "status_and_gc"),
    [("0.3.0", False, False, False), ("0.3.1", False, False, False), ("0.4.0", True, True, False),
     ("1.0.0", True, True, False), ("1.1.0", True, True, True)],
)
def test_version_features(version: str, prev_on_del: bool, check: bool, status_and_gc: bool) -> None:
    assert del_gets_prev_result(version) is prev_on_del
    assert supports_check(version) is check
    assert has_status_and_gc(version) is status_and_gc


@pytest.mark.parametrize(("versions", "want"), [
    (["0.3.1", "1.1.0", "1.0.0"], "1.1.0"), (["1.0.0", "2.0.0"], "1.0.0"), (["0.2.0"], None), ([], None)])
def test_highest_version(versions: list[str], want: str | None) -> None:
    assert highest_version(versions) == want


def test_status_and_gc_get_only_command_and_path() -> None:
    env = verb_env("GC", ["/a", "/b"], {"PATH": "/usr/bin"})
    assert env == {"PATH": "/usr/bin", "CNI_COMMAND": "GC", "CNI_PATH": "/a:/b"}
    with pytest.raises(ValueError):
        verb_env("ADD", ["/a"])


def test_gc_stdin_lists_the_valid_attachments() -> None:
    network = {**NETWORK, "cniVersion": "1.1.0"}
    plugin = {"type": "portmap", "capabilities": {"portMappings": True}, "runtimeConfig": {"x": 1}, "prevResult": {}}
    gc = json.loads(verb_stdin(network, plugin, [{"containerID": "abc", "ifname": "eth0"}]))
    assert gc == {"type": "portmap", "capabilities": {"portMappings": True}, "name": "dockyard",
                  "cniVersion": "1.1.0", "cni.dev/valid-attachments": [{"containerID": "abc", "ifname": "eth0"}]}
    status = json.loads(verb_stdin(network, plugin))
    assert "cni.dev/valid-attachments" not in status and status["cniVersion"] == "1.1.0"


def test_runtime_config_normalises_port_mappings() -> None:
    config = build_runtime_config(
        [{"hostPort": 8080, "containerPort": 80, "protocol": "TCP"},
         {"hostPort": 53, "containerPort": 53, "protocol": "UDP", "hostIP": "127.0.0.1"}],
        {"ingressRate": 1000, "ingressBurst": 10}, None)
    assert config == {
        "portMappings": [
            {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
            {"hostPort": 53, "containerPort": 53, "protocol": "udp", "hostIP": "127.0.0.1"},
        ],
        "bandwidth": {"ingressRate": 1000, "ingressBurst": 10},
    }


def test_runtime_config_is_empty_without_values() -> None:
    assert build_runtime_config([], None, None) == {}


@pytest.mark.parametrize(
    ("mapping", "field"),
    [
        ({"hostPort": 0, "containerPort": 80}, "port_mappings[0].hostPort"),
        ({"hostPort": 80, "containerPort": 70000}, "port_mappings[0].containerPort"),
        ({"hostPort": True, "containerPort": 80}, "port_mappings[0].hostPort"),
        ({"hostPort": 80, "containerPort": 80, "protocol": "icmp"}, "port_mappings[0].protocol"),
    ],
)
def test_runtime_config_rejects_bad_port_mappings(mapping: dict[str, Any], field: str) -> None:
    with pytest.raises(errors.InvalidArgument, match=field.replace("[", r"\[").replace("]", r"\]")):
        build_runtime_config([mapping], None, None)


RESULT_0_4 = {
    **RESULT_1_0,
    "cniVersion": "0.4.0",
    "ips": [{"version": "4", "interface": 2, "address": "10.88.0.5/16", "gateway": "10.88.0.1"}],
}


@pytest.mark.parametrize(
    ("result", "to", "want"),
    [
        (RESULT_1_0, "1.0.0", RESULT_1_0),
        (RESULT_0_4, "1.0.0", RESULT_1_0),
        (RESULT_0_4, "1.1.0", {**RESULT_1_0, "cniVersion": "1.1.0"}),
        ({**RESULT_1_0, "cniVersion": "1.1.0"}, "0.4.0", RESULT_0_4),
        (RESULT_1_0, "0.4.0", RESULT_0_4),
        (RESULT_0_4, "0.4.0", RESULT_0_4),
        ({"cniVersion": "0.3.1", "ips": [{"address": "fd00::5/64"}]}, "0.4.0",
         {"cniVersion": "0.4.0", "ips": [{"address": "fd00::5/64", "version": "6"}]}),
        ({"cniVersion": "1.0.0", "dns": {}}, "0.3.1", {"cniVersion": "0.3.1", "dns": {}}),
    ],
)
def test_convert_result(result: dict[str, Any], to: str, want: dict[str, Any]) -> None:
    assert convert_result(result, to) == want


@pytest.mark.parametrize(
    ("result", "to", "match"),
    [
        ({"cniVersion": "0.2.0", "ip4": {"ip": "10.0.0.1/8"}}, "1.0.0", "0.2.0"),
        (RESULT_1_0, "0.2.0", "unsupported"),
        ({"cniVersion": "1.0.0", "ips": [{"gateway": "10.0.0.1"}]}, "1.0.0", "ips.0. has no address"),
        ({"cniVersion": "1.0.0", "ips": [{"address": "bogus"}]}, "0.4.0", "not an address"),
    ],
)
def test_convert_result_rejects_unreadable_results(result: dict[str, Any], to: str, match: str) -> None:
    with pytest.raises(errors.InvalidArgument, match=match):
        convert_result(result, to)


@pytest.mark.parametrize(
    ("result", "want"),
    [
        (RESULT_1_0, ["10.88.0.5"]),
        # the bridge's own address (interface 0, no sandbox) is not the pod's
        ({**RESULT_1_0, "ips": [{"interface": 0, "address": "10.88.0.1/16"},
                                {"interface": 2, "address": "10.88.0.5/16"}]}, ["10.88.0.5"]),
        # dual stack: IPv4 first whatever the order
        ({**RESULT_1_0, "ips": [{"interface": 2, "address": "fd00::5/64"},
                                {"interface": 2, "address": "10.88.0.5/16"}]}, ["10.88.0.5", "fd00::5"]),
        # no interface index: counted
        ({"cniVersion": "1.0.0", "ips": [{"address": "10.1.2.3/24"}]}, ["10.1.2.3"]),
        ({"cniVersion": "1.0.0"}, []),
    ],
)
def test_result_ips(result: dict[str, Any], want: list[str]) -> None:
    assert result_ips(result, "eth0") == want


@pytest.mark.parametrize(
    ("stdout", "match"),
    [(b"not json", "result is not JSON"), (b"[1]", "not a JSON object"), (b"\xff", "not JSON")],
)
def test_parse_result_names_the_plugin(stdout: bytes, match: str) -> None:
    with pytest.raises(PluginFailed, match=match) as caught:
        parse_result("bridge", "ADD", stdout)
    assert caught.value.plugin == "bridge" and "bridge" in str(caught.value)


def test_plugin_error_reads_the_cni_error_object() -> None:
    stdout = json.dumps({"cniVersion": "1.0.0", "code": 7, "msg": "bad config", "details": "no bridge"}).encode()
    err = plugin_error("bridge", "ADD", 1, stdout, b"log noise")
    assert isinstance(err, PluginFailed) and isinstance(err, errors.Internal)
    assert (err.plugin, err.command, err.code, err.msg, err.details) == ("bridge", "ADD", 7, "bad config", "no bridge")
    assert str(err) == "CNI plugin bridge failed on ADD (code 7: invalid network config): bad config: no bridge"


def test_plugin_error_code_11_is_retryable() -> None:
    err = plugin_error("host-local", "ADD", 1, b'{"code": 11, "msg": "busy"}', b"")
    assert isinstance(err, PluginBusy) and isinstance(err, errors.Unavailable)
    assert "host-local" in str(err)


@pytest.mark.parametrize(
    ("code", "stdout", "stderr", "want"),
    [
        (2, b"", b"panic: boom\n", "CNI plugin fake failed on DEL: exit status 2: panic: boom"),
        (1, b"garbage", b"", "CNI plugin fake failed on DEL: exit status 1: garbage"),
        (-9, b"", b"", "CNI plugin fake failed on DEL: killed by signal 9"),
        (1, b'{"code": 100, "msg": ""}', b"", "CNI plugin fake failed on DEL (code 100): (no message)"),
    ],
)
def test_plugin_error_without_an_error_object(code: int, stdout: bytes, stderr: bytes, want: str) -> None:
    assert str(plugin_error("fake", "DEL", code, stdout, stderr)) == want
