"""Pod sysctls: which namespace each belongs to, checked against the
namespaces the pod sandbox has.

Only namespaced sysctls can be set per pod (anything else would change the
host): ``net.*`` belongs to the network namespace, the System V IPC knobs and
``fs.mqueue.*`` to the IPC namespace, ``kernel.domainname`` to the UTS one.
kubelet decides which are safe and which the operator allowed as unsafe;
both kinds reach us and are applied the same way, provided the pod has the
namespace (a host-network pod cannot set ``net.*``).  The hostname has its
own field.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..errors import InvalidArgument

IPC_SYSCTLS = frozenset({"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
                         "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"})


def pod_sysctls(sysctls: Mapping[str, str], *, private_net: bool, private_ipc: bool,
                field: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for key in sorted(sysctls):
        here = f"{field}[{key!r}]"
        name = key.replace("/", ".")  # kubelet accepts net/ipv4/ip_forward spelling
        if name.startswith("net."):
            if not private_net:
                raise InvalidArgument(f"{here}: a network sysctl cannot be set in a pod on the host's network")
        elif name in IPC_SYSCTLS or name.startswith("fs.mqueue."):
            if not private_ipc:
                raise InvalidArgument(f"{here}: an IPC sysctl cannot be set in a pod in the host's IPC namespace")
        elif name == "kernel.domainname":
            if not private_net:
                raise InvalidArgument(f"{here}: needs the pod's own UTS namespace, which a host-network pod lacks")
        else:
            raise InvalidArgument(f"{here}: {name} is not namespaced; setting it would change the host")
        out[name] = sysctls[key]
    return out
