"""Crash-safe file writes: moved to :mod:`simgen.io`, re-exported here so existing imports keep working."""

from __future__ import annotations

from simgen.io import append_jsonl_line as append_jsonl_line
from simgen.io import atomic_open as atomic_open
from simgen.io import atomic_write_bytes as atomic_write_bytes
from simgen.io import atomic_write_json as atomic_write_json
from simgen.io import atomic_write_text as atomic_write_text
from simgen.io import dumps_line as dumps_line
from simgen.io import encode_png as encode_png
from simgen.io import fsync_dir as fsync_dir
from simgen.io import sha256_file as sha256_file
from simgen.io import write_png as write_png
