"""`store.text`: which JSON documents may need cleaning once decoded, checked against
`clean_json` itself on every kind of document the edge meets."""

from __future__ import annotations

import json

import pytest

from store.text import clean_json, may_need_cleaning

DOCUMENTS = [
    {"text": "plain ascii", "n": 1, "list": ["a", {"b": None}]},
    {"text": "nul \x00 inside"},
    {"text": "lone \ud800 surrogate"},
    {"text": "decomposed Jose\u0301"},
    {"k\x00ey": "a NUL in a key"},
    {"text": "caf\u00e9 already composed"},
]


@pytest.mark.parametrize("value", DOCUMENTS)
@pytest.mark.parametrize("ensure_ascii", [True, False])
@pytest.mark.parametrize("encoding", ["utf-8", "utf-16", "utf-32"])
def test_a_document_said_not_to_need_cleaning_is_clean_as_decoded(
    value: dict[str, object], ensure_ascii: bool, encoding: str
) -> None:
    # "surrogatepass": a lone surrogate written raw, as a broken sender's bytes carry it.
    document = json.dumps(value, ensure_ascii=ensure_ascii).encode(encoding, "surrogatepass")
    decoded = json.loads(document)
    if not may_need_cleaning(document):
        assert clean_json(decoded) == decoded


def test_only_plain_ascii_utf8_is_said_not_to_need_cleaning() -> None:
    assert not may_need_cleaning(b'{"text": "How much is the Home package?"}')
    assert may_need_cleaning(b'{"text": "nul \\u0000"}')
    assert may_need_cleaning('{"text": "café"}'.encode())
    # UTF-16 hides its escapes between NUL bytes.
    assert may_need_cleaning('{"text": "nul \\u0000"}'.encode("utf-16-le"))
