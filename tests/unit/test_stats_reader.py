"""The daemon's lean stats path: the bundle facts read once, and the cgroup
reader that reads only what CRI needs, against fake cgroup trees."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from dockyard.cri.bundle_facts import BundleFactsCache, facts_of
from dockyard.cri.stats import (CgroupReader, StatsSampler, cpu_usage, io_message, memory_message, parse_flat_keyed,
                                network_message, parse_int, pressure_message)


@pytest.mark.parametrize("spec, want", [
    ({}, ("", None, 0, 0, (), False)),
    ({"linux": {"cgroupsPath": "/k/pod1/c1"}, "process": {"args": ["a"], "user": {"uid": 5, "gid": 6}}},
     ("/k/pod1/c1", {"args": ["a"], "user": {"uid": 5, "gid": 6}}, 5, 6, (), True)),
    ({"process": {"user": {"uid": 1, "gid": 2, "additionalGids": [3, 4]}}},
     ("", {"user": {"uid": 1, "gid": 2, "additionalGids": [3, 4]}}, 1, 2, (3, 4), True)),
    ({"process": {"user": {"uid": "x"}}}, ("", {"user": {"uid": "x"}}, 0, 0, (), False)),
    ([], ("", None, 0, 0, (), False)),
])
def test_facts_of(spec: Any, want: tuple[Any, ...]) -> None:
    f = facts_of(spec)
    assert (f.cgroups_path, f.process, f.uid, f.gid, f.additional_gids, f.has_user) == want


def test_bundle_facts_are_read_once_and_forgotten(tmp_path: Path) -> None:
    """The cache answers from memory after the first read, until forget()."""
    (tmp_path / "config.json").write_text(json.dumps({"linux": {"cgroupsPath": "/a/b"}}))
    cache = BundleFactsCache()
    assert cache.get("c1", str(tmp_path)).cgroups_path == "/a/b"  # type: ignore[union-attr]
    (tmp_path / "config.json").write_text(json.dumps({"linux": {"cgroupsPath": "/changed"}}))
    assert cache.get("c1", str(tmp_path)).cgroups_path == "/a/b"  # type: ignore[union-attr]
    cache.forget("c1")
    assert cache.get("c1", str(tmp_path)).cgroups_path == "/changed"  # type: ignore[union-attr]
    assert cache.get("c2", str(tmp_path / "missing")) is None
    assert len(cache) == 1


@pytest.mark.parametrize("text, want", [(None, 0), ("", 0), ("12\n", 12), ("max\n", (1 << 64) - 1)])
def test_parse_int(text: str | None, want: int) -> None:
    assert parse_int(text) == want


def test_parse_flat_keyed() -> None:
    assert parse_flat_keyed("a 1\nb 2\nbad\nc x\n") == {"a": 1, "b": 2}


def _v1_tree(root: Path, cgroup: str, files: dict[str, dict[str, str]]) -> str:
    lines = []
    for n, controller in enumerate(("cpu", "cpuacct", "memory", "pids")):
        (root / controller).mkdir(parents=True, exist_ok=True)
        lines.append(f"{30 + n} 25 0:{26 + n} / {root / controller} rw,nosuid - cgroup cgroup rw,{controller}")
        d = root / controller / cgroup.strip("/")
        if controller in files:
            d.mkdir(parents=True)
            for name, text in files[controller].items():
                (d / name).write_text(text)
    lines.append(f"40 25 0:40 / {root / 'unrelated'} rw - ext4 /dev/vda rw")
    return "\n".join(lines) + "\n"


def _v2_tree(root: Path, cgroup: str, files: dict[str, str]) -> str:
    d = root / cgroup.strip("/")
    d.mkdir(parents=True)
    for name, text in files.items():
        (d / name).write_text(text)
    return f"30 25 0:26 / {root} rw,nosuid - cgroup2 cgroup2 rw\n"


def test_reader_v1_reads_cpu_memory_pids(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    mountinfo = _v1_tree(root, "/k/pod1/c1", {
        "cpuacct": {"cpuacct.usage": "5000\n"},
        "memory": {"memory.usage_in_bytes": "300\n", "memory.limit_in_bytes": "9223372036854771712\n",
                   "memory.stat": "total_inactive_file 100\ntotal_rss 50\n"},
        "pids": {"pids.current": "3\n"},
    })
    reader = CgroupReader(str(root), mountinfo)
    assert reader.read("/k/pod1/c1", "c1") == {
        "cpu": {"usage": {"total": 5000}},
        "memory": {"usage": {"usage": 300, "limit": 9223372036854771712},
                   "raw": {"total_inactive_file": 100, "total_rss": 50}},
        "pids": {"current": 3},
    }


def test_reader_v1_missing_cgroup_is_none(tmp_path: Path) -> None:
    """A removed container's cgroup: None, as the stats RPCs expect."""
    root = tmp_path / "cg"
    reader = CgroupReader(str(root), _v1_tree(root, "/k/pod1/c1", {}))
    assert reader.read("/k/pod1/c1", "c1") is None


