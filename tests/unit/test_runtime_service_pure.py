"""Pure pieces of the RuntimeService: log path rule, stop signal, oom clamp, filters,
exit reasons, stats arithmetic, OCI resources, boot-id rule, runtime wrapper, stores."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from cri_api.v1 import api_pb2
from dockyard.cri import errors
from dockyard.cri.config import parse_config
from dockyard.cri.oci.resources import linux_resources
from dockyard.cri.restart import rebooted
from dockyard.cri.server.container_create import resolve_log_path
from dockyard.cri.server.container_list import container_matches
from dockyard.cri.image.store import ImageRecord
from dockyard.cri.server.container_status import exit_reason, reported_image
from dockyard.cri.server.container_stop import stop_signal_number
from dockyard.cri.server.container_update_resources import merge_resources
from dockyard.cri.server.exec_sync import exec_process
from dockyard.cri.server.sandbox_run import pause_oom_score_adj, port_mappings
from dockyard.cri.shims import unified_umount_wrapper
from dockyard.cri.stats import Sample, memory_usage, nano_cores, upper_dir
from dockyard.cri.store.container import Container, ContainerState, ContainerStore
from dockyard.cri.store.sandbox import Sandbox, SandboxStore


@pytest.mark.parametrize(("directory", "path", "expected"), [
    ("/var/log/pods/x", "c/0.log", "/var/log/pods/x/c/0.log"),
    ("/var/log/pods/x/", "c.log", "/var/log/pods/x/c.log"),
    ("/var/log/pods/x", "", ""),
    ("/var/log/pods/x", "../y/c.log", None),
    ("/var/log/pods/x", "/etc/passwd", None),
    ("/var/log/pods/x", "a/../../x2/c.log", None),
    ("/var/log/pods/x", ".", None),
    ("", "c.log", None),
])
def test_log_path_stays_inside_log_directory(directory: str, path: str, expected: str | None) -> None:
    """A container's log path must resolve inside the pod's log_directory."""
    if expected is None:
        with pytest.raises(errors.InvalidArgument):
            resolve_log_path(directory, path)
    else:
        assert resolve_log_path(directory, path) == expected


@pytest.mark.parametrize(("name", "number"), [
    ("", 15), ("SIGQUIT", 3), ("QUIT", 3), ("sigint", 2), ("9", 9), ("SIGRTMIN", 34),
])
def test_stop_signal(name: str, number: int) -> None:
    """The image's StopSignal, by name or number; SIGTERM when unset."""
    assert stop_signal_number(name) == number


@pytest.mark.parametrize("name", ["SIGNOPE", "0", "99"])
def test_bad_stop_signal(name: str) -> None:
    with pytest.raises(errors.InvalidArgument):
        stop_signal_number(name)


@pytest.mark.parametrize(("restrict", "own", "may_lower", "expected"), [
    (False, 0, True, -998),
    (True, 0, True, -998),
    (True, 0, False, 0),
    (True, -500, False, -500),
    (False, -999, False, -998),
    (False, 0, False, None),
])
def test_pause_oom_score_adj(restrict: bool, own: int, may_lower: bool, expected: int | None) -> None:
    """-998, clamped to the daemon's own under restrict_oom_score_adj, else a clear error when it cannot be set."""
    if expected is None:
        with pytest.raises(errors.FailedPrecondition, match="restrict_oom_score_adj"):
            pause_oom_score_adj(restrict, own, may_lower)
    else:
        assert pause_oom_score_adj(restrict, own, may_lower) == expected


def test_port_mappings_to_cni_capability() -> None:
    cfg = api_pb2.PodSandboxConfig(port_mappings=[
        api_pb2.PortMapping(protocol=api_pb2.UDP, container_port=53, host_port=5353, host_ip="127.0.0.1"),
        api_pb2.PortMapping(container_port=80),  # no host port: not mapped
    ])
    assert port_mappings(cfg) == [{"hostPort": 5353, "containerPort": 53, "protocol": "udp", "hostIP": "127.0.0.1"}]


