"""`file:line: message` for everything wrong in the admin's files: YAML read with the line of
every key, and a refused model's validation errors mapped back to those lines."""

from __future__ import annotations

import types
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin

import yaml
from pydantic import AliasChoices, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, SequenceNode

from bot.config.fields import KEYED, OWNED, PLAIN
from bot.config.models import ConfigModel


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


class PromptError(Exception):
    """The prompts directory does not validate; `problems` lists every `file:line: message`."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems) or [Problem("prompts", 1, "invalid prompts")]
        super().__init__("\n".join(str(p) for p in self.problems))

    @property
    def file(self) -> str:
        return self.problems[0].file

    @property
    def line(self) -> int:
        return self.problems[0].line

    @property
    def message(self) -> str:
        return self.problems[0].message


# --------------------------------------------------------------------------------------------
# YAML with line numbers


class _LineDict(dict):  # type: ignore[type-arg]
    line: int = 1
    lines: dict[Any, int]


class _LineList(list):  # type: ignore[type-arg]
    line: int = 1
    lines: list[int]


class _LineLoader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _LineLoader, node: MappingNode) -> _LineDict:
    loader.flatten_mapping(node)
    result = _LineDict()
    result.line = node.start_mark.line + 1
    result.lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise ConstructorError(
                None, None, "a key must be a plain value", key_node.start_mark
            ) from None
        if key in result:
            raise yaml.MarkedYAMLError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        result[key] = loader.construct_object(value_node, deep=True)
        result.lines[key] = key_node.start_mark.line + 1
    return result


def _construct_sequence(loader: _LineLoader, node: SequenceNode) -> _LineList:
    result = _LineList(loader.construct_object(child, deep=True) for child in node.value)
    result.line = node.start_mark.line + 1
    result.lines = [child.start_mark.line + 1 for child in node.value]
    return result


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def read_yaml(path: Path) -> tuple[Any, list[Problem]]:
    """The file's data (mappings and lists know their lines), or the problem reading it."""
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, [Problem(str(path), 1, f"cannot read the file: {exc}")]
    try:
        return yaml.load(source, Loader=_LineLoader), []
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        if (
            exc.problem_mark is not None
            and exc.context_mark is not None
            and exc.problem_mark.line >= len(source.splitlines())
        ):
            # "Unexpected end of stream": where the unclosed thing started is the useful line.
            mark = exc.context_mark
        message = f"{exc.problem or 'invalid YAML'}" + (f" ({exc.context})" if exc.context else "")
        return None, [Problem(str(path), mark.line + 1 if mark else 1, message)]
    except yaml.YAMLError as exc:
        return None, [Problem(str(path), 1, f"invalid YAML: {exc}")]


def line_of(container: Any, key: Any = None) -> int:
    """The line of `key` in a mapping or list read by `read_yaml` (else the container's)."""
    lines = getattr(container, "lines", None)
    if isinstance(lines, dict) and key in lines:
        return int(lines[key])
    if isinstance(lines, list) and isinstance(key, int) and 0 <= key < len(lines):
        return int(lines[key])
    return int(getattr(container, "line", 1))


# --------------------------------------------------------------------------------------------
# Validation errors

Model = TypeVar("Model", bound=ConfigModel)


def validate(
    model: type[Model], data: Any, path: Path, context: dict[str, Any] | None = None
) -> tuple[Model | None, list[Problem]]:
    """The file's data as `model`, or every problem with its line."""
    try:
        return model.model_validate(data, context=context), []
    except ValidationError as exc:
        return None, [_problem(error, model, data, path) for error in exc.errors()]


def _problem(error: ErrorDetails, root: type[ConfigModel], data: Any, path: Path) -> Problem:
    loc = tuple(error["loc"])
    if "[key]" in loc:  # a mapping's key was refused: its own line
        loc = loc[: loc.index("[key]")]
    kind, message = error["type"], error["msg"]
    line = _line(data, loc) + int((error.get("ctx") or {}).get("offset", 0))
    models = _models_along(root, loc)

    def named(depth: int) -> tuple[type[ConfigModel], str, Any]:
        """The model whose mapping sits at `loc[:depth]`, how it is named, the key above it."""
        model = next((m for d, m in models if d == depth), root)
        under = loc[depth - 1] if depth else None
        return model, model.what.format(key=under, file=path.name), under

    if kind == PLAIN:
        pass
    elif kind == KEYED:
        message = message.replace("{key}", str(loc[-1]), 1)
    elif kind == OWNED:
        depth, model = next((d, m) for d, m in reversed(models) if d < len(loc))
        _, what, _ = named(depth)
        field = _field(model, loc[depth])
        title = field.title if field is not None and field.title else what
        key = loc[depth + 1] if len(loc) > depth + 1 else None
        message = message.replace("{what}", title.format(what=what, key=key), 1)
    elif kind == "extra_forbidden":
        model, what, _ = named(len(loc) - 1)
        expected = ", ".join(model.keys())
        message = model.unknown_key.format(key=loc[-1], what=what, expected=expected)
    elif kind == "model_type":
        model, what, under = named(len(loc))
        message = model.not_a_mapping.format(what=what, key=under)
        line = line if loc else 1
    elif kind == "missing":
        model, what, under = named(len(loc) - 1)
        if loc[-1] in model.missing:
            message = model.missing[str(loc[-1])].format(what=what, key=under)
            line = _line(data, loc[:-1])
        else:
            message = f"missing `{loc[-1]}`"
    elif kind == "dict_type":
        message = f"`{loc[-1]}` must be a mapping of `key: value` lines"
    elif loc:
        message = f"`{loc[-1]}`: {message}"
    return Problem(str(path), line, message)


def _line(data: Any, loc: tuple[Any, ...]) -> int:
    """The line of the key at `loc`; for a key that is not there, the line its mapping starts on."""
    line, container = line_of(data), data
    for key in loc:
        in_list = isinstance(container, list) and isinstance(key, int) and key < len(container)
        if in_list or (isinstance(container, dict) and key in container):
            line, container = line_of(container, key), container[key]
        elif isinstance(container, dict) and isinstance(key, int):
            continue  # one mapping where a list of them may stand (`when:`)
        else:
            return line_of(container)
    return line


def _models_along(root: type[ConfigModel], loc: tuple[Any, ...]) -> list[tuple[int, Any]]:
    """(depth, model) for every model met walking `loc` down from `root`'s annotations."""
    found: list[tuple[int, Any]] = []
    annotation: Any = root
    for depth in range(len(loc) + 1):
        annotation = _unwrap(annotation)
        if isinstance(annotation, type) and issubclass(annotation, ConfigModel):
            found.append((depth, annotation))
            field = _field(annotation, loc[depth]) if depth < len(loc) else None
            if field is None:
                break
            annotation = field.annotation
        else:  # a mapping or list of something: step into the values
            args = [arg for arg in get_args(annotation) if arg is not Ellipsis]
            if not args:
                break
            annotation = args[-1]
    return found


def _unwrap(annotation: Any) -> Any:
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            annotation = next(a for a in get_args(annotation) if a is not type(None))
        else:
            return annotation


def _field(model: type[ConfigModel], key: Any) -> FieldInfo | None:
    for name, info in model.model_fields.items():
        if isinstance(info.validation_alias, AliasChoices):
            if key in info.validation_alias.choices:
                return info
        elif key == (info.alias or name):
            return info
    return None
