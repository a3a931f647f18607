"""CRI LinuxContainerResources -> OCI linux.resources: every value the kernel
would refuse is InvalidArgument naming its CRI field (it was a cgroup write
failing in the runtime, answered INTERNAL)."""

from __future__ import annotations

from typing import Any

import pytest

from cri_messages import res
from dockyard.cri.errors import InvalidArgument
from dockyard.cri.node_facts import hugepage_size_name
from dockyard.cri.oci.resources import NodeResources, linux_resources, parse_id_list

NODE = NodeResources(cgroup_v2=False, cpus=frozenset({0, 1}), mems=frozenset({0}),
                     hugepage_sizes=frozenset({"2MB", "1GB"}))
V2_NODE = NodeResources(cgroup_v2=True, cpus=NODE.cpus, mems=NODE.mems, hugepage_sizes=NODE.hugepage_sizes)


@pytest.mark.parametrize(("fields", "node", "named"), [
    ({"cpu_shares": -1}, None, "linux.cpu_shares: -1 is outside"),
    ({"cpu_shares": 262145}, None, "linux.cpu_shares: 262145"),
    ({"cpu_period": 7}, None, "linux.cpu_period: 7 us is outside 1000..1000000"),
    ({"cpu_period": 1_000_001}, None, "linux.cpu_period"),
    ({"cpu_period": -5}, None, "linux.cpu_period"),
    ({"cpu_quota": 999}, None, "linux.cpu_quota: 999"),
    ({"cpu_quota": 1 << 44}, None, "linux.cpu_quota"),
    ({"cpuset_cpus": "a\0b"}, None, "linux.cpuset_cpus: 'a\\x00b' is not a list"),
    ({"cpuset_cpus": "3-1"}, None, "linux.cpuset_cpus: '3-1'"),
    ({"cpuset_cpus": "0-99999999"}, None, "linux.cpuset_cpus: '0-99999999'"),
    ({"cpuset_cpus": "0,5"}, NODE, "linux.cpuset_cpus: CPUs 5 not online"),
    ({"cpuset_mems": "1"}, NODE, "linux.cpuset_mems: memory nodes 1 not online"),
    ({"cpuset_mems": "a" * 10000}, None, "linux.cpuset_mems: 'aaaa"),
    ({"memory_limit_in_bytes": -1}, None, "linux.memory_limit_in_bytes"),
    ({"memory_swap_limit_in_bytes": 12159533}, None, "linux.memory_swap_limit_in_bytes: 12159533 with no memory limit"),
    ({"memory_limit_in_bytes": 64 << 20, "memory_swap_limit_in_bytes": 32 << 20}, None,
     "linux.memory_swap_limit_in_bytes: 33554432 is below the memory limit"),
    ({"hugepage_limits": [("", 1)]}, None, "linux.hugepage_limits[0].page_size: '' is not a size"),
    ({"hugepage_limits": [("2MB", 1), ("3XB", 1)]}, None, "linux.hugepage_limits[1].page_size"),
    ({"hugepage_limits": [("64KB", 1)]}, NODE, "linux.hugepage_limits[0].page_size: this node has no 64KB"),
    ({"unified": {"memory.high": "1"}}, NODE, "linux.unified: cgroup v2 settings, but this node's cgroups are v1"),
    ({"unified": {"../cgroup.procs": "1"}}, V2_NODE, "linux.unified: '../cgroup.procs' is not a cgroup v2 file"),
    ({"unified": {"memory.high": "1\n2"}}, V2_NODE, "linux.unified[memory.high]"),
])
def test_refused(fields: dict[str, Any], node: NodeResources | None, named: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        linux_resources(res(**fields), "linux", node)
    assert str(info.value).startswith(named), str(info.value)
    assert len(str(info.value)) < 400


@pytest.mark.parametrize(("fields", "node", "expected"), [
    ({}, NODE, {}),
    ({"cpu_shares": 1}, NODE, {"cpu": {"shares": 2}}),  # the kernel's minimum
    ({"cpu_quota": -5, "cpu_period": 100000}, NODE, {"cpu": {"quota": -1, "period": 100000}}),
    ({"cpu_quota": 50000, "cpuset_cpus": "0-1", "cpuset_mems": "0"}, NODE,
     {"cpu": {"quota": 50000, "cpus": "0-1", "mems": "0"}}),
    ({"hugepage_limits": [("2MB", 4 << 21)]}, NODE, {"hugepageLimits": [{"pageSize": "2MB", "limit": 4 << 21}]}),
    ({"unified": {"memory.high": "max", "pids.max": "10"}}, V2_NODE, {"unified": {"memory.high": "max", "pids.max": "10"}}),
    ({"cpuset_cpus": "7"}, None, {"cpu": {"cpus": "7"}}),  # no node facts: only the syntax is checked
])
def test_accepted(fields: dict[str, Any], node: NodeResources | None, expected: dict[str, Any]) -> None:
    assert linux_resources(res(**fields), "linux", node) == expected


@pytest.mark.parametrize(("text", "ids"), [("0", {0}), ("0-3,5", {0, 1, 2, 3, 5}), ("1,1", {1})])
def test_parse_id_list(text: str, ids: set[int]) -> None:
    assert parse_id_list(text, "f") == ids


@pytest.mark.parametrize(("dirname", "name"), [
    ("hugepages-2048kB", "2MB"), ("hugepages-1048576kB", "1GB"), ("hugepages-64kB", "64KB"), ("other", None),
])
def test_hugepage_size_name(dirname: str, name: str | None) -> None:
    assert hugepage_size_name(dirname) == name


def test_memory_limit_below_what_a_container_starts_in() -> None:
    with pytest.raises(InvalidArgument) as info:
        linux_resources(res(memory_limit_in_bytes=255), "config.linux.resources", NODE)
    assert str(info.value).startswith("config.linux.resources.memory_limit_in_bytes: 255 is below 12582912 bytes")
    assert linux_resources(res(memory_limit_in_bytes=12 << 20), "r", NODE) == {"memory": {"limit": 12 << 20}}
