"""The knowledge base: one section per heading of `knowledge/*.md` (the default language) and
`knowledge/<language>/*.md` (its translations, with the same section ids)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bot.config.errors import Problem
from bot.text import normalize

if TYPE_CHECKING:  # the configuration holds the sections: a type-only import, no cycle
    from bot.config.prompt_config import PromptConfig

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_SECTION_ID = re.compile(r"\s*\{#([a-z0-9][a-z0-9_-]*)\}\s*$")
_KEYWORDS_LINE = re.compile(r"^\s*keywords:\s*(.*)$", re.IGNORECASE)
_LANGUAGE = re.compile(r"[a-z]{2,3}")


@dataclass(frozen=True)
class KnowledgeSection:
    file: str
    line: int
    heading: str  # "Pricing > Package prices"
    title: str  # "Package prices"
    text: str
    language: str
    # The same id in every language's file: `## Title {#id}`, else the title as a slug.
    id: str = ""
    # Words a customer may use for what the section answers (a `keywords:` line under the heading).
    keywords: tuple[str, ...] = ()


def strip_leading_comment(text: str) -> tuple[str, int]:
    """Drop a leading `<!-- ... -->` comment; return the rest and the line number it starts on."""
    if not text.lstrip().startswith("<!--"):
        return text, 1
    start = text.index("<!--")
    end = text.find("-->", start)
    if end == -1:
        return text, 1
    end += 3
    return text[end:], text[:end].count("\n") + 1


def section_slug(title: str) -> str:
    """The id of a section that names none: "Package prices" -> "package-prices"."""
    return re.sub(r"[^a-z0-9]+", "-", normalize(title)).strip("-") or "section"


def load_knowledge(
    directory: Path, default_language: str
) -> tuple[tuple[KnowledgeSection, ...], list[Path], list[Problem]]:
    """Every section, the files read and the problems found. `name.es.md` also holds Spanish
    sections."""
    files: list[tuple[Path, str]] = []
    for path in sorted(directory.glob("*.md")):
        parts = path.name[:-3].split(".")
        language = default_language
        if len(parts) > 1 and _LANGUAGE.fullmatch(parts[-1]):
            language = parts[-1]
        files.append((path, language))
    for folder in sorted(p for p in directory.iterdir() if p.is_dir()):
        if _LANGUAGE.fullmatch(folder.name):
            files.extend((path, folder.name) for path in sorted(folder.glob("*.md")))
    sections: list[KnowledgeSection] = []
    problems: list[Problem] = []
    seen: dict[tuple[str, str], KnowledgeSection] = {}
    for path, language in files:
        try:
            raw = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(Problem(str(path), 1, f"cannot read the file: {exc}"))
            continue
        for section in _sections_of(path, raw, language, problems):
            earlier = seen.get((section.id, language))
            if earlier is not None:
                problems.append(
                    Problem(
                        str(path),
                        section.line,
                        f"section id {section.id!r} is already used at "
                        f"{earlier.file}:{earlier.line} "
                        "(give one of them its own id with {#some-id} after the title)",
                    )
                )
                continue
            seen[(section.id, language)] = section
            sections.append(section)
    return tuple(sections), [path for path, _ in files], problems


def _sections_of(
    path: Path, raw: str, language: str, problems: list[Problem]
) -> list[KnowledgeSection]:
    body, first_line = strip_leading_comment(raw)
    # (line, heading path, title, id, body lines) per heading; text before any heading has none.
    chunks: list[tuple[int | None, str, str, str, list[str]]] = [(None, "", "", "", [])]
    trail: list[tuple[int, str]] = []
    for offset, source_line in enumerate(body.split("\n")):
        match = _HEADING.match(source_line)
        if not match:
            chunks[-1][4].append(source_line)
            continue
        level, title = len(match.group(1)), match.group(2).strip()
        explicit = _SECTION_ID.search(title)
        section_id = explicit.group(1) if explicit else ""
        title = _SECTION_ID.sub("", title).strip() if explicit else title
        trail = [(lvl, t) for lvl, t in trail if lvl < level] + [(level, title)]
        chunks.append(
            (
                first_line + offset,
                " > ".join(t for _, t in trail),
                title,
                section_id or section_slug(title),
                [],
            )
        )
    sections = []
    for line, heading, title, section_id, lines in chunks:
        keywords: tuple[str, ...] = ()
        kept: list[str] = []
        for text_line in lines:
            found = _KEYWORDS_LINE.match(text_line)
            if found and not keywords and not any(k.strip() for k in kept):
                keywords = tuple(k.strip() for k in found.group(1).split(",") if k.strip())
                continue
            kept.append(text_line)
        text = "\n".join(kept).strip()
        if not text:
            continue
        if line is None:
            problems.append(
                Problem(
                    str(path),
                    first_line,
                    "text before the first heading; start each section with a # heading",
                )
            )
            continue
        sections.append(
            KnowledgeSection(
                file=str(path),
                line=line,
                heading=heading,
                title=title,
                text=text,
                language=language,
                id=section_id,
                keywords=keywords,
            )
        )
    return sections


def missing_translations(config: PromptConfig) -> list[Problem]:
    """Sections of the default language that a listed language has no version of (its customers
    get the default language's text with a note saying so)."""
    knowledge, default = config.knowledge, config.business.default_language
    have = {(s.id, s.language) for s in knowledge}
    return [
        Problem(
            section.file,
            section.line,
            f"section {section.id!r} ({section.title}) has no {language} version "
            f"(add it to knowledge/{language}/ with the same id)",
        )
        for language in config.business.languages
        if language != default
        for section in knowledge
        if section.language == default and (section.id, language) not in have
    ]
