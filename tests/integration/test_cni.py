"""CNI with Debian's real plugins (bridge, host-local, portmap) on pinned netns.

Facts these tests rely on:
- Each test gets its own copy of deploy/cni/10-dockyard.conflist with a bridge
  named ``dyt<hex>`` and a random /24 inside 10.88.0.0/16, so concurrent runs
  (other sessions run the daemon with ``dockyard0`` on this machine) never
  share a bridge or put the same connected route on two bridges, and with
  host-local's dataDir under the test's tmp dir, so reservations are files
  the test can look at.
- ``ipMasq`` is false and traffic only flows between the host and the test
  netns over the test bridge: nothing is routed to the outside.  The bridge
  plugin turns on net.ipv4.ip_forward (isGateway); the fixture puts the
  previous value back.  portmap's shared CNI-HOSTPORT-* chains stay (every
  pod on the node shares them); the per-pod chains must go with DEL.
- The plugins are children of pytest.  pytest is a subreaper whose thread
  reaps any zombie child it did not start itself, which could steal the exit
  status asyncio waits for, so the reaper is paused during these tests.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import secrets
import socket
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from bundle import REPO, SUBREAPER
from dockyard.cri import errors
from dockyard.cri.network import netns
from dockyard.cri.network.cni import CNI, NOT_READY
from dockyard.cri.network.net_stats import net_stats
from dockyard.cri.network.protocol import PluginFailed
from dockyard.runtime.kernel import syscalls

pytestmark = pytest.mark.root
PLUGIN_DIR = "/usr/lib/cni"
IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")

if os.geteuid() != 0 or not os.path.exists(f"{PLUGIN_DIR}/bridge"):
    pytest.skip("needs root and containernetworking-plugins in /usr/lib/cni", allow_module_level=True)


def run(*argv: str) -> str:
    done = SUBREAPER.run(list(argv), timeout=30, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert done.returncode == 0, f"{argv}: {done.stderr}"
    return str(done.stdout)


@dataclass
class Net:
    root: Path
    bridge: str
    subnet_third: int
    conf_dir: Path
    bin_dir: Path
    cache_dir: Path
    ipam_dir: Path
    pods: list[tuple[str, str]] = field(default_factory=list)

    def conflist(self, name: str = "dockyard", extra_plugins: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        conf: dict[str, Any] = json.loads((REPO / "deploy" / "cni" / "10-dockyard.conflist").read_text())
        conf["name"] = name
        bridge = conf["plugins"][0]
        bridge["bridge"] = self.bridge
        bridge["ipam"]["ranges"] = [[{"subnet": f"10.88.{self.subnet_third}.0/24"}]]
        bridge["ipam"]["dataDir"] = str(self.ipam_dir)
        conf["plugins"][1:1] = extra_plugins or []
        return conf

    def write_conf(self, conf: dict[str, Any], filename: str = "10-dockyard.conflist") -> None:
        (self.conf_dir / filename).write_text(json.dumps(conf))

    def cni(self) -> CNI:
        return CNI(str(self.conf_dir), [str(self.bin_dir), PLUGIN_DIR], str(self.cache_dir))

    def new_pod(self) -> tuple[str, str]:
        pod_id = secrets.token_hex(16)
        path = str(self.root / "netns" / pod_id)
        netns.create(path)
        self.pods.append((pod_id, path))
        return pod_id, path

    def reservations(self, network: str = "dockyard") -> dict[str, str]:
        """host-local's reservation files: ip -> the container id it holds."""
        directory = self.ipam_dir / network
        if not directory.is_dir():
            return {}
        return {p.name: p.read_text().splitlines()[0] for p in directory.iterdir()
                if p.name[0].isdigit()}


