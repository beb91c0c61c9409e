"""One exception hierarchy for everything simgen raises on purpose."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


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


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return a " (did you mean 'x'?)" suffix for the closest choice, or an empty string.

    Args:
        name: The unknown name the user gave.
        choices: The valid names.

    Returns:
        A suffix to append to an error message.
    """
    matches = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return f" (did you mean '{matches[0]}'?)" if matches else ""
