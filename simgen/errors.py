"""One exception hierarchy for everything simgen raises on purpose."""

from __future__ import annotations

import difflib
import errno
import os
from collections.abc import Iterable
from typing import Any, ClassVar


class SimgenError(Exception):
    """Base class of every error simgen raises deliberately."""


class SpecError(SimgenError, ValueError):
    """A scene spec is invalid: names the file, the field path, what was expected and what was received.

    Attributes:
        path: The field path of the first problem, e.g. ``objects[2].count.high``.
        source: The spec file, when the spec came from one.
        problems: Every ``(path, message)`` found, in order.
    """

    def __init__(
        self,
        message: str = "",
        *,
        path: str = "",
        source: str | None = None,
        problems: list[tuple[str, str]] | None = None,
    ) -> None:
        self.problems = problems or [(path, message)]
        self.path = self.problems[0][0]
        self.source = source
        where = f"{source}: " if source else ""
        if len(self.problems) == 1:
            p, m = self.problems[0]
            text = f"{where}{p}: {m}" if p else f"{where}{m}"
        else:
            body = "\n  ".join(f"{p or '<root>'}: {m}" for p, m in self.problems)
            text = f"{where}{len(self.problems)} problems\n  {body}"
        super().__init__(text)


class PlanError(SimgenError, ValueError):
    """A run cannot be planned: a frame count or shard size that is not a positive integer, or too large."""


class AssetError(SimgenError, ValueError):
    """An asset reference cannot be resolved, or resolves outside the allowed roots."""


class BackendUnavailable(SimgenError, RuntimeError):
    """A simulator or renderer backend cannot be started here."""


class DependencyMissing(SimgenError, ImportError):
    """An optional dependency is missing; the message names the pip extra that installs it."""

    def __init__(self, package: str, extra: str, purpose: str = "") -> None:
        self.package = package
        self.extra = extra
        why = f" for {purpose}" if purpose else ""
        super().__init__(f"{package} is needed{why}: install it with `pip install 'simgen[{extra}]'`")


class OutputExistsError(SimgenError, FileExistsError):
    """The output folder already holds data and neither resume nor overwrite was asked for."""


class RegistryError(SimgenError, KeyError):
    """An unknown registry name."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable.
        return str(self.args[0]) if self.args else ""


class WorkerCrashed(SimgenError, RuntimeError):
    """A worker process died of a signal (a native crash, SIGKILL, the OOM killer) and its retry died too.

    Attributes:
        shard: The shard's name (``s00003``), or None when the worker died before it started a shard.
        scene: The scene the shard was at (its first scene with an unfinished frame), or None.
        signal: The signal's name (``SIGSEGV``), or ``exit code N`` for a worker that exited on its own.
    """

    def __init__(self, message: str, *, shard: str | None = None, scene: int | None = None, signal: str = "") -> None:
        self.shard, self.scene, self.signal = shard, scene, signal
        super().__init__(message)


class OutputWriteError(SimgenError, OSError):
    """Writing the dataset failed for a reason of the filesystem (full, read-only, no permission).

    Attributes:
        path: The file or folder being written.
        errno: The OS error number (``errno.ENOSPC``, ...).
    """

    _WHY: ClassVar[dict[int, str]] = {
        errno.ENOSPC: "disk full",
        errno.EDQUOT: "disk quota exceeded",
        errno.EROFS: "read-only file system",
        errno.EACCES: "permission denied",
        errno.EPERM: "operation not permitted",
        errno.EFBIG: "file too large",
    }

    def __init__(self, message: str, *, path: str = "", errno_: int | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.errno = errno_

    @classmethod
    def convertible(cls, exc: BaseException) -> bool:
        """Whether ``exc`` is an OSError of the filesystem refusing a write (full, read-only, permissions)."""
        return isinstance(exc, OSError) and not isinstance(exc, SimgenError) and exc.errno in cls._WHY

    @classmethod
    def from_os_error(cls, exc: OSError, default_path: str | os.PathLike[str] = "") -> OutputWriteError:
        """The one-line error for a write that the filesystem refused (see :meth:`convertible`).

        Args:
            exc: The OSError.
            default_path: The path to name when the error carries none (a failed ``write`` or ``flush``).
        """
        path = str(exc.filename) if exc.filename is not None else str(default_path)
        why = cls._WHY.get(exc.errno or 0, "cannot write")
        detail = (exc.strerror or str(exc)).lower()
        fix = "free space" if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG) else "fix the folder"
        where = f" {path}" if path else ""
        return cls(f"{why} writing{where}: {detail}; {fix} and rerun with --resume", path=path, errno_=exc.errno)


class RunnerUnavailable(SimgenError, RuntimeError):
    """A runner (a Ray cluster, a process pool) cannot be started or reached."""


class Interrupted(KeyboardInterrupt):
    """The run was stopped by a signal (SIGTERM); handled like Ctrl-C.

    Attributes:
        signum: The signal number.
        exit_code: The conventional exit status, ``128 + signum`` (143 for SIGTERM).
    """

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.exit_code = 128 + signum
        super().__init__(f"interrupted by signal {signum}")


class LabelError(SimgenError, ValueError):
    """Frame data handed to a label function is malformed: wrong shape or dtype, a missing pose, a bad argument."""


class ModelError(LabelError):
    """An object's 3D model cannot be built (an unreadable mesh file, an unknown part kind ...)."""


