from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ImportOptions(_message.Message):
    __slots__ = ("platform", "base_name")
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    BASE_NAME_FIELD_NUMBER: _ClassVar[int]
    platform: str
    base_name: str
    def __init__(self, platform: _Optional[str] = ..., base_name: _Optional[str] = ...) -> None: ...

class ImportChunk(_message.Message):
    __slots__ = ("options", "data")
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    options: ImportOptions
    data: bytes
    def __init__(self, options: _Optional[_Union[ImportOptions, _Mapping]] = ..., data: _Optional[bytes] = ...) -> None: ...

class ImportedImage(_message.Message):
    __slots__ = ("id", "names", "manifest_digest", "size")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAMES_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_DIGEST_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    id: str
    names: _containers.RepeatedScalarFieldContainer[str]
    manifest_digest: str
    size: int
    def __init__(self, id: _Optional[str] = ..., names: _Optional[_Iterable[str]] = ..., manifest_digest: _Optional[str] = ..., size: _Optional[int] = ...) -> None: ...

class ImportResponse(_message.Message):
    __slots__ = ("images",)
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    images: _containers.RepeatedCompositeFieldContainer[ImportedImage]
    def __init__(self, images: _Optional[_Iterable[_Union[ImportedImage, _Mapping]]] = ...) -> None: ...

class ExportRequest(_message.Message):
    __slots__ = ("images",)
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    images: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, images: _Optional[_Iterable[str]] = ...) -> None: ...

class ExportChunk(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    def __init__(self, data: _Optional[bytes] = ...) -> None: ...

class Image(_message.Message):
    __slots__ = ("id", "repo_tags", "repo_digests", "size", "pinned")
    ID_FIELD_NUMBER: _ClassVar[int]
    REPO_TAGS_FIELD_NUMBER: _ClassVar[int]
    REPO_DIGESTS_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    PINNED_FIELD_NUMBER: _ClassVar[int]
    id: str
    repo_tags: _containers.RepeatedScalarFieldContainer[str]
    repo_digests: _containers.RepeatedScalarFieldContainer[str]
    size: int
    pinned: bool
    def __init__(self, id: _Optional[str] = ..., repo_tags: _Optional[_Iterable[str]] = ..., repo_digests: _Optional[_Iterable[str]] = ..., size: _Optional[int] = ..., pinned: _Optional[bool] = ...) -> None: ...

class ListImagesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListImagesResponse(_message.Message):
    __slots__ = ("images",)
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    images: _containers.RepeatedCompositeFieldContainer[Image]
    def __init__(self, images: _Optional[_Iterable[_Union[Image, _Mapping]]] = ...) -> None: ...

class RemoveImagesRequest(_message.Message):
    __slots__ = ("images",)
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    images: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, images: _Optional[_Iterable[str]] = ...) -> None: ...

class RemoveImagesResponse(_message.Message):
    __slots__ = ("removed", "not_found")
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    NOT_FOUND_FIELD_NUMBER: _ClassVar[int]
    removed: _containers.RepeatedScalarFieldContainer[str]
    not_found: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, removed: _Optional[_Iterable[str]] = ..., not_found: _Optional[_Iterable[str]] = ...) -> None: ...

class PullImageRequest(_message.Message):
    __slots__ = ("image", "platform", "username", "password")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    image: str
    platform: str
    username: str
    password: str
    def __init__(self, image: _Optional[str] = ..., platform: _Optional[str] = ..., username: _Optional[str] = ..., password: _Optional[str] = ...) -> None: ...

class PullImageResponse(_message.Message):
    __slots__ = ("image",)
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    image: Image
    def __init__(self, image: _Optional[_Union[Image, _Mapping]] = ...) -> None: ...

class Container(_message.Message):
    __slots__ = ("id", "name", "pod_id", "image", "image_id", "state", "created_at", "pid")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    POD_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    pod_id: str
    image: str
    image_id: str
    state: str
    created_at: int
    pid: int
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., pod_id: _Optional[str] = ..., image: _Optional[str] = ..., image_id: _Optional[str] = ..., state: _Optional[str] = ..., created_at: _Optional[int] = ..., pid: _Optional[int] = ...) -> None: ...

class ListContainersRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListContainersResponse(_message.Message):
    __slots__ = ("containers",)
    CONTAINERS_FIELD_NUMBER: _ClassVar[int]
    containers: _containers.RepeatedCompositeFieldContainer[Container]
    def __init__(self, containers: _Optional[_Iterable[_Union[Container, _Mapping]]] = ...) -> None: ...

class Pod(_message.Message):
    __slots__ = ("id", "name", "namespace", "uid", "state", "created_at", "runtime_handler", "ip")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    UID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_HANDLER_FIELD_NUMBER: _ClassVar[int]
    IP_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    namespace: str
    uid: str
    state: str
    created_at: int
    runtime_handler: str
    ip: str
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., namespace: _Optional[str] = ..., uid: _Optional[str] = ..., state: _Optional[str] = ..., created_at: _Optional[int] = ..., runtime_handler: _Optional[str] = ..., ip: _Optional[str] = ...) -> None: ...

class ListPodsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListPodsResponse(_message.Message):
    __slots__ = ("pods",)
    PODS_FIELD_NUMBER: _ClassVar[int]
    pods: _containers.RepeatedCompositeFieldContainer[Pod]
    def __init__(self, pods: _Optional[_Iterable[_Union[Pod, _Mapping]]] = ...) -> None: ...

class InfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class InfoResponse(_message.Message):
    __slots__ = ("version", "cri_socket", "admin_socket", "root_dir", "state_dir", "default_runtime", "runtime_handlers", "network_ready", "network_message", "image_fs_used_bytes", "image_fs_inodes_used", "image_fs_mountpoint", "images", "pods", "containers", "platform")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CRI_SOCKET_FIELD_NUMBER: _ClassVar[int]
    ADMIN_SOCKET_FIELD_NUMBER: _ClassVar[int]
    ROOT_DIR_FIELD_NUMBER: _ClassVar[int]
    STATE_DIR_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_RUNTIME_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_HANDLERS_FIELD_NUMBER: _ClassVar[int]
    NETWORK_READY_FIELD_NUMBER: _ClassVar[int]
    NETWORK_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FS_USED_BYTES_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FS_INODES_USED_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FS_MOUNTPOINT_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    PODS_FIELD_NUMBER: _ClassVar[int]
    CONTAINERS_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    version: str
    cri_socket: str
    admin_socket: str
    root_dir: str
    state_dir: str
    default_runtime: str
    runtime_handlers: _containers.RepeatedScalarFieldContainer[str]
    network_ready: bool
    network_message: str
    image_fs_used_bytes: int
    image_fs_inodes_used: int
    image_fs_mountpoint: str
    images: int
    pods: int
    containers: int
    platform: str
    def __init__(self, version: _Optional[str] = ..., cri_socket: _Optional[str] = ..., admin_socket: _Optional[str] = ..., root_dir: _Optional[str] = ..., state_dir: _Optional[str] = ..., default_runtime: _Optional[str] = ..., runtime_handlers: _Optional[_Iterable[str]] = ..., network_ready: _Optional[bool] = ..., network_message: _Optional[str] = ..., image_fs_used_bytes: _Optional[int] = ..., image_fs_inodes_used: _Optional[int] = ..., image_fs_mountpoint: _Optional[str] = ..., images: _Optional[int] = ..., pods: _Optional[int] = ..., containers: _Optional[int] = ..., platform: _Optional[str] = ...) -> None: ...
