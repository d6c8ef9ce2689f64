from runsurge_proto import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TaskInput(_message.Message):
    __slots__ = ("name", "data_id", "size")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DATA_ID_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    name: str
    data_id: str
    size: int
    def __init__(self, name: _Optional[str] = ..., data_id: _Optional[str] = ..., size: _Optional[int] = ...) -> None: ...

class ExpectedOutput(_message.Message):
    __slots__ = ("name", "upload_to_master")
    NAME_FIELD_NUMBER: _ClassVar[int]
    UPLOAD_TO_MASTER_FIELD_NUMBER: _ClassVar[int]
    name: str
    upload_to_master: bool
    def __init__(self, name: _Optional[str] = ..., upload_to_master: _Optional[bool] = ...) -> None: ...

class TaskLimits(_message.Message):
    __slots__ = ("memory_bytes", "cpus", "timeout_s", "output_bytes", "output_files")
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    CPUS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_BYTES_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FILES_FIELD_NUMBER: _ClassVar[int]
    memory_bytes: int
    cpus: int
    timeout_s: float
    output_bytes: int
    output_files: int
    def __init__(self, memory_bytes: _Optional[int] = ..., cpus: _Optional[int] = ..., timeout_s: _Optional[float] = ..., output_bytes: _Optional[int] = ..., output_files: _Optional[int] = ...) -> None: ...

class AssignTaskRequest(_message.Message):
    __slots__ = ("task_id", "job_id", "script_data_id", "script_name", "inputs", "outputs", "collect_all_outputs", "limits", "attempt", "environment_id", "environment_wheels")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    SCRIPT_DATA_ID_FIELD_NUMBER: _ClassVar[int]
    SCRIPT_NAME_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    COLLECT_ALL_OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    ENVIRONMENT_ID_FIELD_NUMBER: _ClassVar[int]
    ENVIRONMENT_WHEELS_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    job_id: str
    script_data_id: str
    script_name: str
    inputs: _containers.RepeatedCompositeFieldContainer[TaskInput]
    outputs: _containers.RepeatedCompositeFieldContainer[ExpectedOutput]
    collect_all_outputs: bool
    limits: TaskLimits
    attempt: int
    environment_id: str
    environment_wheels: _containers.RepeatedCompositeFieldContainer[TaskInput]
    def __init__(self, task_id: _Optional[str] = ..., job_id: _Optional[str] = ..., script_data_id: _Optional[str] = ..., script_name: _Optional[str] = ..., inputs: _Optional[_Iterable[_Union[TaskInput, _Mapping]]] = ..., outputs: _Optional[_Iterable[_Union[ExpectedOutput, _Mapping]]] = ..., collect_all_outputs: _Optional[bool] = ..., limits: _Optional[_Union[TaskLimits, _Mapping]] = ..., attempt: _Optional[int] = ..., environment_id: _Optional[str] = ..., environment_wheels: _Optional[_Iterable[_Union[TaskInput, _Mapping]]] = ...) -> None: ...

class AssignTaskResponse(_message.Message):
    __slots__ = ("accepted", "reason")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    accepted: bool
    reason: str
    def __init__(self, accepted: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...

class AssignTasksRequest(_message.Message):
    __slots__ = ("tasks",)
    TASKS_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[AssignTaskRequest]
    def __init__(self, tasks: _Optional[_Iterable[_Union[AssignTaskRequest, _Mapping]]] = ...) -> None: ...

class AssignTasksResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[AssignTaskResponse]
    def __init__(self, results: _Optional[_Iterable[_Union[AssignTaskResponse, _Mapping]]] = ...) -> None: ...

class NotifyDataRequest(_message.Message):
    __slots__ = ("task_id", "location")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    location: _common_pb2.DataLocation
    def __init__(self, task_id: _Optional[str] = ..., location: _Optional[_Union[_common_pb2.DataLocation, _Mapping]] = ...) -> None: ...

class NotifyDataResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WorkerStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WorkerStatus(_message.Message):
    __slots__ = ("worker_id", "running_task_ids", "free_slots", "memory_used_bytes", "cached_data_ids")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    RUNNING_TASK_IDS_FIELD_NUMBER: _ClassVar[int]
    FREE_SLOTS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_USED_BYTES_FIELD_NUMBER: _ClassVar[int]
    CACHED_DATA_IDS_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    running_task_ids: _containers.RepeatedScalarFieldContainer[str]
    free_slots: int
    memory_used_bytes: int
    cached_data_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, worker_id: _Optional[str] = ..., running_task_ids: _Optional[_Iterable[str]] = ..., free_slots: _Optional[int] = ..., memory_used_bytes: _Optional[int] = ..., cached_data_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class CancelTaskRequest(_message.Message):
    __slots__ = ("task_id",)
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    def __init__(self, task_id: _Optional[str] = ...) -> None: ...

class CancelTaskResponse(_message.Message):
    __slots__ = ("found",)
    FOUND_FIELD_NUMBER: _ClassVar[int]
    found: bool
    def __init__(self, found: _Optional[bool] = ...) -> None: ...

class DeleteDataRequest(_message.Message):
    __slots__ = ("data_ids",)
    DATA_IDS_FIELD_NUMBER: _ClassVar[int]
    data_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, data_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class DeleteDataResponse(_message.Message):
    __slots__ = ("deleted",)
    DELETED_FIELD_NUMBER: _ClassVar[int]
    deleted: int
    def __init__(self, deleted: _Optional[int] = ...) -> None: ...

class ReadTaskLogRequest(_message.Message):
    __slots__ = ("task_id", "stream", "offset", "max_bytes")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    MAX_BYTES_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    stream: str
    offset: int
    max_bytes: int
    def __init__(self, task_id: _Optional[str] = ..., stream: _Optional[str] = ..., offset: _Optional[int] = ..., max_bytes: _Optional[int] = ...) -> None: ...

class ReadTaskLogResponse(_message.Message):
    __slots__ = ("data", "next_offset", "running")
    DATA_FIELD_NUMBER: _ClassVar[int]
    NEXT_OFFSET_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    next_offset: int
    running: bool
    def __init__(self, data: _Optional[bytes] = ..., next_offset: _Optional[int] = ..., running: _Optional[bool] = ...) -> None: ...
