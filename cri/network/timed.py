"""A pod network that records how long CNI's ADD and DEL take and which fail
(``dockyard_cni_operation_*``, cri/metrics.py), around the real one (cni.py).

A wrapper rather than hooks inside cni.py: an operation is timed whole, as
the pod waits for it (every plugin of the conflist, the cache writes), and
cni.py stays about the CNI protocol."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol


class Network(Protocol):
    def status(self) -> tuple[bool, str, str]: ...

    async def setup(self, pod_id: str, netns: str, **kwargs: Any) -> Any: ...

    async def teardown(self, pod_id: str, netns: str, **kwargs: Any) -> None: ...


class CniMetrics(Protocol):
    def cni_operation(self, operation: str, seconds: float, ok: bool) -> None: ...


class TimedNetwork:
    def __init__(self, inner: Network, metrics: CniMetrics) -> None:
        self.inner = inner
        self.metrics = metrics

    def status(self) -> tuple[bool, str, str]:
        return self.inner.status()

    async def setup(self, pod_id: str, netns: str, *, k8s_namespace: str = "", k8s_name: str = "",
                    k8s_uid: str = "", port_mappings: Sequence[Mapping[str, Any]] = (),
                    bandwidth: Mapping[str, Any] | None = None, dns: Mapping[str, Any] | None = None) -> Any:
        began, ok = time.monotonic(), False
        try:
            result = await self.inner.setup(pod_id, netns, k8s_namespace=k8s_namespace, k8s_name=k8s_name,
                                            k8s_uid=k8s_uid, port_mappings=port_mappings, bandwidth=bandwidth,
                                            dns=dns)
            ok = True
            return result
        finally:
            self.metrics.cni_operation("ADD", time.monotonic() - began, ok)

    async def teardown(self, pod_id: str, netns: str, *, k8s_namespace: str = "", k8s_name: str = "",
                       k8s_uid: str = "", port_mappings: Sequence[Mapping[str, Any]] = (),
                       bandwidth: Mapping[str, Any] | None = None, dns: Mapping[str, Any] | None = None,
                       if_recorded: bool = False) -> None:
        began, ok = time.monotonic(), False
        try:
            await self.inner.teardown(pod_id, netns, k8s_namespace=k8s_namespace, k8s_name=k8s_name,
                                      k8s_uid=k8s_uid, port_mappings=port_mappings, bandwidth=bandwidth,
                                      dns=dns, if_recorded=if_recorded)
            ok = True
        finally:
            self.metrics.cni_operation("DEL", time.monotonic() - began, ok)

    def __getattr__(self, name: str) -> Any:
        # check(), cached_result() and the rest: untimed, straight to cni.py.
        return getattr(self.inner, name)
