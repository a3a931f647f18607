"""The ``io.kubernetes.cri.*`` annotations containerd puts on OCI specs, so
that runtime hooks and tools written for containerd see the same keys."""

from __future__ import annotations

CONTAINER_TYPE = "io.kubernetes.cri.container-type"
CONTAINER_TYPE_SANDBOX = "sandbox"
CONTAINER_TYPE_CONTAINER = "container"
SANDBOX_ID = "io.kubernetes.cri.sandbox-id"
SANDBOX_NAME = "io.kubernetes.cri.sandbox-name"
SANDBOX_NAMESPACE = "io.kubernetes.cri.sandbox-namespace"
SANDBOX_UID = "io.kubernetes.cri.sandbox-uid"
SANDBOX_LOG_DIR = "io.kubernetes.cri.sandbox-log-directory"
SANDBOX_CPU_PERIOD = "io.kubernetes.cri.sandbox-cpu-period"
SANDBOX_CPU_QUOTA = "io.kubernetes.cri.sandbox-cpu-quota"
SANDBOX_CPU_SHARES = "io.kubernetes.cri.sandbox-cpu-shares"
SANDBOX_MEMORY = "io.kubernetes.cri.sandbox-memory"
CONTAINER_NAME = "io.kubernetes.cri.container-name"
IMAGE_NAME = "io.kubernetes.cri.image-name"
