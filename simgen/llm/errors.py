"""Errors of the LLM client layer, all under :class:`~simgen.errors.SimgenError`."""

from __future__ import annotations

from simgen.errors import SimgenError


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


class APIKeyMissing(LLMError):
    """No Anthropic credential in the environment (or passed explicitly)."""
