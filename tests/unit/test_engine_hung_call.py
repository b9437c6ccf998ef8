"""The engine against librdkafka's real ``send_offsets_to_transaction`` while the group
coordinator is down (librdkafka's mock cluster, tests/unit/librdkafka_mock.py).

librdkafka 2.16 does not honour that call's timeout while it cannot reach the group coordinator
(its issues 5456 and 5511): a fault run saw the router blocked in it for minutes after the
coordinator's broker came back. The engine's bounded call must hand control back all the same."""

from __future__ import annotations

import contextlib
import threading

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from router.pipeline import engine as engine_mod
from router.pipeline.copy import CopyProcessor
from router.pipeline.engine import EngineSettings, TransactionalEngine
from tests.unit.deadline import within
from tests.unit.librdkafka_mock import MockCluster

pytestmark = pytest.mark.unit

GROUP, TXN_ID, COORDINATOR = "g", "router-hang", 2


def test_a_send_offsets_blocked_on_a_lost_group_coordinator_is_given_up_within_its_bound() -> None:
    with MockCluster(3) as mock:
        mock.create_topic("out")
        mock.set_coordinator("transaction", TXN_ID, 1)
        mock.set_coordinator("group", GROUP, COORDINATOR)
        producer = Producer({"bootstrap.servers": mock.bootstrap, "transactional.id": TXN_ID, "log_level": 0})
        consumer = Consumer({"bootstrap.servers": mock.bootstrap, "group.id": GROUP, "log_level": 0})
        producer.init_transactions(10)
        producer.begin_transaction()
        producer.produce("out", b"v")
        assert producer.flush(10) == 0
        metadata = consumer.consumer_group_metadata()
        mock.broker_down(COORDINATOR)

        eng = TransactionalEngine(
            EngineSettings({"bootstrap.servers": mock.bootstrap}, ["in"], GROUP, TXN_ID, hung_call_after_s=3.0),
            CopyProcessor("out"),
            environ={},
        )
        library_returned = threading.Event()

        def send() -> None:
            try:
                producer.send_offsets_to_transaction([TopicPartition("in", 0, 1)], metadata, 1.0)
            finally:
                library_returned.set()

        try:
            outcome = within(60, lambda: eng._bounded(send, "send_offsets_to_transaction", producer),
                             "the bounded call")
            if library_returned.is_set():  # a librdkafka that honours its timeout: its error comes through
                assert isinstance(outcome.error, KafkaException), outcome
            else:  # still blocked in librdkafka: given up as hung, and the producer is not to be touched
                assert isinstance(outcome.error, engine_mod._Restart), outcome
                assert eng._producer_hung
        finally:
            mock.broker_up(COORDINATOR)  # lets the library call end before the clients go
            library_returned.wait(60)
            consumer.close()
            with contextlib.suppress(KafkaException):
                producer.abort_transaction(10)
