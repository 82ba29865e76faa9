"""Python generated from tests/bench/proto/etcd_min.proto (the etcd v3 API subset the
benchmark uses). The generated gRPC module imports ``etcd_min_pb2`` as a top-level module, so
this directory is put on ``sys.path`` before importing it."""

import sys
from pathlib import Path

_here = str(Path(__file__).resolve().parent)
if _here not in sys.path:
    sys.path.insert(0, _here)

import etcd_min_pb2 as pb  # noqa: E402
import etcd_min_pb2_grpc as pb_grpc  # noqa: E402

__all__ = ["pb", "pb_grpc"]
