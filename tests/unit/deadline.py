"""Run a call that may block forever (a hung client call) without blocking the test."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class Outcome:
    value: Any = None
    error: BaseException | None = None

    def result(self) -> Any:
        """The value, or what the call raised, raised here."""
        if self.error is not None:
            raise self.error
        return self.value


def within(seconds: float, fn: Callable[[], Any], what: str) -> Outcome:
    """``fn()`` in a daemon thread; fails the test (naming ``what``) if it is still running after
    ``seconds``. The thread is left behind then: whatever it blocks on is the test's to release."""
    outcome = Outcome()

    def target() -> None:
        try:
            outcome.value = fn()
        except BaseException as exc:  # handed to the test's thread
            outcome.error = exc

    runner = threading.Thread(target=target, daemon=True)
    runner.start()
    runner.join(seconds)
    assert not runner.is_alive(), f"{what} is still blocked after {seconds:.0f}s"
    return outcome