@pytest.fixture
def net(tmp_path: Path) -> Iterator[Net]:
    SUBREAPER.stop()
    forward = IP_FORWARD.read_text()
    made = Net(root=tmp_path, bridge=f"dyt{secrets.token_hex(3)}", subnet_third=random.randint(100, 250),
               conf_dir=tmp_path / "net.d", bin_dir=tmp_path / "bin", cache_dir=tmp_path / "cache",
               ipam_dir=tmp_path / "ipam")
    made.conf_dir.mkdir()
    made.bin_dir.mkdir()
    try:
        yield made
    finally:
        # Undo what a failing test left, in the order that releases everything.
        cni = made.cni()
        for pod_id, path in made.pods:
            try:
                asyncio.run(cni.teardown(pod_id, path))
            except errors.CriError:
                pass  # a deliberately broken plugin; the netns removal below still cleans the veth
            netns.remove(path)
        SUBREAPER.run(["ip", "link", "del", made.bridge], timeout=30, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        IP_FORWARD.write_text(forward)
        SUBREAPER.start()


def addresses_in(path: str) -> str:
    return run("nsenter", f"--net={path}", "ip", "-o", "addr", "show")


def links_in(path: str) -> list[str]:
    return [line.split(":")[1].strip().split("@")[0]
            for line in run("nsenter", f"--net={path}", "ip", "-o", "link", "show").splitlines()]


def loopback_is_up(path: str) -> bool:
    """``lo`` in the netns at ``path`` is up and has 127.0.0.1."""
    link = run("nsenter", f"--net={path}", "ip", "-o", "link", "show", "lo")
    addrs = run("nsenter", f"--net={path}", "ip", "-o", "-4", "addr", "show", "lo")
    return "<LOOPBACK,UP,LOWER_UP>" in link and "127.0.0.1/8" in addrs


def nat_rules() -> str:
    return run("iptables-save", "-t", "nat")


def serve_once_in(path: str, port: int, ready: threading.Event, out: list[bytes]) -> None:
    """A TCP server inside the netns (a thread that joined it) answering one client."""

    def serve() -> bytes:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            syscalls.setns(fd, syscalls.CLONE_NEWNET, path)
        finally:
            os.close(fd)
        with socket.socket() as listener:
            listener.bind(("0.0.0.0", port))
            listener.listen(1)
            listener.settimeout(10)
            os.write(ready_w, b"r")
            conn, peer = listener.accept()
            with conn:
                conn.sendall(b"pong from " + peer[0].encode())
        return b"served"

    ready_r, ready_w = os.pipe()
    try:
        waiter = threading.Thread(target=lambda: (os.read(ready_r, 1), ready.set()))
        waiter.start()
        out.append(netns.in_thread(serve, "serve in", path))
        waiter.join(timeout=10)
    finally:
        os.close(ready_r)
        os.close(ready_w)


def talk_to(ip: str, path: str) -> bytes:
    port = random.randint(20000, 40000)
    ready = threading.Event()
    served: list[bytes] = []
    server = threading.Thread(target=serve_once_in, args=(path, port, ready, served))
    server.start()
    try:
        assert ready.wait(10), "server in the netns never listened"
        with socket.create_connection((ip, port), timeout=5) as client:
            answer = client.recv(100)
    finally:
        server.join(timeout=15)
    assert served == [b"served"]
    return answer


def test_netns_create_pins_and_remove_unpins(tmp_path: Path) -> None:
    """create() pins a new netns (not the host's) on a file; a second create
    there is AlreadyExists; remove() unmounts and unlinks and may repeat; a
    stale plain file at the path is reused."""
    path = str(tmp_path / "ns" / "a")
    netns.create(path)
    try:
        assert netns.is_netns(path)
        assert os.stat(path).st_ino != os.stat("/proc/self/ns/net").st_ino
        assert any(f" {path} " in line for line in Path("/proc/self/mountinfo").read_text().splitlines())
        assert links_in(path) == ["lo"]
        assert loopback_is_up(path)
        with pytest.raises(errors.AlreadyExists):
            netns.create(path)
    finally:
        netns.remove(path)
    assert not os.path.exists(path) and not netns.is_netns(path)
    netns.remove(path)
    Path(path).write_text("")  # a stale file, as a crash or reboot leaves it
    assert not netns.is_netns(path)
    netns.create(path)
    assert netns.is_netns(path)
    netns.remove(path)


def test_add_check_del_with_the_real_plugins(net: Net) -> None:
    """ADD puts eth0 with an IP of the range in the netns and reserves it in
    host-local; a repeated setup returns the same attachment; the host
    reaches the pod over the bridge; CHECK passes; DEL
    releases the IP, removes the veth and the cache record; DEL again, and DEL
    once the netns is gone, succeed."""
    net.write_conf(net.conflist())
    cni = net.cni()
    pod_id, path = net.new_pod()
    result = asyncio.run(cni.setup(pod_id, path, k8s_namespace="default", k8s_name="web", k8s_uid="u1"))
    [ip] = result.ips
    assert ip.startswith(f"10.88.{net.subnet_third}.") and result.network == "dockyard"
    assert f"inet {ip}/24" in addresses_in(path)
    assert net.reservations() == {ip: pod_id}
    assert (net.cache_dir / f"{pod_id}.json").exists()
    assert cni.cached_result(pod_id) == result
    assert asyncio.run(cni.setup(pod_id, path)) == result  # a retry: no second ADD
    assert net.reservations() == {ip: pod_id}

    asyncio.run(cni.check(pod_id, path))
    assert talk_to(ip, path) == f"pong from 10.88.{net.subnet_third}.1".encode()
    counters = net_stats(path)
    assert counters["eth0"]["rx_bytes"] > 0 and counters["eth0"]["tx_bytes"] > 0 and "lo" in counters

    asyncio.run(cni.teardown(pod_id, path))
    assert net.reservations() == {}
    assert links_in(path) == ["lo"]
    assert not (net.cache_dir / f"{pod_id}.json").exists()
    asyncio.run(cni.teardown(pod_id, path))
    netns.remove(path)
    asyncio.run(cni.teardown(pod_id, path))
    assert net.reservations() == {}


def test_del_after_the_netns_is_gone_releases_the_ip(net: Net) -> None:
    """With the netns already removed (crash, reboot, manual cleanup), DEL
    still succeeds and host-local still releases the address."""
    net.write_conf(net.conflist())
    cni = net.cni()
    pod_id, path = net.new_pod()
    [ip] = asyncio.run(cni.setup(pod_id, path)).ips
    assert net.reservations() == {ip: pod_id}
    netns.remove(path)
    asyncio.run(cni.teardown(pod_id, path))
    assert net.reservations() == {}
    assert not (net.cache_dir / f"{pod_id}.json").exists()


def test_del_after_restart_uses_the_recorded_config(net: Net) -> None:
    """A new CNI instance (a restarted daemon) DELs with what ADD recorded,
    even though the conf dir now names another network: the IP reserved
    under the old network name is released."""
    net.write_conf(net.conflist())
    pod_id, path = net.new_pod()
    [ip] = asyncio.run(net.cni().setup(pod_id, path)).ips
    net.write_conf(net.conflist(name="renamed"))
    restarted = net.cni()
    assert restarted.cached_result(pod_id) is not None
    asyncio.run(restarted.teardown(pod_id, path))
    assert net.reservations() == {} and links_in(path) == ["lo"]


def write_fake_plugin(net: Net, name: str, fail_on: str) -> None:
    """A plugin that fails ``fail_on`` with a CNI error object and passes prevResult through otherwise."""
    script = net.bin_dir / name
    script.write_text(
        "#!/bin/sh\n"
        "input=$(cat)\n"
        f'if [ "$CNI_COMMAND" = "{fail_on}" ]; then\n'
        '  echo \'{"cniVersion": "1.0.0", "code": 7, "msg": "fake failure", "details": "by the test"}\'\n'
        "  exit 1\n"
        "fi\n"
        'if [ "$CNI_COMMAND" = ADD ]; then\n'
        "  printf '%s' \"$input\" | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)[\"prevResult\"]))'\n"
        "fi\n")
    script.chmod(0o755)


def test_a_failing_plugin_names_itself_and_leaves_nothing(net: Net) -> None:
    """A plugin failing ADD gives an error naming it with its CNI code and
    message; the plugins before it are DELeted again: no IP reservation, no
    veth, no cache record."""
    write_fake_plugin(net, "dyfail", fail_on="ADD")
    net.write_conf(net.conflist(extra_plugins=[{"type": "dyfail"}]))
    cni = net.cni()
    pod_id, path = net.new_pod()
    with pytest.raises(PluginFailed) as caught:
        asyncio.run(cni.setup(pod_id, path))
    err = caught.value
    assert (err.plugin, err.command, err.code, err.msg, err.details) == (
        "dyfail", "ADD", 7, "fake failure", "by the test")
    assert "CNI plugin dyfail failed on ADD" in str(err)
    assert net.reservations() == {}
    assert links_in(path) == ["lo"]
    assert not (net.cache_dir / f"{pod_id}.json").exists()


def test_a_failing_del_keeps_the_record_and_still_dels_the_rest(net: Net) -> None:
    """When one plugin fails DEL, the others still run (the IP is released),
    the error names the plugin, and the record stays so a retry after the
    plugin is fixed finishes the job."""
    write_fake_plugin(net, "dyfail", fail_on="DEL")
    net.write_conf(net.conflist(extra_plugins=[{"type": "dyfail"}]))
    cni = net.cni()
    pod_id, path = net.new_pod()
    asyncio.run(cni.setup(pod_id, path))
    with pytest.raises(PluginFailed, match="dyfail failed on DEL"):
        asyncio.run(cni.teardown(pod_id, path))
    assert net.reservations() == {}
    assert (net.cache_dir / f"{pod_id}.json").exists()
    write_fake_plugin(net, "dyfail", fail_on="never")
    asyncio.run(cni.teardown(pod_id, path))
    assert not (net.cache_dir / f"{pod_id}.json").exists()


def test_missing_plugin_binary(net: Net) -> None:
    """A config naming a plugin that is in no bin dir: status() is not ready
    and names it; ADD fails naming it and leaves nothing."""
    net.write_conf(net.conflist(extra_plugins=[{"type": "dy-no-such-plugin"}]))
    cni = net.cni()
    ready, reason, message = cni.status()
    assert (ready, reason) == (False, NOT_READY) and "dy-no-such-plugin" in message
    pod_id, path = net.new_pod()
    with pytest.raises(PluginFailed, match="dy-no-such-plugin failed on ADD: not found"):
        asyncio.run(cni.setup(pod_id, path))
    assert net.reservations() == {}


def test_config_is_picked_up_without_a_restart(net: Net) -> None:
    """status() is not ready with no config, ready as soon as a conflist is
    written, reports invalid files, and follows edits and removal; setup
    uses whatever is in force at the time of the call."""
    cni = net.cni()
    ready, reason, message = cni.status()
    assert (ready, reason) == (False, NOT_READY) and "no valid network config" in message
    pod_id, path = net.new_pod()
    with pytest.raises(errors.FailedPrecondition, match="network is not ready"):
        asyncio.run(cni.setup(pod_id, path))

    net.write_conf(net.conflist())
    assert cni.status() == (True, "", "using network dockyard from 10-dockyard.conflist")
    (net.conf_dir / "05-broken.conflist").write_text("{")
    ready, _, message = cni.status()
    assert ready and "05-broken.conflist: not valid JSON" in message
    net.write_conf(net.conflist(name="second"), "07-second.conflist")
    [ip] = asyncio.run(cni.setup(pod_id, path)).ips
    assert net.reservations("second") == {ip: pod_id}
    asyncio.run(cni.teardown(pod_id, path))

    for name in ("07-second.conflist", "10-dockyard.conflist"):
        (net.conf_dir / name).unlink()
    ready, reason, message = cni.status()
    assert (ready, reason) == (False, NOT_READY) and "05-broken.conflist" in message


def test_portmap_rules_follow_add_and_del(net: Net) -> None:
    """A hostPort mapping passed as the portMappings capability makes portmap
    add a DNAT rule to the pod IP for this pod; DEL removes every rule that
    names the pod."""
    net.write_conf(net.conflist())
    cni = net.cni()
    pod_id, path = net.new_pod()
    host_port = random.randint(41000, 49000)
    result = asyncio.run(cni.setup(pod_id, path, port_mappings=[
        {"hostPort": host_port, "containerPort": 8080, "protocol": "TCP"}]))
    [ip] = result.ips
    rules = [line for line in nat_rules().splitlines() if pod_id in line or f"{ip}:8080" in line]
    assert any(f"--dport {host_port}" in line and f"--to-destination {ip}:8080" in line for line in rules), rules
    asyncio.run(cni.teardown(pod_id, path))
    after = nat_rules()
    assert pod_id not in after and f"{ip}:8080" not in after


@pytest.mark.xfail(strict=True, reason=(
    "portmap 1.1.1 CHECK also looks for ip6tables rules an IPv4-only pod never had "
    "(containernetworking/plugins#819, fixed in 1.2.0)"))
def test_check_with_host_ports(net: Net) -> None:
    """CHECK of a pod with a hostPort mapping passes."""
    net.write_conf(net.conflist())
    cni = net.cni()
    pod_id, path = net.new_pod()
    asyncio.run(cni.setup(pod_id, path, port_mappings=[
        {"hostPort": random.randint(41000, 49000), "containerPort": 80, "protocol": "tcp"}]))
    asyncio.run(cni.check(pod_id, path))


def test_check_reports_a_broken_attachment(net: Net) -> None:
    """CHECK fails, naming the plugin, when the pod's interface was removed
    behind the plugins' back."""
    net.write_conf(net.conflist())
    cni = net.cni()
    pod_id, path = net.new_pod()
    asyncio.run(cni.setup(pod_id, path))
    run("nsenter", f"--net={path}", "ip", "link", "del", "eth0")
    with pytest.raises(PluginFailed, match="CNI plugin bridge failed on CHECK"):
        asyncio.run(cni.check(pod_id, path))


def test_check_without_add_is_a_failed_precondition(net: Net) -> None:
    """CHECK of a pod that was never added says so instead of running plugins."""
    net.write_conf(net.conflist())
    pod_id, path = net.new_pod()
    with pytest.raises(errors.FailedPrecondition, match="no completed network attachment"):
        asyncio.run(net.cni().check(pod_id, path))


def test_dns_and_bandwidth_reach_only_plugins_that_declare_them(net: Net) -> None:
    """A plugin gets CNI_NETNS and the K8S_* CNI_ARGS, prevResult, and a
    runtimeConfig with exactly the capabilities it declared (dns, bandwidth;
    not portMappings), on ADD and again on DEL."""
    spy = net.bin_dir / "dyspy"
    log = net.root / "spy.log"
    spy.write_text(
        "#!/bin/sh\n"
        "input=$(cat)\n"
        f"printf '%s\\t%s\\t%s\\t%s\\n' \"$CNI_COMMAND\" \"$CNI_NETNS\" \"$CNI_ARGS\" \"$input\" >> {log}\n"
        'if [ "$CNI_COMMAND" = ADD ]; then\n'
        "  printf '%s' \"$input\" | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)[\"prevResult\"]))'\n"
        "fi\n")
    spy.chmod(0o755)
    net.write_conf(net.conflist(extra_plugins=[{"type": "dyspy", "capabilities": {"dns": True, "bandwidth": True}}]))
    cni = net.cni()
    pod_id, path = net.new_pod()
    asyncio.run(cni.setup(pod_id, path, k8s_namespace="ns1", k8s_name="pod1", k8s_uid="uid1",
                          port_mappings=[{"hostPort": random.randint(41000, 49000), "containerPort": 80}],
                          bandwidth={"ingressRate": 1000000, "ingressBurst": 100000},
                          dns={"servers": ["10.96.0.10"], "searches": ["svc"], "options": []}))
    asyncio.run(cni.teardown(pod_id, path))
    calls = [line.split("\t") for line in log.read_text().splitlines()]
    assert [call[0] for call in calls] == ["ADD", "DEL"]
    for _, netns_env, args_env, raw in calls:
        assert netns_env == path
        assert args_env == (f"IgnoreUnknown=1;K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=pod1;"
                            f"K8S_POD_INFRA_CONTAINER_ID={pod_id};K8S_POD_UID=uid1")
        stdin = json.loads(raw)
        assert stdin["runtimeConfig"] == {
            "bandwidth": {"ingressRate": 1000000, "ingressBurst": 100000},
            "dns": {"servers": ["10.96.0.10"], "searches": ["svc"], "options": []},
        }
        assert stdin["prevResult"]["ips"][0]["address"].startswith(f"10.88.{net.subnet_third}.")
        assert stdin["name"] == "dockyard" and stdin["cniVersion"] == "1.0.0"

