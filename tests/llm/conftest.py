"""Shared fixture of the LLM layer tests: a clean credential environment."""

from __future__ import annotations

import pytest

pytest.importorskip("anthropic", reason="the [llm] extra is not installed")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No ambient credential, endpoint or SDK profile can leak into a test."""
    names = (
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_AUTH_TOKEN",
        "ANTHROPIC_BASE_URL",
        "ANTHROPIC_PROFILE",
        "ANTHROPIC_CONFIG_DIR",
        "ANTHROPIC_LOG",
        "ANTHROPIC_CUSTOM_HEADERS",
        "ANTHROPIC_FEDERATION_RULE_ID",
        "ANTHROPIC_ORGANIZATION_ID",
        "ANTHROPIC_IDENTITY_TOKEN",
        "ANTHROPIC_IDENTITY_TOKEN_FILE",
    )
    for name in names:
        monkeypatch.delenv(name, raising=False)
    # The SDK looks for profiles under ~/.config/anthropic: give it an empty home.
    monkeypatch.setenv("HOME", str(tmp_path_factory.mktemp("home")))
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
