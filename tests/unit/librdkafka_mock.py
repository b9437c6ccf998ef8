"""librdkafka's own mock cluster (``rd_kafka_mock_*``), reached through ``ctypes`` from the
librdkafka that confluent-kafka's wheel ships: real client code against in-process brokers whose
state a test sets (a broker down, a coordinator moved). For unit tests of how the engine copes with
the client library's behaviour; never a stand-in for a Kafka cluster in an integration test."""

from __future__ import annotations

import ctypes
import glob
import os
from types import TracebackType

import confluent_kafka


def _library() -> ctypes.CDLL:
    base = os.path.dirname(os.path.dirname(confluent_kafka.__file__))
    found = sorted(glob.glob(os.path.join(base, "confluent_kafka.libs", "librdkafka*.so*")))
    if not found:
        raise FileNotFoundError(f"no librdkafka shared library under {base}/confluent_kafka.libs")
    lib = ctypes.CDLL(found[0])
    vp, cp = ctypes.c_void_p, ctypes.c_char_p
    lib.rd_kafka_conf_new.restype = vp
    lib.rd_kafka_new.restype = vp
    lib.rd_kafka_new.argtypes = [ctypes.c_int, vp, cp, ctypes.c_size_t]
    lib.rd_kafka_destroy.argtypes = [vp]
    lib.rd_kafka_mock_cluster_new.restype = vp
    lib.rd_kafka_mock_cluster_new.argtypes = [vp, ctypes.c_int]
    lib.rd_kafka_mock_cluster_destroy.argtypes = [vp]
    lib.rd_kafka_mock_cluster_bootstraps.restype = cp
    lib.rd_kafka_mock_cluster_bootstraps.argtypes = [vp]
    lib.rd_kafka_mock_topic_create.restype = ctypes.c_int
    lib.rd_kafka_mock_topic_create.argtypes = [vp, cp, ctypes.c_int, ctypes.c_int]
    lib.rd_kafka_mock_coordinator_set.restype = ctypes.c_int
    lib.rd_kafka_mock_coordinator_set.argtypes = [vp, cp, cp, ctypes.c_int32]
    lib.rd_kafka_mock_broker_set_down.restype = ctypes.c_int
    lib.rd_kafka_mock_broker_set_down.argtypes = [vp, ctypes.c_int32]
    lib.rd_kafka_mock_broker_set_up.restype = ctypes.c_int
    lib.rd_kafka_mock_broker_set_up.argtypes = [vp, ctypes.c_int32]
    return lib


class MockCluster:
    """``brokers`` mock brokers (ids 1..n) owned by a client handle of their own; a context manager."""

    def __init__(self, brokers: int = 3) -> None:
        self._lib = _library()
        errstr = ctypes.create_string_buffer(512)
        self._rk = self._lib.rd_kafka_new(0, self._lib.rd_kafka_conf_new(), errstr, len(errstr))
        if not self._rk:
            raise RuntimeError(f"rd_kafka_new: {errstr.value.decode()}")
        self._mc = self._lib.rd_kafka_mock_cluster_new(self._rk, brokers)
        if not self._mc:
            self._lib.rd_kafka_destroy(self._rk)
            raise RuntimeError("rd_kafka_mock_cluster_new failed")
        self.bootstrap: str = self._lib.rd_kafka_mock_cluster_bootstraps(self._mc).decode()

    def create_topic(self, name: str, partitions: int = 1, replication: int = 1) -> None:
        self._check(self._lib.rd_kafka_mock_topic_create(self._mc, name.encode(), partitions, replication))

    def set_coordinator(self, kind: str, key: str, broker: int) -> None:
        """``kind`` is ``group`` or ``transaction``."""
        self._check(self._lib.rd_kafka_mock_coordinator_set(self._mc, kind.encode(), key.encode(), broker))

    def broker_down(self, broker: int) -> None:
        self._check(self._lib.rd_kafka_mock_broker_set_down(self._mc, broker))

    def broker_up(self, broker: int) -> None:
        self._check(self._lib.rd_kafka_mock_broker_set_up(self._mc, broker))

    @staticmethod
    def _check(code: int) -> None:
        if code != 0:
            raise RuntimeError(f"librdkafka mock call failed: {confluent_kafka.KafkaError(code).str()}")

    def close(self) -> None:
        if self._mc:
            self._lib.rd_kafka_mock_cluster_destroy(self._mc)
            self._mc = None
        if self._rk:
            self._lib.rd_kafka_destroy(self._rk)
            self._rk = None

    def __enter__(self) -> MockCluster:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()
