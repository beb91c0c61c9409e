"""Content-addressed cache of raw Messages API responses, so reruns and resumes make no paid call twice.

The key is the SHA-256 of the canonical JSON of the whole request body (model, system, messages, tools,
tool_choice, max_tokens, sampling parameters, ...) plus a caller's salt. The entry holds the request, the
salt and the raw response JSON, and is written atomically. On read it is checked (it parses, its stored
request hashes to its file name, the response looks like a Message); an entry that fails is ignored and
refetched, never trusted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from simgen.writers.atomic import atomic_write_json

log = logging.getLogger(__name__)

FORMAT = "simgen-llm-cache/1"


def canonical_json(obj: Any) -> str:
    """Sorted keys, no spaces, no NaN: equal requests give equal text."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def request_key(body: dict[str, Any], salt: str = "") -> str:
    """The cache key of a request body and a caller's salt (a seed, a record id...)."""
    text = canonical_json({"format": FORMAT, "request": body, "salt": salt})
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def looks_like_message(raw: Any) -> bool:
    """Whether ``raw`` has the fields simgen reads from a Message (type, content list, usage)."""
    return (
        isinstance(raw, dict)
        and raw.get("type") == "message"
        and isinstance(raw.get("content"), list)
        and isinstance(raw.get("usage"), dict)
    )


class ResponseCache:
    """A folder of ``<key[:2]>/<key>.json`` entries.

    Args:
        root: The cache folder, e.g. ``OUT/.simgen/llm-cache``; created on the first write.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def path(self, key: str) -> Path:
        """Where the entry of ``key`` lives."""
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        """The cached raw response of ``key``, or ``None`` when absent or not valid."""
        path = self.path(key)
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            log.warning("ignoring unreadable LLM cache entry %s: %s", path.name, type(exc).__name__)
            return None
        problem = self._problem(entry, key)
        if problem:
            log.warning("ignoring LLM cache entry %s: %s", path.name, problem)
            return None
        return entry["response"]

    @staticmethod
    def _problem(entry: Any, key: str) -> str | None:
        if not isinstance(entry, dict) or entry.get("format") != FORMAT:
            return "unknown format"
        if entry.get("key") != key:
            return "key does not match the file name"
        request, salt = entry.get("request"), entry.get("salt")
        if not isinstance(request, dict) or not isinstance(salt, str) or request_key(request, salt) != key:
            return "stored request does not hash to the key"
        if not looks_like_message(entry.get("response")):
            return "stored response is not a Message"
        return None

    def put(self, key: str, body: dict[str, Any], salt: str, raw: dict[str, Any]) -> None:
        """Store the raw response of a request atomically (a reader sees the old entry or the new one)."""
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        entry = {"format": FORMAT, "key": key, "salt": salt, "request": body, "response": raw}
        atomic_write_json(path, entry, indent=None, sort_keys=True)
