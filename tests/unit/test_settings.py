"""Settings: a chosen first-administrator key is checked before anything is written, and no
secret (key, DATABASE_URL password) appears in a repr or an error message."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from api.settings import Settings, describe_invalid

GOOD_KEY = "a-good-admin-key-0123456789"


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("short-key-123", "at least 24 characters"),
        ("contains a space 0123456789", "spaces or control characters"),
        ("tab\tinside-0123456789abcdef", "spaces or control characters"),
        ("nul\x00inside-0123456789abcdef", "spaces or control characters"),
        ("trailing-newline-0123456789\n", "spaces or control characters"),
    ],
)
def test_settings_refuse_unusable_admin_key_without_repeating_it(key: str, reason: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(admin_key=key)
    message = describe_invalid(caught.value)
    assert message.startswith("invalid settings: INCIDENT_LEDGER_ADMIN_KEY")
    assert reason in message
    assert key.strip() not in message
    assert "\n" not in message


def test_settings_accept_good_admin_key_and_hide_it() -> None:
    settings = Settings(admin_key=GOOD_KEY)
    assert settings.admin_key is not None
    assert settings.admin_key.get_secret_value() == GOOD_KEY
    assert GOOD_KEY not in repr(settings)


def test_settings_empty_admin_key_means_generate_one() -> None:
    assert Settings(admin_key="").admin_key is None


def test_settings_hide_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://owner:hunter2-password@db/ledger")
    settings = Settings()
    assert settings.database_url is not None
    assert "hunter2" not in repr(settings)


def test_settings_take_database_url_by_field_name_too() -> None:
    settings = Settings(database_url="postgresql:///ledger")
    assert settings.database_url is not None
    assert settings.database_url.get_secret_value() == "postgresql:///ledger"
