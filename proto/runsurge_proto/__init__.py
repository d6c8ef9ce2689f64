"""RunSurge's gRPC contract: generated stubs (`*_pb2*`) plus `wire`, the helpers both sides share."""