def _container(**kw: object) -> Container:
    base: dict[str, object] = dict(id="abc123", name="n", sandbox_id="pod1", config_b64="", image_id="sha256:x",
                                   image_ref="busybox", image_repo_digest="", log_path="")
    base.update(kw)
    return Container(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(("kw", "reason"), [
    ({"state": ContainerState.RUNNING}, ""),
    ({"state": ContainerState.EXITED, "exit_code": 0}, "Completed"),
    ({"state": ContainerState.EXITED, "exit_code": 1}, "Error"),
    ({"state": ContainerState.EXITED, "exit_code": 137, "oom_killed": True}, "OOMKilled"),
    ({"state": ContainerState.EXITED, "exit_code": 255, "reason": "ShimDied"}, "ShimDied"),
])
def test_exit_reason(kw: dict[str, object], reason: str) -> None:
    assert exit_reason(_container(**kw)) == reason


_BUSYBOX = ImageRecord(id="sha256:x", repo_tags=("reg/busybox:1.37", "reg/busybox:latest"),
                       repo_digests=("reg/busybox@sha256:m",))


@pytest.mark.parametrize(("image", "expected"), [
    # kubelet creates with the image id: the status names the image's first
    # tag (kubelet shows it as the pod's containerStatuses[].image).
    (_BUSYBOX, ("reg/busybox:1.37", "reg/busybox@sha256:m")),
    (ImageRecord(id="sha256:x"), ("sha256:x", "sha256:x")),  # untagged: what create got
    (None, ("sha256:x", "sha256:x")),  # removed since
    (ImageRecord(id="sha256:y", repo_tags=("reg/other:1",)), ("sha256:x", "sha256:x")),
])
def test_reported_image(image: ImageRecord | None, expected: tuple[str, str]) -> None:
    """ContainerStatus names the image by its tag as containerd does, not by the id kubelet created it with."""
    c = _container(image_id="sha256:x", image_ref="sha256:x", image_repo_digest="sha256:x")
    assert reported_image(c, image) == expected


@pytest.mark.parametrize(("flt", "labels", "match"), [
    (None, {}, True),
    (api_pb2.ContainerFilter(id="abc"), {}, True),
    (api_pb2.ContainerFilter(id="abd"), {}, False),
    (api_pb2.ContainerFilter(pod_sandbox_id="pod"), {}, True),
    (api_pb2.ContainerFilter(state=api_pb2.ContainerStateValue(state=api_pb2.CONTAINER_RUNNING)), {}, True),
    (api_pb2.ContainerFilter(state=api_pb2.ContainerStateValue(state=api_pb2.CONTAINER_EXITED)), {}, False),
    (api_pb2.ContainerFilter(label_selector={"a": "1"}), {"a": "1", "b": "2"}, True),
    (api_pb2.ContainerFilter(label_selector={"a": "2"}), {"a": "1"}, False),
    # ListContainerStats' filter, the same rules without a state
    (api_pb2.ContainerStatsFilter(id="abc", pod_sandbox_id="pod"), {}, True),
    (api_pb2.ContainerStatsFilter(pod_sandbox_id="pox"), {}, False),
    (api_pb2.ContainerStatsFilter(label_selector={"a": "2"}), {"a": "1"}, False),
])
def test_container_filter(flt: api_pb2.ContainerFilter | None, labels: dict[str, str], match: bool) -> None:
    assert container_matches(_container(state=ContainerState.RUNNING), flt, labels) is match


@pytest.mark.parametrize(("prev", "cur", "cores"), [
    (None, Sample(10, 5), 0),
    (Sample(0, 0), Sample(1_000_000_000, 500_000_000), 500_000_000),
    (Sample(0, 0), Sample(2_000_000_000, 4_000_000_000), 2_000_000_000),
    (Sample(5, 10), Sample(5, 20), 0),  # no time passed
    (Sample(0, 10), Sample(5, 5), 0),  # counter went back (cgroup recreated)
])
def test_nano_cores(prev: Sample | None, cur: Sample, cores: int) -> None:
    assert nano_cores(prev, cur) == cores


@pytest.mark.parametrize(("raw", "usage", "expected"), [
    ({"total_inactive_file": 100, "total_rss": 7, "total_pgfault": 3, "total_pgmajfault": 1}, 1000, (1000, 900, 7, 3, 1)),
    ({"inactive_file": 100, "anon": 8, "pgfault": 4, "pgmajfault": 2}, 1000, (1000, 900, 8, 4, 2)),
    ({"total_inactive_file": 5000}, 1000, (1000, 0, 0, 0, 0)),
])
def test_memory_working_set(raw: dict[str, int], usage: int, expected: tuple[int, ...]) -> None:
    """Working set = usage - inactive file (v1 total_ or v2 names), never negative."""
    assert memory_usage({"memory": {"usage": {"usage": usage}, "raw": raw}}) == expected


def test_upper_dir() -> None:
    overlay = SimpleNamespace(type="overlay", source="overlay", options=("workdir=/w", "upperdir=/u", "lowerdir=/l"))
    bind = SimpleNamespace(type="bind", source="/s/fs", options=("rbind", "rw"))
    assert upper_dir([overlay]) == "/u"
    assert upper_dir([bind]) == "/s/fs"


def test_update_resources_only_set_values() -> None:
    r = api_pb2.LinuxContainerResources(cpu_quota=50000, cpu_period=100000, memory_limit_in_bytes=1 << 26)
    assert linux_resources(r, "linux") == {"cpu": {"quota": 50000, "period": 100000}, "memory": {"limit": 1 << 26}}
    assert linux_resources(api_pb2.LinuxContainerResources(), "linux") == {}


def test_exec_process_keeps_the_container_identity() -> None:
    spec = {"terminal": True, "args": ["sleep"], "env": ["A=1"], "cwd": "/w", "user": {"uid": 5, "gid": 5}}
    assert exec_process(spec, ["ls"]) == {"terminal": False, "args": ["ls"], "env": ["A=1"], "cwd": "/w",
                                          "user": {"uid": 5, "gid": 5}}


@pytest.mark.parametrize(("stored", "current", "expected"), [(None, "a", False), ("a", "a", False), ("a", "b", True)])
def test_reboot_rule(stored: str | None, current: str, expected: bool) -> None:
    assert rebooted(stored, current) is expected


def test_unified_umount_wrapper_execs_the_runtime() -> None:
    text = unified_umount_wrapper("/usr/bin/crun")
    assert text.startswith("#!/bin/sh\n")
    assert "unshare --mount --propagation unchanged" in text and "umount /sys/fs/cgroup/unified" in text
    # the umount must never propagate to the host's cgroup tree
    assert text.index("mount --make-rprivate /sys/fs/cgroup") < text.index("umount /sys/fs/cgroup/unified")
    assert text.rstrip().endswith('/usr/bin/crun "$@"')


@pytest.mark.parametrize(("data", "message"), [
    ({"runtimes": {"default": "x"}}, "runtimes.default"),
    ({"runtimes": {"handlers": {"a": {}}}}, "runtimes.handlers.a.binary"),
    ({"runtimes": {"handlers": {"a": {"binary": "rel/path"}}}}, "runtimes.handlers.a.binary"),
    ({"runtimes": {"handlers": {"default": {"binary": "/x"}}}}, "runtimes.handlers.default"),
    ({"runtimes": {"handlers": {"a": {"binary": "/x", "oci_version": "2"}}}}, "oci_version"),
    ({"cni": {"bin_dirs": []}}, "cni.bin_dirs"),
    ({"cni": {"conf_dir": "rel"}}, "cni.conf_dir"),
    ({"cgroup_parent": "/a/../b"}, "cgroup_parent"),
    ({"restrict_oom_score_adj": "yes"}, "restrict_oom_score_adj"),
])
def test_runtime_config_errors_name_the_key(data: dict[str, object], message: str) -> None:
    with pytest.raises(errors.InvalidArgument, match=message.replace(".", r"\.")):
        parse_config(data)


def test_runtime_handler_resolution() -> None:
    cfg = parse_config({"runtimes": {"default": "b", "handlers": {"a": {"binary": "/a"}, "b": {"binary": "/b"}}}})
    assert cfg.runtimes.resolve("")[0] == "b"
    assert cfg.runtimes.resolve("default")[0] == "b"
    assert cfg.runtimes.resolve("a")[1].binary == "/a"
    with pytest.raises(errors.InvalidArgument, match="unknown runtime handler 'c'"):
        cfg.runtimes.resolve("c")


def test_stores_round_trip_and_name_index(tmp_path: Path) -> None:
    """Records survive a reload once their save is awaited; a duplicate name names the holder;
    ids resolve by unique prefix; writes of one record land in call order."""
    cfg = api_pb2.PodSandboxConfig(metadata=api_pb2.PodSandboxMetadata(name="p", namespace="n", uid="u"))

    async def run() -> None:
        store = SandboxStore(str(tmp_path))
        s = Sandbox(id="aa11", name="p_n_u_0", config_b64=Sandbox.encode_config(cfg), runtime_handler="", handler="x")
        await store.add(s)
        with pytest.raises(errors.AlreadyExists, match="aa11"):
            store.add(Sandbox(id="bb22", name="p_n_u_0", config_b64="", runtime_handler="", handler="x"))
        again = SandboxStore(str(tmp_path))
        loaded = again.load()
        assert [x.to_json() for x in loaded] == [s.to_json()]
        assert again.get("aa").config.metadata.name == "p"
        cstore = ContainerStore(str(tmp_path))
        await cstore.add(_container(id="c1"))
        await cstore.add(_container(id="c2", name="m"))
        with pytest.raises(errors.InvalidArgument, match="ambiguous"):
            cstore.get("c")
        with pytest.raises(errors.NotFound):
            cstore.get("zz")
        await cstore.delete("c1")
        assert [c.id for c in ContainerStore(str(tmp_path)).load()] == ["c2"]
        assert json.loads((tmp_path / "containers" / "c2.json").read_text())["version"] == 1
        # Many unawaited saves then a delete and a save: the file ends as the last call left it.
        c3 = _container(id="c3", name="o")
        await cstore.add(c3)
        for n in range(20):
            c3.exit_code = n
            cstore.save(c3)
        cstore.delete("c3")
        await cstore.flush()
        assert not (tmp_path / "containers" / "c3.json").exists()
        for n in range(5):
            c3.exit_code = n
            cstore.save(c3)
        await cstore.flush()
        assert json.loads((tmp_path / "containers" / "c3.json").read_text())["record"]["exit_code"] == 4

    asyncio.run(run())


@pytest.mark.parametrize(("doc", "expected"), [
    ({"mountOptions": ["ro", "rro"], "linux": {"mountExtensions": {"idmap": {"enabled": True}}}}, (True, True)),
    ({"mountOptions": ["ro", "rro", "rbind"]}, (True, False)),           # runc 1.1.5
    ({"mountOptions": ["ro"], "linux": {"mountExtensions": {"idmap": {"enabled": False}}}}, (False, False)),
    ({"mountOptions": "rro"}, (False, False)),                            # malformed: not a list
    ({"linux": {"mountExtensions": {"idmap": {"enabled": "true"}}}}, (False, False)),
    (None, (False, False)),                                               # crun 1.8.1: no features command
    ([], (False, False)),
])
def test_handler_features_from_the_runtime_features_document(doc: object, expected: tuple[bool, bool]) -> None:
    from dockyard.cri.server.status import features_from

    assert features_from(doc) == expected


@pytest.mark.parametrize(("current", "update", "expected"), [
    ({}, {"memory": {"limit": 5}}, {"memory": {"limit": 5}}),
    # values of a section not in the update stay, as with the runtime's `update`
    ({"memory": {"limit": 5, "swap": 9}, "cpu": {"shares": 2}}, {"memory": {"limit": 7}},
     {"memory": {"limit": 7, "swap": 9}, "cpu": {"shares": 2}}),
    ({"cpu": {"shares": 2, "quota": 1}}, {"cpu": {"quota": 3}, "unified": {"a": "b"}},
     {"cpu": {"shares": 2, "quota": 3}, "unified": {"a": "b"}}),
    ({"devices": [{"allow": False}]}, {"devices": []}, {"devices": []}),
])
def test_merge_resources_into_a_bundle(current: dict[str, object], update: dict[str, object],
                                       expected: dict[str, object]) -> None:
    """UpdateContainerResources of a container with no task yet: one level deep, the update wins."""
    before = json.dumps(current)
    assert merge_resources(current, update) == expected
    assert json.dumps(current) == before  # the input is not changed


@pytest.mark.parametrize(("state", "pid", "task_pending"), [
    (ContainerState.CREATED, 0, True),     # CreateContainer's record: no task yet
    (ContainerState.CREATED, 42, False),   # a record from before the task order: its task exists
    (ContainerState.RUNNING, 42, False),
    (ContainerState.EXITED, 0, False),     # a start that failed
    (ContainerState.CREATING, 0, False),
])
def test_a_container_without_a_task_is_created_with_no_pid(state: ContainerState, pid: int, task_pending: bool) -> None:
    c = Container(id="c", name="n", sandbox_id="p", config_b64="", image_id="i", image_ref="r",
                  image_repo_digest="d", log_path="", state=state, pid=pid)
    assert c.task_pending is task_pending
    assert "task_pending" not in c.to_json()  # derived, never stored


class FakeShimClient:
    """A shim client that records calls and answers as a shim of ``protocol`` would."""

    def __init__(self, protocol: int, wait_result: dict[str, object]) -> None:
        self.version = protocol
        self.wait_result = wait_result
        self.calls: list[tuple[str, float | None]] = []

    async def protocol(self) -> int:
        return self.version

    async def call(self, method: str, params: dict[str, object], timeout: float | None = None) -> dict[str, object]:
        self.calls.append((method, timeout))
        return self.wait_result if method in ("wait", "exec_sync") else {}


def run_exec_sync(tmp_path: Path, client: FakeShimClient, timeout: int = 0) -> tuple[api_pb2.ExecSyncResponse | None,
                                                                                    list[str], Exception | None]:
    """ExecSync against ``client``: (answer, the calls made before it, its error); chores run after."""
    from dockyard.cri.bundle_facts import BundleFactsCache
    from dockyard.cri.server.exec_sync import exec_sync

    (tmp_path / "config.json").write_text(json.dumps({"process": {"args": ["sleep"], "env": [], "cwd": "/"}}))
    container = SimpleNamespace(id="c1", state=ContainerState.RUNNING, bundle=str(tmp_path), sandbox_id="p1")
    cri = SimpleNamespace(running_container=lambda _id, _refused="": container, shims=SimpleNamespace(client=lambda _pod: client),
                          bundle_facts=BundleFactsCache())
    pending: list[asyncio.Task[None]] = []
    cri.chore = lambda coro, name: pending.append(asyncio.get_running_loop().create_task(coro, name=name))

    async def scenario() -> tuple[api_pb2.ExecSyncResponse | None, list[str], Exception | None]:
        request = api_pb2.ExecSyncRequest(container_id="c1", cmd=["echo", "hi"], timeout=timeout)
        answer, error = None, None
        try:
            answer = await exec_sync(cri, request)  # type: ignore[arg-type]  # a SimpleNamespace stands in for CriService
        except errors.CriError as err:
            error = err
        before = [method for method, _ in client.calls]
        await asyncio.gather(*pending)
        return answer, before, error

    return asyncio.run(scenario())


EXITED = {"exit_status": 3, "exited_at": 1, "stdout": "aGk=", "stdout_dropped": 0, "stderr": "", "stderr_dropped": 0}


@pytest.mark.parametrize(("protocol", "timeout", "before", "after", "guard"), [
    # an older shim: exec, wait, answer; its delete of the exec record runs after the answer, and it does run
    (1, 0, ["exec", "wait"], ["exec", "wait", "delete"], None),
    (1, 5, ["exec", "wait"], ["exec", "wait", "delete"], 5.0),
    # protocol 2: one round trip, the shim keeps the deadline; ours is a guard 10 s later, or none
    (2, 0, ["exec_sync"], ["exec_sync"], None),
    (2, 5, ["exec_sync"], ["exec_sync"], 15.0),
])
def test_exec_sync_by_shim_protocol(tmp_path: Path, protocol: int, timeout: int, before: list[str],
                                    after: list[str], guard: float | None) -> None:
    client = FakeShimClient(protocol, EXITED)
    answer, made, error = run_exec_sync(tmp_path, client, timeout)
    assert error is None and answer is not None
    assert (answer.exit_code, answer.stdout) == (3, b"hi")
    assert made == before
    assert [method for method, _ in client.calls] == after
    assert dict(client.calls)["exec_sync" if protocol == 2 else "wait"] == guard


def test_exec_sync_timed_out_in_the_shim_is_deadline_exceeded(tmp_path: Path) -> None:
    """The shim killed the command at the deadline: DeadlineExceeded naming the command and the timeout."""
    client = FakeShimClient(2, {**EXITED, "exit_status": 137, "timed_out": True})
    answer, made, error = run_exec_sync(tmp_path, client, timeout=2)
    assert answer is None and made == ["exec_sync"]
    assert isinstance(error, errors.DeadlineExceeded)
    assert "['echo', 'hi']" in str(error) and "after 2s" in str(error)
