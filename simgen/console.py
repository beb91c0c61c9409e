"""The command line's two consoles, and its one way of printing an error.

rich wraps long lines at the terminal width, and with no terminal (CI, a pipe, a plain shell) it
assumes 80 columns: an error that names a long path would break in two, and a user copying the
path, or a script grepping the line, gets half of it. So every console here soft-wraps: a line is
printed whole and the terminal folds it, at any width.
"""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

#: Progress bars, status lines, errors and summaries: stderr, so stdout stays clean for data.
err = Console(stderr=True, soft_wrap=True)
#: Reports a user asked for (tables, verify results): stdout.
out = Console(soft_wrap=True)


def print_error(message: object) -> None:
    """Print ``error: message`` as one red line on stderr, whole at any terminal width."""
    err.print(f"[red]error:[/] {escape(str(message))}")
