from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class DataChunk(_message.Message):
    __slots__ = ("data", "offset", "total_size")
    DATA_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    offset: int
    total_size: int
    def __init__(self, data: _Optional[bytes] = ..., offset: _Optional[int] = ..., total_size: _Optional[int] = ...) -> None: ...

class DataRequest(_message.Message):
    __slots__ = ("data_id", "capability", "task_id")
    DATA_ID_FIELD_NUMBER: _ClassVar[int]
    CAPABILITY_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    data_id: str
    capability: str
    task_id: str
    def __init__(self, data_id: _Optional[str] = ..., capability: _Optional[str] = ..., task_id: _Optional[str] = ...) -> None: ...

class DataLocation(_message.Message):
    __slots__ = ("data_id", "on_master", "peer_address", "peer_worker_id", "size", "sha256", "capability", "from_source")
    DATA_ID_FIELD_NUMBER: _ClassVar[int]
    ON_MASTER_FIELD_NUMBER: _ClassVar[int]
    PEER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    PEER_WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    CAPABILITY_FIELD_NUMBER: _ClassVar[int]
    FROM_SOURCE_FIELD_NUMBER: _ClassVar[int]
    data_id: str
    on_master: bool
    peer_address: str
    peer_worker_id: str
    size: int
    sha256: str
    capability: str
    from_source: bool
    def __init__(self, data_id: _Optional[str] = ..., on_master: _Optional[bool] = ..., peer_address: _Optional[str] = ..., peer_worker_id: _Optional[str] = ..., size: _Optional[int] = ..., sha256: _Optional[str] = ..., capability: _Optional[str] = ..., from_source: _Optional[bool] = ...) -> None: ...
