"""Crash injection for the crash-safety tests: `QA_FAILPOINT=<name>` SIGKILLs the process there."""

import os
import signal


def failpoint(name: str) -> None:
    if os.environ.get("QA_FAILPOINT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
