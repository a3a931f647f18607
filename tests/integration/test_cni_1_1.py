"""CNI 1.1.0 through dockyardd's CNI driver and through a real daemon and crictl,
with a plugin the tests write that records what it is given (cni_spy.py):
Debian's plugins stop at 1.0.0.

Rules checked: a 1.1.0 list (or one naming 1.1.0 among its cniVersions) is
accepted, whatever capabilities it declares; a plugin gets in runtimeConfig
exactly the capabilities it declared that the pod has values for (bandwidth
from the pod's annotations, DNS from its DNS config, port mappings); DEL gets
the ADD result; STATUS runs for a 1.1.0 list at each Status call and a plugin
failing it makes NetworkReady false, naming it; GC runs at daemon start with
the pods the daemon still has as the valid attachments, and neither verb runs
for a 1.0.0 list.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import grpc
import pytest
from cni_spy import ADDRESS, Spy, conflist
from daemon_fixture import daemon_factory, test_registry  # noqa: F401 (fixtures)
from runtime_service_fixture import Pods, pods  # noqa: F401 (fixture)
from test_cni import Net, net  # noqa: F401 (fixture)

pytestmark = pytest.mark.root


@pytest.fixture
def spy(tmp_path: Path) -> Spy:
    made = Spy(tmp_path / "spy-bin", tmp_path / "spy.log", tmp_path / "fail-status")
    made.install("dyspy1", "dyspy2")
    return made


def with_spy(net: Net, spy: Spy) -> Any:
    from dockyard.cri.network.cni import CNI

    return CNI(str(net.conf_dir), [str(spy.bin_dir), "/usr/lib/cni"], str(net.cache_dir))


def test_add_del_with_capabilities(net: Net, spy: Spy) -> None:
    """ADD and DEL of a 1.1.0 list: version injected, capabilities only as declared and supplied,
    ips/mac declared without values left out, DEL with prevResult; no STATUS or GC on the way."""
    net.write_conf(conflist())
    cni = with_spy(net, spy)
    pod_id, path = net.new_pod()
    result = asyncio.run(cni.setup(
        pod_id, path, k8s_name="p", port_mappings=[{"hostPort": 8080, "containerPort": 80}],
        bandwidth={"ingressRate": 10_000_000, "ingressBurst": 2**32 - 1},
        dns={"servers": ["10.96.0.10"], "searches": ["svc"], "options": ["ndots:5"]}))
    assert result.ips == [ADDRESS.split("/")[0]] and result.raw["cniVersion"] == "1.1.0"
    asyncio.run(cni.teardown(pod_id, path))
    calls = spy.calls()
    assert [(c["plugin"], c["command"]) for c in calls] == [
        ("dyspy1", "ADD"), ("dyspy2", "ADD"), ("dyspy2", "DEL"), ("dyspy1", "DEL")]
    first, second = calls[0]["stdin"], calls[1]["stdin"]
    assert first["cniVersion"] == second["cniVersion"] == "1.1.0"
    assert "runtimeConfig" not in first
    assert second["runtimeConfig"] == {
        "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}],
        "bandwidth": {"ingressRate": 10_000_000, "ingressBurst": 2**32 - 1},
        "dns": {"servers": ["10.96.0.10"], "searches": ["svc"], "options": ["ndots:5"]},
    }
    for call in calls[2:]:
        assert call["stdin"]["prevResult"]["ips"] == [{"address": ADDRESS, "interface": 0}]
        assert call["env"]["CNI_NETNS"] == path and call["env"]["CNI_CONTAINERID"] == pod_id


def test_status_verb_decides_network_ready(net: Net, spy: Spy) -> None:
    """STATUS runs for each plugin in order; the first one failing (code 50) makes the network not
    ready with its message; STATUS and GC get only CNI_COMMAND and CNI_PATH."""
    net.write_conf(conflist())
    cni = with_spy(net, spy)
    asyncio.run(cni.probe_plugins())
    assert cni.status()[0] is True
    assert [(c["plugin"], c["command"]) for c in spy.calls()] == [("dyspy1", "STATUS"), ("dyspy2", "STATUS")]
    assert set(spy.calls()[0]["env"]) == {"CNI_COMMAND", "CNI_PATH"}
    spy.fail_status("upstream fabric down")
    asyncio.run(cni.probe_plugins())
    ready, reason, message = cni.status()
    assert (ready, reason) == (False, "NetworkPluginNotReady")
    assert "dyspy1" in message and "code 50" in message and "upstream fabric down" in message
    spy.fail_status(None)
    asyncio.run(cni.probe_plugins())
    assert cni.status()[0] is True


def test_gc_keeps_the_valid_attachments(net: Net, spy: Spy) -> None:
    """GC gives every plugin the attachments of the pods still wanted (those with a recorded ADD)."""
    net.write_conf(conflist())
    cni = with_spy(net, spy)
    kept, kept_path = net.new_pod()
    gone, gone_path = net.new_pod()
    asyncio.run(cni.setup(kept, kept_path))
    asyncio.run(cni.setup(gone, gone_path))
    assert asyncio.run(cni.collect_garbage([kept, "f" * 32])) == []
    gc = spy.calls("GC")
    assert [c["plugin"] for c in gc] == ["dyspy1", "dyspy2"]
    for call in gc:
        assert call["stdin"]["cni.dev/valid-attachments"] == [{"containerID": kept, "ifname": "eth0"}]
        assert set(call["env"]) == {"CNI_COMMAND", "CNI_PATH"}


def test_cni_versions_list_and_older_lists(net: Net, spy: Spy) -> None:
    """A list naming 1.1.0 among its cniVersions is spoken as 1.1.0; a 1.0.0 list gets no STATUS or GC."""
    net.write_conf(conflist(version="1.0.0", cniVersions=["0.4.0", "1.0.0", "1.1.0"]))
    cni = with_spy(net, spy)
    asyncio.run(cni.probe_plugins())
    assert [c["stdin"]["cniVersion"] for c in spy.calls("STATUS")] == ["1.1.0", "1.1.0"]
    net.write_conf(conflist(version="1.0.0"))
    spy.log.unlink()
    asyncio.run(cni.probe_plugins())
    assert asyncio.run(cni.collect_garbage([])) == []
    assert spy.calls() == []


@pytest.fixture
def pods_extra_config(tmp_path: Path) -> dict[str, Any]:
    return {"cni": {"bin_dirs": [str(tmp_path / "spy-bin"), "/usr/lib/cni"]}}


def test_daemon_bandwidth_dns_status_and_gc(pods: Pods, spy: Spy) -> None:
    """End to end: crictl runp of a pod with bandwidth annotations and a DNS config on a 1.1.0
    network; crictl info shows NetworkReady follow the plugin's STATUS; a bad annotation is
    INVALID_ARGUMENT naming it; a restarted daemon runs GC with its pod as the valid attachment."""
    (pods.tmp / "cni" / "10-dockyard.conflist").write_text(json.dumps(conflist()))
    pod, _ = pods.run_pod("bw", annotations={"kubernetes.io/ingress-bandwidth": "10M",
                                             "kubernetes.io/egress-bandwidth": "1Mi"},
                          dns_config={"servers": ["10.96.0.10"], "searches": ["cluster.local"], "options": ["ndots:5"]})
    [add] = [c for c in spy.calls("ADD") if c["plugin"] == "dyspy2"]
    assert add["env"]["CNI_CONTAINERID"] == pod
    assert add["stdin"]["runtimeConfig"] == {
        "bandwidth": {"ingressRate": 10_000_000, "ingressBurst": 2**32 - 1,
                      "egressRate": 2**20, "egressBurst": 2**32 - 1},
        "dns": {"servers": ["10.96.0.10"], "searches": ["cluster.local"], "options": ["ndots:5"]},
    }
    assert json.loads(pods.crictl("inspectp", pod))["status"]["network"]["ip"] == ADDRESS.split("/")[0]

    def network_ready() -> dict[str, Any]:
        conditions = json.loads(pods.crictl("info"))["status"]["conditions"]
        return next(c for c in conditions if c["type"] == "NetworkReady")

    assert network_ready()["status"] is True
    spy.fail_status("no route to the fabric")
    condition = network_ready()
    assert condition["status"] is False and "no route to the fabric" in condition["message"]
    spy.fail_status(None)

    from cri_api.v1 import api_pb2
    from runtime_service_fixture import pod_config

    bad = pod_config("badbw", pods.logs / "badbw", annotations={"kubernetes.io/egress-bandwidth": "lots"})
    config = api_pb2.PodSandboxConfig()
    from google.protobuf import json_format

    json_format.ParseDict(bad, config)
    with pods.daemon.channel() as ch, pytest.raises(grpc.RpcError) as info:
        pods.daemon.runtime(ch).RunPodSandbox(api_pb2.RunPodSandboxRequest(config=config))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "config.annotations[kubernetes.io/egress-bandwidth]" in info.value.details()

    spy.log.unlink()
    pods.daemon.stop()
    pods.daemon.start()
    gc = spy.calls("GC")
    assert [c["plugin"] for c in gc] == ["dyspy1", "dyspy2"]
    assert gc[0]["stdin"]["cni.dev/valid-attachments"] == [{"containerID": pod, "ifname": "eth0"}]
