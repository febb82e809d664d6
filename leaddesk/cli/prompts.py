"""`leaddesk prompts check [DIR]` (validate the admin's files: every problem as `file:line:
message`, exit 1 if any) and `leaddesk prompts show [DIR]` (the configuration in force: the
admin's files merged with the shipped defaults).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from leaddesk.cli.common import UserError
from leaddesk.settings import Settings

if TYPE_CHECKING:  # only for annotations: importing the bot is slow for every CLI command
    from bot.config import PromptConfig
    from bot.text import KeywordSet


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "prompts",
        help="check or show the admin's prompt files (prompts/)",
        description="Check or show the files in prompts/ that shape the bot and the copilot.",
    )
    commands = parser.add_subparsers(dest="prompts_command", metavar="COMMAND")
    commands.required = True
    check = commands.add_parser(
        "check",
        help="validate every file; print each problem as file:line: message",
        description="Validate the prompts directory (and its eval/ cases) and print every "
        "problem as file:line: message. Exit 1 if there is any.",
    )
    check.add_argument("directory", nargs="?", metavar="DIR", help="default: LEADDESK_PROMPTS_DIR")
    check.add_argument(
        "--strict",
        action="store_true",
        help="also exit 1 for warnings (knowledge sections missing in a listed language)",
    )
    check.set_defaults(func=run_check)
    show = commands.add_parser(
        "show",
        help="print the configuration in force (your files merged with the defaults)",
        description="Print the effective configuration: the files of the prompts directory "
        "merged with the shipped defaults, each marked with where it came from.",
    )
    show.add_argument("directory", nargs="?", metavar="DIR", help="default: LEADDESK_PROMPTS_DIR")
    show.add_argument("--json", action="store_true", help="print JSON instead of YAML")
    show.set_defaults(func=run_show)


def _directory(value: str | None, settings: Settings) -> Path:
    return Path(value) if value else Path(settings.prompts_dir)


def shown(file: str) -> str:
    """A problem's file relative to the working directory when inside it (as compilers print)."""
    try:
        relative = os.path.relpath(file)
    except ValueError:  # another drive on Windows
        return file
    return file if relative.startswith("..") else relative


def workspace_directories(directory: Path) -> list[Path]:
    """The other workspaces' prompts beside the first's: `<slug>/` directories holding a prompt
    file or a configuration directory of their own (knowledge/ and the like, and eval/, are not
    workspaces)."""
    from bot.reload import CONFIG_DIRS, IGNORED_DIRS  # noqa: PLC0415 - imports the bot

    if not directory.is_dir():
        return []
    return [
        path
        for path in sorted(directory.iterdir())
        if path.is_dir()
        and path.name not in CONFIG_DIRS | IGNORED_DIRS
        and not path.name.startswith(".")
        and any(
            (f.is_file() and f.suffix in (".yaml", ".md")) or (f.is_dir() and f.name in CONFIG_DIRS)
            for f in path.iterdir()
        )
    ]


def run_check(args: argparse.Namespace, settings: Settings) -> int:
    directory = _directory(args.directory, settings)
    code = check_directory(directory, strict=args.strict)
    # Each workspace's directory, over the shipped defaults as the server reads it.
    for own in workspace_directories(directory):
        code = max(code, check_directory(own, strict=args.strict, workspace=True))
    return code


def check_directory(directory: Path, *, strict: bool, workspace: bool = False) -> int:
    """Check one prompts directory (a workspace's: any file it lacks is the shipped one); print
    its problems, or one line saying it is ok. 1 when it has problems (or warnings, `strict`)."""
    # Imported when the command runs: importing the bot (LangGraph) slows every other command.
    from bot.config import PromptError, load_prompts, missing_translations  # noqa: PLC0415
    from leaddesk.cli.eval import read_cases  # noqa: PLC0415 - imports the bot too

    problems: list[tuple[str, int, str]] = []
    config = None
    try:
        config = load_prompts(directory, must_exist=not workspace)
    except PromptError as exc:
        problems.extend((p.file, p.line, p.message) for p in exc.problems)
    if config is not None:
        from copilot.vocabulary import check_vocabulary  # noqa: PLC0415 - as the bot

        problems.extend((p.file, p.line, p.message) for p in check_vocabulary(config))
    eval_dir = directory / "eval"
    cases = 0
    if eval_dir.is_dir():
        files = sorted(eval_dir.glob("*.jsonl"))
        found, case_problems = read_cases(
            files, statuses=config.status_names if config is not None else None
        )
        cases = len(found)
        problems.extend((p.file, p.line, p.message) for p in case_problems)
    copilot_dir = eval_dir / "copilot"
    if copilot_dir.is_dir() and sorted(copilot_dir.glob("*.jsonl")):
        from leaddesk.cli.copilot_eval import (  # noqa: PLC0415 - imports the copilot
            read_copilot_cases,
            read_desk,
        )

        try:
            desk = read_desk(copilot_dir)
        except UserError as exc:
            problems.append((str(copilot_dir / "desk.yaml"), 1, str(exc)))
        else:
            found_copilot, copilot_problems = read_copilot_cases(
                sorted(copilot_dir.glob("*.jsonl")), desk
            )
            cases += len(found_copilot)
            problems.extend((p.file, p.line, p.message) for p in copilot_problems)
    for file, line, message in problems:
        print(f"{shown(file)}:{line}: {message}")
    if problems:
        print(f"{len(problems)} problem(s) in {directory}", file=sys.stderr)
        return 1
    assert config is not None
    # Not errors: a customer writing in a language without the section gets the default
    # language's text with a note saying so.
    warnings = missing_translations(config)
    for warning in warnings:
        print(f"{shown(warning.file)}:{warning.line}: warning: {warning.message}")
    default = config.business.default_language
    originals = sum(1 for s in config.knowledge if s.language == default)
    print(
        ("workspace " if workspace else "") + f"{directory}: ok - {len(config.statuses)} statuses, "
        f"{len(config.scoring.signals)} scoring signals, "
        f"{originals} knowledge sections in "
        f"{', '.join(sorted({s.language for s in config.knowledge}))}, "
        f"templates in {', '.join(config.template_languages)}"
        + (f", {cases} eval cases" if cases else "")
        + (f"; {len(warnings)} warning(s)" if warnings else "")
    )
    return 1 if warnings and strict else 0


