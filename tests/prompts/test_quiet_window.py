"""business.yaml's `quiet_window`: the shipped default, one number or per channel, its checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot import PromptError, load_prompts
from bot.config import DEFAULT_PROMPTS_DIR
from tests.conftest import set_quiet_window


def test_the_shipped_business_waits_two_and_a_half_seconds_on_every_chat_channel() -> None:
    business = load_prompts(DEFAULT_PROMPTS_DIR).business
    for channel in ("web", "whatsapp", "messenger", "instagram"):
        assert business.quiet_window(channel) == 2.5
    assert business.quiet_window("manual") == 0


def test_one_number_sets_every_channel_and_a_mapping_sets_some(prompts_dir: Path) -> None:
    set_quiet_window(prompts_dir, 0)
    assert load_prompts(prompts_dir).business.quiet_window("whatsapp") == 0
    path = prompts_dir / "business.yaml"
    path.write_text(
        path.read_text(encoding="utf-8").replace("quiet_window: 0\n", "quiet_window:\n  web: 4\n"),
        encoding="utf-8",
    )
    business = load_prompts(prompts_dir).business
    assert business.quiet_window("web") == 4 and business.quiet_window("whatsapp") == 2.5


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("-1", "between 0 and 60 seconds"),
        ("soon", "must be a number of seconds"),
        ("\n  email: 3", "unknown key"),
    ],
)
def test_bad_values_are_reported_with_their_line(
    prompts_dir: Path, value: str, message: str
) -> None:
    set_quiet_window(prompts_dir, 1)
    path = prompts_dir / "business.yaml"
    path.write_text(
        path.read_text(encoding="utf-8").replace("quiet_window: 1\n", f"quiet_window: {value}\n"),
        encoding="utf-8",
    )
    with pytest.raises(PromptError) as error:
        load_prompts(prompts_dir)
    assert any(message in str(p) and "business.yaml" in str(p) for p in error.value.problems)
