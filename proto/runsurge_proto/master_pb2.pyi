from runsurge_proto import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TaskPhase(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TASK_PHASE_UNSPECIFIED: _ClassVar[TaskPhase]
    TASK_PHASE_FETCHING_INPUTS: _ClassVar[TaskPhase]
    TASK_PHASE_BUILDING_ENVIRONMENT: _ClassVar[TaskPhase]
    TASK_PHASE_WAITING_FOR_SLOT: _ClassVar[TaskPhase]
    TASK_PHASE_RUNNING: _ClassVar[TaskPhase]

class TaskStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TASK_STATUS_UNSPECIFIED: _ClassVar[TaskStatus]
    TASK_STATUS_SUCCEEDED: _ClassVar[TaskStatus]
    TASK_STATUS_FAILED: _ClassVar[TaskStatus]
    TASK_STATUS_WORKER_ERROR: _ClassVar[TaskStatus]
    TASK_STATUS_CANCELLED: _ClassVar[TaskStatus]
    TASK_STATUS_RELEASED: _ClassVar[TaskStatus]
    TASK_STATUS_CHECKPOINTED: _ClassVar[TaskStatus]

class ReportResult(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REPORT_RESULT_UNSPECIFIED: _ClassVar[ReportResult]
    REPORT_RESULT_ACKNOWLEDGED: _ClassVar[ReportResult]
    REPORT_RESULT_REFUSED: _ClassVar[ReportResult]
    REPORT_RESULT_FAILED: _ClassVar[ReportResult]
TASK_PHASE_UNSPECIFIED: TaskPhase
TASK_PHASE_FETCHING_INPUTS: TaskPhase
TASK_PHASE_BUILDING_ENVIRONMENT: TaskPhase
TASK_PHASE_WAITING_FOR_SLOT: TaskPhase
TASK_PHASE_RUNNING: TaskPhase
TASK_STATUS_UNSPECIFIED: TaskStatus
TASK_STATUS_SUCCEEDED: TaskStatus
TASK_STATUS_FAILED: TaskStatus
TASK_STATUS_WORKER_ERROR: TaskStatus
TASK_STATUS_CANCELLED: TaskStatus
TASK_STATUS_RELEASED: TaskStatus
TASK_STATUS_CHECKPOINTED: TaskStatus
REPORT_RESULT_UNSPECIFIED: ReportResult
REPORT_RESULT_ACKNOWLEDGED: ReportResult
REPORT_RESULT_REFUSED: ReportResult
REPORT_RESULT_FAILED: ReportResult

class NodeRegisterRequest(_message.Message):
    __slots__ = ("fingerprint", "memory_bytes", "cpus", "slots", "host", "grpc_port", "sandbox", "cached_data_ids", "csr_pem", "checkpointed_task_ids")
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    CPUS_FIELD_NUMBER: _ClassVar[int]
    SLOTS_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    GRPC_PORT_FIELD_NUMBER: _ClassVar[int]
    SANDBOX_FIELD_NUMBER: _ClassVar[int]
    CACHED_DATA_IDS_FIELD_NUMBER: _ClassVar[int]
    CSR_PEM_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINTED_TASK_IDS_FIELD_NUMBER: _ClassVar[int]
    fingerprint: str
    memory_bytes: int
    cpus: int
    slots: int
    host: str
    grpc_port: int
    sandbox: str
    cached_data_ids: _containers.RepeatedScalarFieldContainer[str]
    csr_pem: bytes
    checkpointed_task_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, fingerprint: _Optional[str] = ..., memory_bytes: _Optional[int] = ..., cpus: _Optional[int] = ..., slots: _Optional[int] = ..., host: _Optional[str] = ..., grpc_port: _Optional[int] = ..., sandbox: _Optional[str] = ..., cached_data_ids: _Optional[_Iterable[str]] = ..., csr_pem: _Optional[bytes] = ..., checkpointed_task_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class NodeRegisterResponse(_message.Message):
    __slots__ = ("worker_id", "worker_token", "master_public_key_pem", "heartbeat_interval_s", "certificate_pem", "ca_pem")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    WORKER_TOKEN_FIELD_NUMBER: _ClassVar[int]
    MASTER_PUBLIC_KEY_PEM_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_INTERVAL_S_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_PEM_FIELD_NUMBER: _ClassVar[int]
    CA_PEM_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    worker_token: str
    master_public_key_pem: str
    heartbeat_interval_s: float
    certificate_pem: bytes
    ca_pem: bytes
    def __init__(self, worker_id: _Optional[str] = ..., worker_token: _Optional[str] = ..., master_public_key_pem: _Optional[str] = ..., heartbeat_interval_s: _Optional[float] = ..., certificate_pem: _Optional[bytes] = ..., ca_pem: _Optional[bytes] = ...) -> None: ...

class NodeHeartbeatRequest(_message.Message):
    __slots__ = ("worker_id", "running_tasks", "memory_used_bytes", "free_slots", "running_task_ids", "suspended", "dropped_data_ids", "environment_ids", "task_phases")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    RUNNING_TASKS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_USED_BYTES_FIELD_NUMBER: _ClassVar[int]
    FREE_SLOTS_FIELD_NUMBER: _ClassVar[int]
    RUNNING_TASK_IDS_FIELD_NUMBER: _ClassVar[int]
    SUSPENDED_FIELD_NUMBER: _ClassVar[int]
    DROPPED_DATA_IDS_FIELD_NUMBER: _ClassVar[int]
    ENVIRONMENT_IDS_FIELD_NUMBER: _ClassVar[int]
    TASK_PHASES_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    running_tasks: int
    memory_used_bytes: int
    free_slots: int
    running_task_ids: _containers.RepeatedScalarFieldContainer[str]
    suspended: str
    dropped_data_ids: _containers.RepeatedScalarFieldContainer[str]
    environment_ids: _containers.RepeatedScalarFieldContainer[str]
    task_phases: _containers.RepeatedCompositeFieldContainer[TaskPhaseReport]
    def __init__(self, worker_id: _Optional[str] = ..., running_tasks: _Optional[int] = ..., memory_used_bytes: _Optional[int] = ..., free_slots: _Optional[int] = ..., running_task_ids: _Optional[_Iterable[str]] = ..., suspended: _Optional[str] = ..., dropped_data_ids: _Optional[_Iterable[str]] = ..., environment_ids: _Optional[_Iterable[str]] = ..., task_phases: _Optional[_Iterable[_Union[TaskPhaseReport, _Mapping]]] = ...) -> None: ...

class TaskPhaseReport(_message.Message):
    __slots__ = ("task_id", "phase")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    phase: TaskPhase
    def __init__(self, task_id: _Optional[str] = ..., phase: _Optional[_Union[TaskPhase, str]] = ...) -> None: ...

class NodeHeartbeatResponse(_message.Message):
    __slots__ = ("worker_token", "reregister", "cancel_task_ids")
    WORKER_TOKEN_FIELD_NUMBER: _ClassVar[int]
    REREGISTER_FIELD_NUMBER: _ClassVar[int]
    CANCEL_TASK_IDS_FIELD_NUMBER: _ClassVar[int]
    worker_token: str
    reregister: bool
    cancel_task_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, worker_token: _Optional[str] = ..., reregister: _Optional[bool] = ..., cancel_task_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class TaskStartedRequest(_message.Message):
    __slots__ = ("worker_id", "task_id")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    task_id: str
    def __init__(self, worker_id: _Optional[str] = ..., task_id: _Optional[str] = ...) -> None: ...

class OutputData(_message.Message):
    __slots__ = ("name", "data_id", "size", "sha256")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DATA_ID_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    name: str
    data_id: str
    size: int
    sha256: str
    def __init__(self, name: _Optional[str] = ..., data_id: _Optional[str] = ..., size: _Optional[int] = ..., sha256: _Optional[str] = ...) -> None: ...

class TaskCompleteRequest(_message.Message):
    __slots__ = ("worker_id", "task_id", "status", "exit_code", "wall_s", "cpu_s", "mem_avg_bytes", "mem_peak_bytes", "outputs", "error", "stdout_data_id", "stderr_data_id", "attempt", "bad_peer_worker_id", "bad_data_id", "restore_s", "resumes", "usage")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    WALL_S_FIELD_NUMBER: _ClassVar[int]
    CPU_S_FIELD_NUMBER: _ClassVar[int]
    MEM_AVG_BYTES_FIELD_NUMBER: _ClassVar[int]
    MEM_PEAK_BYTES_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    STDOUT_DATA_ID_FIELD_NUMBER: _ClassVar[int]
    STDERR_DATA_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    BAD_PEER_WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    BAD_DATA_ID_FIELD_NUMBER: _ClassVar[int]
    RESTORE_S_FIELD_NUMBER: _ClassVar[int]
    RESUMES_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    task_id: str
    status: TaskStatus
    exit_code: int
    wall_s: float
    cpu_s: float
    mem_avg_bytes: int
    mem_peak_bytes: int
    outputs: _containers.RepeatedCompositeFieldContainer[OutputData]
    error: str
    stdout_data_id: str
    stderr_data_id: str
    attempt: int
    bad_peer_worker_id: str
    bad_data_id: str
    restore_s: float
    resumes: int
    usage: _containers.RepeatedCompositeFieldContainer[UsageSample]
    def __init__(self, worker_id: _Optional[str] = ..., task_id: _Optional[str] = ..., status: _Optional[_Union[TaskStatus, str]] = ..., exit_code: _Optional[int] = ..., wall_s: _Optional[float] = ..., cpu_s: _Optional[float] = ..., mem_avg_bytes: _Optional[int] = ..., mem_peak_bytes: _Optional[int] = ..., outputs: _Optional[_Iterable[_Union[OutputData, _Mapping]]] = ..., error: _Optional[str] = ..., stdout_data_id: _Optional[str] = ..., stderr_data_id: _Optional[str] = ..., attempt: _Optional[int] = ..., bad_peer_worker_id: _Optional[str] = ..., bad_data_id: _Optional[str] = ..., restore_s: _Optional[float] = ..., resumes: _Optional[int] = ..., usage: _Optional[_Iterable[_Union[UsageSample, _Mapping]]] = ...) -> None: ...

class CompleteTasksRequest(_message.Message):
    __slots__ = ("reports",)
    REPORTS_FIELD_NUMBER: _ClassVar[int]
    reports: _containers.RepeatedCompositeFieldContainer[TaskCompleteRequest]
    def __init__(self, reports: _Optional[_Iterable[_Union[TaskCompleteRequest, _Mapping]]] = ...) -> None: ...

class TaskCompleteResult(_message.Message):
    __slots__ = ("result", "reason")
    RESULT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    result: ReportResult
    reason: str
    def __init__(self, result: _Optional[_Union[ReportResult, str]] = ..., reason: _Optional[str] = ...) -> None: ...

class CompleteTasksResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[TaskCompleteResult]
    def __init__(self, results: _Optional[_Iterable[_Union[TaskCompleteResult, _Mapping]]] = ...) -> None: ...

class UsageSample(_message.Message):
    __slots__ = ("t_s", "cpu_s", "rss_bytes")
    T_S_FIELD_NUMBER: _ClassVar[int]
    CPU_S_FIELD_NUMBER: _ClassVar[int]
    RSS_BYTES_FIELD_NUMBER: _ClassVar[int]
    t_s: float
    cpu_s: float
    rss_bytes: int
    def __init__(self, t_s: _Optional[float] = ..., cpu_s: _Optional[float] = ..., rss_bytes: _Optional[int] = ...) -> None: ...

class Ack(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class UploadHeader(_message.Message):
    __slots__ = ("worker_id", "task_id", "data_id", "size")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    DATA_ID_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    task_id: str
    data_id: str
    size: int
    def __init__(self, worker_id: _Optional[str] = ..., task_id: _Optional[str] = ..., data_id: _Optional[str] = ..., size: _Optional[int] = ...) -> None: ...

class UploadPart(_message.Message):
    __slots__ = ("header", "chunk")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    header: UploadHeader
    chunk: bytes
    def __init__(self, header: _Optional[_Union[UploadHeader, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class UploadResult(_message.Message):
    __slots__ = ("data_id", "size")
    DATA_ID_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    data_id: str
    size: int
    def __init__(self, data_id: _Optional[str] = ..., size: _Optional[int] = ...) -> None: ...