def run_show(args: argparse.Namespace, settings: Settings) -> int:
    from leaddesk.cli.bot import load_checked_prompts  # noqa: PLC0415 - imports the bot

    config = load_checked_prompts(str(_directory(args.directory, settings)), settings)
    data: Any = effective_configuration(config)
    if args.json:
        json.dump(data, sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
        return 0
    sys.stdout.write(
        "# The configuration in force: your prompt files merged with the shipped defaults.\n"
    )
    yaml.dump(
        data,
        sys.stdout,
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        width=100,
        default_flow_style=False,
    )
    return 0


def effective_configuration(config: PromptConfig) -> dict[str, Any]:
    """Everything in force as plain data: the admin's files merged with the shipped defaults,
    each file marked with where it came from."""
    from bot.config import DEFAULT_PROMPTS_DIR  # noqa: PLC0415 - as in run_check
    from bot.config.models import DAYS, hhmm  # noqa: PLC0415 - as in run_check

    business = config.business
    directory = config.directory.resolve()

    def source(path: Path) -> dict[str, str]:
        resolved = path.resolve()
        try:
            where = resolved.relative_to(directory).as_posix()
            origin = "yours" if directory != DEFAULT_PROMPTS_DIR.resolve() else "shipped"
        except ValueError:
            where, origin = str(resolved), "shipped default"
        return {"file": where, "from": origin}

    def keywords(keyword_set: KeywordSet) -> dict[str, list[str]]:
        return {language: list(words) for language, words in keyword_set.by_language.items()}

    return {
        "directory": str(config.directory),
        "files": [source(path) for path in config.files],
        "business": {
            "name": business.name,
            "tone": business.tone,
            "default_language": business.default_language,
            "languages": list(business.languages),
            "contact": business.contact.model_dump(),
            "timezone": business.hours.timezone,
            "hours": {
                day: f"{hhmm(span[0])}-{hhmm(span[1])}" if span else "closed"
                for day, span in zip(DAYS, business.hours.days, strict=True)
            },
            "takeover_minutes": business.takeover_minutes,
            "default_pause_minutes": business.default_pause_minutes,
            "quiet_window": dict(business.quiet_windows),
            "phone_ask": {
                "wording": config.template("phone_ask"),
                "max_per_conversation": business.phone_ask_max,
                "min_score": business.phone_ask_min_score,
            },
            "out_of_hours_message": config.templates.get(business.default_language, {}).get(
                "out_of_hours"
            ),
        },
        "statuses": [
            {
                **status.model_dump(exclude={"rules"}),
                "when": [
                    ({"signals": list(rule.signals)} if rule.signals else {})
                    | ({"min_score": rule.min_score} if rule.min_score is not None else {})
                    for rule in status.rules
                ],
            }
            for status in config.statuses
        ],
        "scoring": {
            "base": config.scoring.base,
            "intent_cap": config.scoring.intent_cap,
            "weights": config.scoring.weights.model_dump(),
            "signals": {
                name: {"points": signal.points, "keywords": keywords(signal.keywords)}
                for name, signal in config.scoring.signals.items()
            },
            "phone_decline": keywords(config.scoring.phone_decline),
            "interests": {k: keywords(v) for k, v in config.scoring.interests.items()},
            "objections": {k: keywords(v) for k, v in config.scoring.objections.items()},
            "tags": {k: keywords(v) for k, v in config.scoring.tags.items()},
        },
        "custom_fields": [
            {
                "name": f.name,
                "label": f.label,
                "type": f.type,
                **({"choices": list(f.choices)} if f.choices else {}),
            }
            for f in config.custom_fields
        ],
        "templates": {language: dict(texts) for language, texts in config.templates.items()},
        "knowledge": [
            {
                "section": section.heading,
                "id": section.id,
                "language": section.language,
                "at": f"{source(Path(section.file))['file']}:{section.line}",
            }
            for section in config.knowledge
        ],
        "bot_system": config.bot_system,
        "copilot_system": config.copilot_system,
    }


class _Dumper(yaml.SafeDumper):
    """Multi-line texts (prompts, templates) print as readable `|` blocks."""


def _str_presenter(dumper: Any, value: str) -> Any:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str_presenter)