class CocoWriteError(SimgenError, ValueError):
    """A frame record or a fragment cannot be written as COCO (unknown category, torn line, duplicate frame ...)."""


class YoloWriteError(SimgenError, ValueError):
    """A frame or a dataset record cannot be written as YOLO labels."""


class BopWriteError(SimgenError, ValueError):
    """A frame or a record cannot be written as BOP (missing masks or files, records out of order ...)."""


class WriterOptionError(SimgenError, TypeError):
    """A writer was given an option it does not take."""


class RefineSettingsError(SimgenError, ValueError):
    """A refinement setting is invalid; the message names the option, what was expected and what was received."""


class ModelNotFound(SimgenError, FileNotFoundError):
    """A model or ControlNet is neither a local folder nor available from the hub (or the local cache, offline)."""


class LLMError(SimgenError, RuntimeError):
    """An LLM request failed for good: a non-retryable API error, or retries exhausted.

    The message is one line and never holds the API key.

    Attributes:
        status_code: The last HTTP status, or ``None`` for a timeout or a connection error.
        attempts: How many HTTP attempts were made.
    """

    def __init__(self, message: str, *, status_code: int | None = None, attempts: int = 0) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.attempts = attempts


class BudgetExhausted(LLMError):
    """The request or token budget is spent: callers stop cleanly and the run can be resumed.

    Attributes:
        limit: ``"max_requests"`` or ``"max_tokens"``.
        used: What was used when the stop happened.
        allowed: The configured limit.
    """

    def __init__(self, limit: str, used: int, allowed: int) -> None:
        super().__init__(
            f"LLM budget exhausted: {limit}={allowed} reached ({used} used); "
            "finished responses are cached, raise the limit and resume to continue"
        )
        self.limit = limit
        self.used = used
        self.allowed = allowed

    def __reduce__(self) -> tuple[Any, ...]:
        # Raised in pool workers: pickle with the constructor's arguments, not the message.
        return (type(self), (self.limit, self.used, self.allowed))


class APIKeyMissing(LLMError):
    """No Anthropic credential in the environment (or passed explicitly)."""


class RequireUnmet(SimgenError, RuntimeError):
    """A frame met its scenario constraints in none of its attempts: the run stops instead of emitting it.

    Attributes:
        frame_index: The frame.
        attempts: Attempts made.
        unmet: ``(constraint name, attempts it failed, closest value seen, what it needs)`` per failing one.
    """

    def __init__(self, frame_index: int, attempts: int, unmet: list[tuple[str, int, Any, str]]) -> None:
        self.frame_index, self.attempts, self.unmet = frame_index, attempts, unmet
        parts = [
            f"'{name}' failed {failed} of {attempts} attempts, closest value {_closest(value)} (needs {needs})"
            for name, failed, value, needs in unmet
        ]
        super().__init__(
            f"frame {frame_index}: no attempt met the scenario's constraints in max_attempts={attempts}: "
            + "; ".join(parts)
            + ". Loosen the constraint, or change the spec so it can hold"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # Raised in worker processes: it must pickle back whole (its __init__ takes the parts, not the message).
        return (type(self), (self.frame_index, self.attempts, self.unmet))


def _closest(value: Any) -> str:
    if value is None:
        return "none (nothing selected)"
    return f"{value:.6g}" if isinstance(value, float) else str(value)


#: Names longer than this get no suggestion: no valid name is that long, and difflib is quadratic.
MAX_SUGGESTED_NAME = 200


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return a " (did you mean 'x'?)" suffix for the closest choice, or an empty string.

    Never suggests the name itself (when the name is valid but misplaced, or the problem is elsewhere,
    "did you mean 'x'?" after 'x' only confuses), and never compares an over-long name.

    Args:
        name: The unknown name the user gave.
        choices: The valid names.

    Returns:
        A suffix to append to an error message.
    """
    if not isinstance(name, str) or len(name) > MAX_SUGGESTED_NAME:
        return ""
    others = [c for c in choices if c != name and len(c) <= MAX_SUGGESTED_NAME]
    same_but_case = [c for c in others if c.lower() == name.lower()]
    matches = same_but_case or difflib.get_close_matches(name, others, n=1, cutoff=0.6)
    return f" (did you mean '{matches[0]}'?)" if matches else ""
