"""Run a call in a forked child with a time and memory limit.

Tests of inputs that used to hang (or crash the interpreter) must fail rather than hang the suite.
A signal in the test process would not do: a hang inside C code, such as repr() of a huge list,
never returns to the interpreter to see it. The child's address space is capped as well, so that
a runaway repr() ends in MemoryError instead of taking the machine's memory.
"""

from __future__ import annotations

import multiprocessing
import resource
from dataclasses import dataclass
from typing import Any, Callable

_MEMORY_HEADROOM = 1 << 30  # bytes the child may allocate beyond what the test process uses


@dataclass(frozen=True)
class Outcome:
    raised: str | None  # the exception's class name, None if the call returned
    message: str  # str() of the exception, or repr() of what was returned (both cut to 2000)


def _virtual_memory_size() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize in /proc/self/status")


def run_bounded(function: Callable[..., Any], *args: Any, seconds: float = 20.0) -> Outcome:
    """function(*args) in a child process; AssertionError if it does not end within `seconds`."""
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    limit = _virtual_memory_size() + _MEMORY_HEADROOM

    def child() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        try:
            result = function(*args)
        except BaseException as exc:  # the outcome is the test's to judge, whatever it is
            sender.send(Outcome(type(exc).__name__, str(exc)[:2000]))
        else:
            sender.send(Outcome(None, repr(result)[:2000]))

    process = context.Process(target=child, daemon=True)
    process.start()
    sender.close()
    try:
        if not receiver.poll(seconds):
            raise AssertionError(f"{getattr(function, '__name__', function)} did not finish within {seconds} s")
        try:
            return receiver.recv()
        except EOFError:
            process.join(5)
            raise AssertionError(f"the child process died (exit code {process.exitcode})") from None
    finally:
        if process.is_alive():
            process.kill()
        process.join(5)
        receiver.close()
