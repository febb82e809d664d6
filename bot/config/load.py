"""Reading the admin's `prompts/` directory into one validated, immutable `PromptConfig`.

A directory with any problem is refused as a whole with a `PromptError` listing them all. Files
missing from the admin's directory fall back to the shipped defaults in the repository's
`prompts/`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from bot.config.errors import Problem, PromptError, read_yaml, validate
from bot.config.fields import LANGUAGE_CODE, placeholder_problems
from bot.config.knowledge import load_knowledge, strip_leading_comment
from bot.config.models import (
    BUSINESS_TEMPLATES,
    CORE_TEMPLATES,
    BusinessConfig,
    CustomFieldsFile,
    ScoringConfig,
    StatusesFile,
    TemplatesFile,
)
from bot.config.prompt_config import (
    BOT_PLACEHOLDERS,
    BOT_REQUIRED,
    COPILOT_PLACEHOLDERS,
    COPILOT_REQUIRED,
    PromptConfig,
)

log = logging.getLogger(__name__)

DEFAULT_PROMPTS_DIR = Path(__file__).resolve().parent.parent.parent / "prompts"


def load_prompts(
    directory: Path | str | None = None,
    *,
    defaults: Path | str | None = DEFAULT_PROMPTS_DIR,
    must_exist: bool = True,
) -> PromptConfig:
    """Read and validate the prompts directory; raise PromptError listing every problem.

    `must_exist=False` (a workspace's own directory, `bot.reload.WorkspacePrompts`): a missing
    directory provides no file of its own, every one comes from `defaults`."""
    directory = Path(directory) if directory is not None else DEFAULT_PROMPTS_DIR
    defaults_dir = Path(defaults) if defaults is not None else None
    if not directory.is_dir() and (must_exist or defaults_dir is None):
        raise PromptError([Problem(str(directory), 1, "the prompts directory does not exist")])
    problems: list[Problem] = []
    used: list[Path] = []

    def pick(name: str) -> Path | None:
        for base in (directory, defaults_dir):
            if base is not None and (base / name).is_file():
                used.append(base / name)
                return base / name
        problems.append(Problem(str(directory / name), 1, "the file is missing"))
        return None

    def read(name: str, model: Any, context: dict[str, Any] | None = None) -> Any:
        path = pick(name)
        if path is None:
            return None
        data, unreadable = read_yaml(path)
        if unreadable:
            problems.extend(unreadable)
            return None
        if data is None and model is CustomFieldsFile:
            return CustomFieldsFile()  # an empty file: no custom fields
        parsed, invalid = validate(model, data, path, context)
        problems.extend(invalid)
        return parsed

    business: BusinessConfig | None = read("business.yaml", BusinessConfig)
    scoring: ScoringConfig | None = read("scoring.yaml", ScoringConfig)
    statuses: StatusesFile | None = read(
        "statuses.yaml",
        StatusesFile,
        {
            "signals": set(scoring.signal_names) if scoring else None,
            "default_pause": business.default_pause_minutes if business else 60,
        },
    )
    custom_fields: CustomFieldsFile | None = read("custom_fields.yaml", CustomFieldsFile)
    bot_system = _markdown_prompt(pick("bot_system.md"), problems, BOT_PLACEHOLDERS, BOT_REQUIRED)
    copilot_system = _markdown_prompt(
        pick("copilot_system.md"), problems, COPILOT_PLACEHOLDERS, COPILOT_REQUIRED
    )
    knowledge_dir = _pick_dir(directory, defaults_dir, "knowledge")
    knowledge: tuple[Any, ...] = ()
    if knowledge_dir is not None:
        language = business.default_language if business else "en"
        knowledge, files, unreadable = load_knowledge(knowledge_dir, language)
        used.extend(files)
        problems.extend(unreadable)
    templates_dir = _pick_dir(directory, defaults_dir, "templates")
    templates: dict[str, dict[str, str]] = {}
    if templates_dir is None:
        problems.append(
            Problem(str(directory / "templates"), 1, "the templates directory is missing")
        )
    else:
        templates = _load_templates(templates_dir, business, problems, used)

    if problems or business is None or scoring is None or statuses is None:
        raise PromptError(problems)
    config = PromptConfig(
        directory=directory,
        statuses=statuses.statuses,
        lost_reasons=statuses.lost_reasons,
        scoring=scoring,
        business=business,
        custom_fields=custom_fields.fields if custom_fields else (),
        bot_system=bot_system or "",
        copilot_system=copilot_system or "",
        knowledge=knowledge,
        templates=templates,
        files=tuple(used),
        # The first workspace's replies are its directory's alone, as before workspaces.
        replies_dir=None if must_exist else _pick_dir(directory, defaults_dir, "replies"),
    )
    log.info(
        "loaded prompts from %s: %d statuses, %d knowledge sections, templates in %s",
        directory,
        len(config.statuses),
        len(knowledge),
        ", ".join(templates),
    )
    return config


def check_prompts(directory: Path | str | None = None, **kwargs: Any) -> list[Problem]:
    """Every problem of a prompts directory (empty when it validates)."""
    try:
        load_prompts(directory, **kwargs)
    except PromptError as exc:
        return exc.problems
    return []


def _pick_dir(directory: Path, defaults: Path | None, name: str) -> Path | None:
    if (directory / name).is_dir():
        return directory / name
    if defaults is not None and (defaults / name).is_dir():
        return defaults / name
    return None


def _markdown_prompt(
    path: Path | None, problems: list[Problem], allowed: frozenset[str], required: frozenset[str]
) -> str | None:
    if path is None:
        return None
    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(Problem(str(path), 1, f"cannot read the file: {exc}"))
        return None
    body, first_line = strip_leading_comment(raw)
    problems.extend(
        Problem(str(path), first_line + offset, message)
        for offset, message in placeholder_problems(body, allowed, required)
    )
    if not body.strip():
        problems.append(Problem(str(path), 1, "the prompt is empty"))
    return body.strip() + "\n"


def _load_templates(
    directory: Path, business: BusinessConfig | None, problems: list[Problem], used: list[Path]
) -> dict[str, dict[str, str]]:
    """`templates/<language>.yaml`, with business.yaml's phone-ask and out-of-hours wording (when
    set) replacing the default language's (so an admin words them where the business is
    described)."""
    templates: dict[str, dict[str, str]] = {}
    # The keys each file sets, valid or not: a refused one is not also reported as missing.
    written: dict[str, set[str]] = {}
    for path in sorted(directory.glob("*.yaml")):
        used.append(path)
        language = path.stem
        if not LANGUAGE_CODE.fullmatch(language):
            problems.append(
                Problem(
                    str(path),
                    1,
                    f"name template files by language code (en.yaml, es.yaml), not {path.name!r}",
                )
            )
            continue
        data, unreadable = read_yaml(path)
        parsed, invalid = (None, unreadable) if unreadable else validate(TemplatesFile, data, path)
        problems.extend(invalid)
        written[language] = set(data) if isinstance(data, dict) else set(CORE_TEMPLATES)
        if parsed is not None:
            texts = parsed.texts()
            templates[language] = {key: texts[key] for key in data if key in texts}
    if business is None:
        return templates
    language = business.default_language
    own = templates.setdefault(language, {})
    for key, value in (
        ("phone_ask", business.phone_ask_wording),
        ("out_of_hours", business.out_of_hours_message),
    ):
        if value:
            own[key] = value
    for key in CORE_TEMPLATES:
        if key not in own and key not in written.get(language, set()):
            where = f"templates/{language}.yaml" + (
                " or business.yaml" if key in BUSINESS_TEMPLATES else ""
            )
            problems.append(
                Problem(
                    str(directory / f"{language}.yaml"),
                    1,
                    f"the default language ({language}) has no {key!r} template "
                    f"(set it in {where})",
                )
            )
    return templates
