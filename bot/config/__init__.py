"""The business configuration: the admin's `prompts/` directory read into pydantic models (one
per file) and put together as one immutable `PromptConfig`.

Front door: `load_prompts(directory)`, which raises `PromptError` listing every problem as
`file:line: message`.
"""

from bot.config.errors import Problem, PromptError
from bot.config.knowledge import KnowledgeSection, missing_translations, section_slug
from bot.config.load import DEFAULT_PROMPTS_DIR, check_prompts, load_prompts
from bot.config.models import (
    BusinessConfig,
    BusinessHours,
    CustomField,
    ScoringConfig,
    Signal,
    Status,
    StatusRule,
)
from bot.config.prompt_config import PromptConfig

__all__ = [
    "DEFAULT_PROMPTS_DIR",
    "BusinessConfig",
    "BusinessHours",
    "CustomField",
    "KnowledgeSection",
    "Problem",
    "PromptConfig",
    "PromptError",
    "ScoringConfig",
    "Signal",
    "Status",
    "StatusRule",
    "check_prompts",
    "load_prompts",
    "missing_translations",
    "section_slug",
]
