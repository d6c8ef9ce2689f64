"""A worker's call turned down by one of the master's decision modules (registration, run data): the
gRPC status it maps to and one line for the worker. Raised inside a transaction, it rolls it back."""


class DeniedError(Exception):
    def __init__(self, code: str, message: str):  # code: a grpc.StatusCode name, e.g. "PERMISSION_DENIED"
        super().__init__(message)
        self.code = code