def test_reader_v2(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    mountinfo = _v2_tree(root, "/k/pod1/c1", {
        "cpu.stat": "usage_usec 7\nuser_usec 5\n", "memory.current": "400\n", "memory.max": "max\n",
        "memory.stat": "inactive_file 10\nanon 20\n", "pids.current": "2\n"})
    reader = CgroupReader(str(root), mountinfo)
    assert reader.read("/k/pod1/c1", "c1") == {
        "cpu": {"usage": {"total": 7000}},
        "memory": {"usage": {"usage": 400, "limit": (1 << 64) - 1}, "raw": {"inactive_file": 10, "anon": 20}},
        "pids": {"current": 2},
    }


def test_sampler_batches_and_rates(tmp_path: Path) -> None:
    """sample_many: new objects get a second sample after the pause (a real rate);
    a missing cgroup gives None; forget drops the object's previous sample."""
    root = tmp_path / "cg"
    mountinfo = _v1_tree(root, "/k/p/c1", {"cpuacct": {"cpuacct.usage": "1000\n"}})
    sampler = StatsSampler(CgroupReader(str(root), mountinfo))
    usage = root / "cpuacct" / "k" / "p" / "c1" / "cpuacct.usage"

    async def scenario() -> list[Any]:
        first = await sampler.sample_many([("/k/p/c1", "c1"), ("/k/p/gone", "gone")])
        usage.write_text("1000000001\n")
        second = await sampler.sample_many([("/k/p/c1", "c1")])
        return [first, second]

    first, second = asyncio.run(scenario())
    assert first[0][0] is not None and first[0][2] == 0  # unchanged usage between the two first samples
    assert first[1] == (None, first[1][1], 0)
    assert second[0][2] > 0
    sampler.forget("c1")
    assert "c1" not in sampler._prev


@pytest.mark.parametrize(("path", "cgroup"), [
    ("dy-pod1.slice:dockyard:c1", "/dy.slice/dy-pod1.slice/dockyard-c1.scope"),  # a container's scope
    ("dy-pod1.slice", "/dy.slice/dy-pod1.slice"),  # the daemon's pod slice, by name
    ("/kubepods.slice/kubepods-pod1.slice", "/kubepods.slice/kubepods-pod1.slice"),  # kubelet's, by path
])
def test_reader_v2_systemd_driver(tmp_path: Path, path: str, cgroup: str) -> None:
    """The systemd driver's paths are read where systemd puts their units (slices nest by name)."""
    root = tmp_path / "cg"
    mountinfo = _v2_tree(root, cgroup, {"cpu.stat": "usage_usec 7\n", "memory.current": "11\n", "pids.current": "2\n"})
    stats = CgroupReader(str(root), mountinfo).read(path, "c1")
    assert stats is not None and stats["cpu"]["usage"]["total"] == 7000 and stats["pids"]["current"] == 2


PRESSURE = ("some avg10=1.50 avg60=0.25 avg300=0.00 total=123456\n"
            "full avg10=0.00 avg60=0.00 avg300=0.00 total=7\n")


def test_pressure_message() -> None:
    """A cgroup2 pressure file becomes CRI PsiStats: percentages and the stall total in microseconds."""
    psi = pressure_message(PRESSURE)
    assert psi is not None
    assert (psi.Some.Total, psi.Some.Avg10, psi.Some.Avg60, psi.Some.Avg300) == (123456, 1.5, 0.25, 0.0)
    assert psi.Full.Total == 7 and psi.HasField("Full")
    assert pressure_message(None) is None
    half = pressure_message("some avg10=0.00 avg60=0.00 avg300=0.00 total=3\nfull garbage\n")
    assert half is not None and half.Some.Total == 3 and not half.HasField("Full")


def test_reader_hybrid_reads_pressure_from_the_unified_hierarchy(tmp_path: Path) -> None:
    """On a hybrid host the container's cgroup2 directory (<root>/unified/...) carries its
    pressure files; ContainerStats and PodSandboxStats report them as cpu/memory/io psi (kubelet's
    Summary API shows them, and the node e2e spec requires them where the kernel has PSI)."""
    root = tmp_path / "cg"
    mountinfo = _v1_tree(root, "/k/pod1/c1", {"cpuacct": {"cpuacct.usage": "5000\n"}})
    unified = root / "unified"
    (unified / "k/pod1/c1").mkdir(parents=True)
    for resource in ("cpu", "memory", "io"):
        (unified / "k/pod1/c1" / f"{resource}.pressure").write_text(PRESSURE)
    mountinfo += f"50 25 0:50 / {unified} rw,nosuid - cgroup2 cgroup2 rw\n"
    stats = CgroupReader(str(root), mountinfo).read("/k/pod1/c1", "c1")
    assert stats is not None and set(stats["psi"]) == {"cpu", "memory", "io"}
    assert cpu_usage(stats, 1, 0).psi.Some.Total == 123456
    assert memory_message(stats, 1).psi.Full.Total == 7
    io = io_message(stats, 1)
    assert io is not None and io.psi.Some.Avg10 == 1.5
    # none on a host without cgroup2: no psi, no io message
    plain_root = tmp_path / "cg2"
    plain = CgroupReader(str(plain_root), _v1_tree(plain_root, "/k/pod1/c1", {"cpuacct": {"cpuacct.usage": "1\n"}}))
    plain_stats = plain.read("/k/pod1/c1", "c1")
    assert plain_stats is not None and "psi" not in plain_stats
    assert io_message(plain_stats, 1) is None and not cpu_usage(plain_stats, 1, 0).HasField("psi")


def _counters(n: int) -> dict[str, int]:
    return {"rx_bytes": n, "rx_errors": 0, "tx_bytes": 2 * n, "tx_errors": 0}


@pytest.mark.parametrize(("names", "default", "listed"), [
    (["eth0", "lo"], "eth0", ["eth0"]),
    (["eth0", "net1", "lo"], "eth0", ["eth0", "net1"]),
    (["net1", "net2"], "net1", ["net1", "net2"]),  # no eth0: the first
    (["lo"], "", []),
])
def test_network_message_lists_every_interface(names: list[str], default: str, listed: list[str]) -> None:
    """interfaces lists every interface but lo, the default one included (kubelet's Summary API
    takes the pod's network.interfaces from it); default_interface is eth0, else the first."""
    usage = network_message({name: _counters(i + 1) for i, name in enumerate(names)}, 5)
    assert usage is not None
    assert [i.name for i in usage.interfaces] == listed
    assert usage.default_interface.name == default
    assert network_message(None, 5) is None
