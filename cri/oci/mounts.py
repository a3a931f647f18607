"""CRI mounts, the pod's files and image volumes -> OCI ``mounts``.

Facts and choices (containerd's, unless said otherwise):

* A CRI mount is a recursive bind (``rbind``): a volume that itself has
  mounts below it shows them.  Its propagation becomes ``rprivate``
  (PRIVATE), ``rslave`` (HOST_TO_CONTAINER) or ``rshared`` (BIDIRECTIONAL).
  A slave or shared mount only receives events if the container's root is
  not private, so the rootfs propagation is raised to ``rslave`` or
  ``rshared`` to match (:func:`rootfs_propagation`).
* ``recursive_read_only`` becomes ``rro`` (mount_setattr(AT_RECURSIVE),
  Linux 5.12); it is refused unless the mount is also ``readonly`` and
  PRIVATE, since a read-only flag on a shared or slave tree would be undone
  by propagated mounts.
* ``uidMappings``/``gidMappings`` turn into the mount's own idmap; the
  runtime makes an idmapped bind from them.
* ``selinux_relabel`` is accepted and needs no mount option: relabelling is
  the job of an SELinux host, which this one is not.
* The pod's /etc/hostname, /etc/hosts and /etc/resolv.conf are bound from
  the sandbox's files unless the CRI config mounts that path itself (kubelet
  mounts /etc/hosts for host-network pods); they are read-only when the
  rootfs is.  /dev/shm is the sandbox's shm mount, or the host's /dev/shm
  for a pod in the host's IPC namespace (POSIX shared memory lives there,
  so sharing host IPC means sharing it; containerd and docker do the same).
* An image volume (a mount with ``image`` set) binds the image's files,
  which cri/image_mounts.py mounted read-only from the image's snapshot; it
  is read-only whatever ``readonly`` says.
* Image volumes (``VOLUME`` in the image config) get an anonymous
  directory each, as containerd does: the caller creates it under the
  container's directory and copies the image's content at that path into
  it, and it is bound read-write.  A CRI mount at the same path wins.
* Defaults (:func:`dockyard.cri.oci.defaults.default_mounts`) are dropped
  when a CRI mount takes their destination, and every default under /dev
  goes when /dev itself is mounted.  The extra mounts are stable-sorted by
  depth, so a parent is mounted before a child.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from cri_api.v1 import api_pb2

from ..errors import InvalidArgument
from .idmap import oci_idmaps

PathExists = Callable[[str], bool]

ETC_HOSTNAME = "/etc/hostname"
ETC_HOSTS = "/etc/hosts"
ETC_RESOLV = "/etc/resolv.conf"
DEV_SHM = "/dev/shm"

_PROPAGATION = {
    api_pb2.PROPAGATION_PRIVATE: "rprivate",
    api_pb2.PROPAGATION_HOST_TO_CONTAINER: "rslave",
    api_pb2.PROPAGATION_BIDIRECTIONAL: "rshared",
}


@dataclass(frozen=True, slots=True)
class ImageVolume:
    """An anonymous volume the caller must create (``host_path``, seeded
    from the image's content at ``container_path``) before the container starts."""

    container_path: str
    host_path: str


def clean_destination(path: str, field: str) -> str:
    if not path:
        raise InvalidArgument(f"{field}: must not be empty")
    if not path.startswith("/"):
        raise InvalidArgument(f"{field}: {path!r} must be an absolute path")
    return posixpath.normpath(path).replace("//", "/")


def cri_mount(mount: api_pb2.Mount, field: str, host_path_exists: PathExists,
              image_source: str | None = None) -> dict[str, Any]:
    """One CRI mount as an OCI bind mount; errors name ``field.<key>``.  An
    image volume binds ``image_source``, where its image is mounted."""
    if mount.HasField("image") and mount.image.image:
        return image_mount(mount, field, image_source)
    dest = clean_destination(mount.container_path, f"{field}.container_path")
    if not mount.host_path:
        raise InvalidArgument(f"{field}.host_path: must not be empty")
    if not mount.host_path.startswith("/"):
        raise InvalidArgument(f"{field}.host_path: {mount.host_path!r} must be an absolute path")
    if not host_path_exists(mount.host_path):
        raise InvalidArgument(f"{field}.host_path: {mount.host_path} does not exist")
    propagation = _PROPAGATION.get(mount.propagation)
    if propagation is None:
        raise InvalidArgument(f"{field}.propagation: unknown value {mount.propagation}")
    options = ["rbind", propagation, "ro" if mount.readonly else "rw"]
    if mount.recursive_read_only:
        if not mount.readonly:
            raise InvalidArgument(f"{field}.recursive_read_only: needs readonly")
        if mount.propagation != api_pb2.PROPAGATION_PRIVATE:
            raise InvalidArgument(f"{field}.recursive_read_only: needs PROPAGATION_PRIVATE")
        options.append("rro")
    out: dict[str, Any] = {"destination": dest, "type": "bind", "source": mount.host_path, "options": options}
    if len(mount.uidMappings) or len(mount.gidMappings):
        if not (len(mount.uidMappings) and len(mount.gidMappings)):
            raise InvalidArgument(f"{field}: uidMappings and gidMappings must be given together")
        out["uidMappings"] = oci_idmaps(mount.uidMappings, f"{field}.uidMappings")
        out["gidMappings"] = oci_idmaps(mount.gidMappings, f"{field}.gidMappings")
    return out


def image_mount(mount: api_pb2.Mount, field: str, image_source: str | None) -> dict[str, Any]:
    """An image volume (cri/image_mounts.py mounted the image at ``image_source``): always
    read-only and private; a host path has no meaning for it."""
    dest = clean_destination(mount.container_path, f"{field}.container_path")
    if image_source is None:
        raise InvalidArgument(f"{field}.image: the image {mount.image.image!r} is not mounted for this container")
    if mount.host_path:
        raise InvalidArgument(f"{field}.host_path: an image volume takes no host path")
    options = ["rbind", "rprivate", "ro"] + (["rro"] if mount.recursive_read_only else [])
    return {"destination": dest, "type": "bind", "source": image_source, "options": options}


def rootfs_propagation(mounts: Iterable[api_pb2.Mount]) -> str:
    """``rshared`` if any mount is BIDIRECTIONAL, else ``rslave`` if any is
    HOST_TO_CONTAINER, else "" (the runtime's default, rprivate)."""
    kinds = {m.propagation for m in mounts}
    if api_pb2.PROPAGATION_BIDIRECTIONAL in kinds:
        return "rshared"
    if api_pb2.PROPAGATION_HOST_TO_CONTAINER in kinds:
        return "rslave"
    return ""


def file_bind(dest: str, source: str, *, readonly: bool) -> dict[str, Any]:
    return {"destination": dest, "type": "bind", "source": source,
            "options": ["rbind", "rprivate", "ro" if readonly else "rw"]}


def shm_mount(shm_path: str, host_ipc: bool) -> dict[str, Any]:
    """The pod's /dev/shm; see the module docstring for host IPC."""
    from .defaults import private_shm_mount

    if host_ipc:
        return file_bind(DEV_SHM, DEV_SHM, readonly=False)
    if not shm_path:
        return private_shm_mount()
    return file_bind(DEV_SHM, shm_path, readonly=False)


def image_volumes(volumes: Sequence[str], taken: Iterable[str], volumes_dir: str) -> list[ImageVolume]:
    """An anonymous directory per image volume not already a CRI mount.
    The directory name is a hash of the path: stable across retries of the
    same create, unique within the container."""
    taken_set = set(taken)
    out = []
    for raw in volumes:
        if not raw.startswith("/"):
            continue  # docker ignores relative VOLUME entries too
        dest = posixpath.normpath(raw)
        if dest in taken_set or dest == "/":
            continue
        taken_set.add(dest)
        name = hashlib.sha256(dest.encode()).hexdigest()[:16]
        out.append(ImageVolume(dest, os.path.join(volumes_dir, name)))
    return out


def _depth(dest: str) -> int:
    return len([p for p in dest.split("/") if p])


def merge(defaults: list[dict[str, Any]], extra: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Defaults not overridden by ``extra``, then ``extra`` sorted by depth."""
    targets = {m["destination"] for m in extra}
    dev_taken = "/dev" in targets

    def overridden(dest: str) -> bool:
        return dest in targets or (dev_taken and dest.startswith("/dev/"))

    kept = [m for m in defaults if not overridden(m["destination"])]
    return kept + sorted(extra, key=lambda m: _depth(m["destination"]))
