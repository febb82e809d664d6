"""Every vector of the shared phone corpus (`../shared/fixtures/phones/`) through `find_phones`.

The vectors are "find the numbers in this text" cases from python-phonenumbers' matcher tests and
libphonenumber-js' findNumbers tests. We compare the distinct numbers found, in order (find_phones
deliberately reports a number once even when the text repeats it). The agreement rate of each file
is printed in the run's summary; the floors below are what we measured, minus a hair, so that a
regression fails the run. Measured: phone_vectors.tsv 214/215, libphonenumber matcher 199/199,
libphonenumber-js 15/16 (it reads the French national number "231354125" without its trunk 0;
phonenumbers, which we use, does not).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from store.contacts import find_phones

# As tests/conftest.py's SHARED_FIXTURES: the shared corpus lives beside the repository.
PHONES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "phones"
MIN_AGREEMENT = {
    "phone_vectors.tsv": 0.99,
    "libphonenumber_matcher_vectors.json": 0.99,
    "libphonenumberjs_findnumbers_vectors.json": 0.93,
}


def _expected(value: Any) -> list[str]:
    if value in ("no match", None, ""):
        return []
    numbers = value.split(";") if isinstance(value, str) else list(value)
    return list(dict.fromkeys(numbers))


def _load(name: str) -> list[tuple[str, str, str, list[str]]]:
    """(id, text, region, expected distinct E.164 numbers) for each vector of one file."""
    path = PHONES / name
    if not path.exists():
        pytest.skip(f"shared phone vectors absent: {path} (clone ../shared beside the repository)")
    if name.endswith(".tsv"):
        with open(path, encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle, delimiter="\t"))
        return [(r["id"], r["text"], r["region"], _expected(r["expected_e164"])) for r in rows]
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return [
        (v["id"], v["text"], v["region"], _expected(v["expected_e164"])) for v in data["vectors"]
    ]


@pytest.mark.parametrize("name", sorted(MIN_AGREEMENT))
def test_find_phones_agrees_with_the_shared_vectors(name: str, phone_agreement: dict) -> None:
    vectors = _load(name)
    assert vectors, f"{name} has no vectors"
    disagreements = []
    for vector_id, text, region, expected in vectors:
        found = find_phones(text, region)
        if found != expected:
            disagreements.append(
                f"{vector_id} [{region}] {text[:60]!r}: expected {expected}, found {found}"
            )
    agree = len(vectors) - len(disagreements)
    phone_agreement[name] = (agree, len(vectors))
    rate = agree / len(vectors)
    print(f"{name}: {agree}/{len(vectors)} = {rate:.1%}")
    for line in disagreements:
        print("  " + line)
    assert rate >= MIN_AGREEMENT[name], "\n".join(disagreements)


def test_every_expected_number_is_itself_accepted_by_normalize_phone() -> None:
    """Each number the corpus expects to be found is a number normalize_phone stores unchanged."""
    from store.contacts import normalize_phone

    numbers = {n for name in MIN_AGREEMENT for *_, expected in _load(name) for n in expected}
    assert numbers
    assert {normalize_phone(n, "US") for n in numbers} == numbers
