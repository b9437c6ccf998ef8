"""Fault points of the transactional engine: FOR TESTS ONLY.

A test makes the router kill or stop itself, or see a chosen Kafka error, at a named step of its
transaction cycle, by setting the environment variable ``ROUTER_FAULT`` before the process starts.
Unset (the only sane production setting), the engine holds ``None`` and each step costs one
``is None`` test: the variable is read and parsed once, when the engine is constructed.

Syntax: a comma-separated list of ``<step>:<action>[@<n>]``.

``<step>``
    ``after_begin`` (``begin_transaction`` returned), ``after_produce`` (a batch's records were
    handed to the producer), ``after_send_offsets`` (``send_offsets_to_transaction`` returned),
    ``before_commit`` (just before ``commit_transaction``), ``after_commit`` (``commit_transaction``
    returned: the transaction is committed), ``in_rebalance`` (inside the ``on_assign`` /
    ``on_revoke`` callbacks of the consumer).
``<action>``
    ``kill``: SIGKILL this process; ``stop``: SIGSTOP this process (it goes on where it was when a
    SIGCONT arrives); ``raise=<code>[/retriable][/abortable][/fatal]``: raise
    ``KafkaException(KafkaError(<code>, ...))`` with those flags, where ``<code>`` is a name of
    ``confluent_kafka.KafkaError`` (``_TIMED_OUT``, ``NOT_ENOUGH_REPLICAS``,
    ``TOPIC_AUTHORIZATION_FAILED``...). The engine handles it as an error of the call of that step
    (``after_begin``: ``begin_transaction``; ``after_produce``: ``produce``;
    ``after_send_offsets``: ``send_offsets_to_transaction``; ``before_commit`` and
    ``after_commit``: ``commit_transaction`` - after it committed, i.e. an ambiguous commit that
    succeeded; ``in_rebalance``: the callback's own call), exactly as if librdkafka had raised it.
``@<n>``
    fire on the n-th time the step is reached in this process (default 1); ``@<n>+`` fires every
    time from the n-th on (a persistent error). Counts are per step, shared by the entries of a step;
    the first entry that matches fires.

Before firing, one line ``FAULT <step> #<n> <action>`` is written to stderr with ``os.write`` on
file descriptor 2 (unbuffered: it is there before SIGKILL lands), so a test can assert the kill hit
the step it targeted. Each arrival at a step that has a fault planned but does not fire this time
writes ``FAULT <step> #<n> pass``, so a test can also wait for the arrivals before the one it
targets (steps without a planned fault write nothing). A malformed value is a :class:`router.errors.ConfigError` naming
``ROUTER_FAULT`` at start-up.
"""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Mapping
from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException

from router.errors import ConfigError

ENV = "ROUTER_FAULT"
STEPS: tuple[str, ...] = (
    "after_begin",
    "after_produce",
    "after_send_offsets",
    "before_commit",
    "after_commit",
    "in_rebalance",
)
_FLAGS = ("retriable", "abortable", "fatal")
_ENTRY = re.compile(
    r"(?P<step>[a-z_]+):(?P<action>kill|stop|raise=[A-Za-z0-9_/]+)(?:@(?P<n>[1-9][0-9]{0,8})(?P<on>\+)?)?"
)


@dataclass(frozen=True, slots=True)
class Fault:
    step: str
    action: str
    """``kill``, ``stop`` or ``raise=...`` as written."""
    n: int
    onwards: bool
    code: int = 0
    retriable: bool = False
    abortable: bool = False
    fatal: bool = False

    def matches(self, count: int) -> bool:
        return count >= self.n if self.onwards else count == self.n

    def error(self, count: int) -> KafkaException:
        return KafkaException(
            KafkaError(
                self.code,
                f"fault injected at {self.step} #{count} ({ENV})",
                fatal=self.fatal,
                retriable=self.retriable,
                txn_requires_abort=self.abortable,
            )
        )


def _bad(entry: str, why: str) -> ConfigError:
    return ConfigError(
        f"{ENV}: entry {entry!r} is malformed ({why}); expected a comma-separated list of "
        f"<step>:<action>[@<n>[+]] with <step> one of {', '.join(STEPS)} and <action> kill, stop or "
        "raise=<KafkaError code name>[/retriable][/abortable][/fatal]"
    )


def _parse_entry(entry: str) -> Fault:
    m = _ENTRY.fullmatch(entry)
    if m is None:
        raise _bad(entry, "syntax")
    step, action = m["step"], m["action"]
    if step not in STEPS:
        raise _bad(entry, f"unknown step {step!r}")
    n = int(m["n"]) if m["n"] else 1
    onwards = m["on"] is not None
    if not action.startswith("raise="):
        return Fault(step, action, n, onwards)
    name, *flags = action.removeprefix("raise=").split("/")
    code = getattr(KafkaError, name, None) if name else None
    if not isinstance(code, int) or isinstance(code, bool):
        raise _bad(entry, f"{name!r} is not a confluent_kafka.KafkaError code name")
    unknown = [f for f in flags if f not in _FLAGS]
    if unknown:
        raise _bad(entry, f"unknown flag {unknown[0]!r}; flags are {', '.join(_FLAGS)}")
    return Fault(step, action, n, onwards, code, "retriable" in flags, "abortable" in flags, "fatal" in flags)


class FaultPoints:
    """The parsed ``ROUTER_FAULT``: :meth:`hit` at each step fires the fault planned for it, if any."""

    def __init__(self, spec: str) -> None:
        entries = [e.strip() for e in spec.split(",")]
        if not any(entries):
            raise _bad(spec, "empty")
        self.faults: tuple[Fault, ...] = tuple(_parse_entry(e) for e in entries if e)
        self._by_step: dict[str, tuple[Fault, ...]] = {
            s: tuple(f for f in self.faults if f.step == s) for s in STEPS
        }
        self.counts: dict[str, int] = dict.fromkeys(STEPS, 0)
        """How often each step was reached in this process."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> FaultPoints | None:
        """The fault points of ``ROUTER_FAULT``; None when it is unset or empty (the normal case)."""
        spec = (os.environ if environ is None else environ).get(ENV, "")
        return cls(spec) if spec.strip() else None

    def hit(self, step: str) -> None:
        """Count one arrival at ``step`` and fire the fault planned for this arrival, if any."""
        count = self.counts[step] = self.counts[step] + 1
        planned = self._by_step[step]
        if not planned:
            return
        for f in planned:
            if f.matches(count):
                os.write(2, f"FAULT {step} #{count} {f.action}\n".encode())
                if f.action == "kill":
                    os.kill(os.getpid(), signal.SIGKILL)
                    os._exit(137)  # not reached: SIGKILL cannot be caught
                if f.action == "stop":
                    os.kill(os.getpid(), signal.SIGSTOP)
                    return  # resumed by SIGCONT: go on from here
                raise f.error(count)
        os.write(2, f"FAULT {step} #{count} pass\n".encode())
