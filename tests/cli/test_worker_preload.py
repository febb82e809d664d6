"""`leaddesk worker` loads the business's language models before its pool processes fork, so they
share those pages and none spends its first answer loading them."""

from __future__ import annotations

import os

from bot import load_prompts
from bot.language import candidate_languages, detector
from leaddesk.cli.worker import _preload


def test_the_language_models_are_loaded_before_the_pool_processes_fork() -> None:
    prompts = load_prompts()
    languages = candidate_languages(prompts.business.languages)
    detector.cache_clear()
    _preload(prompts)
    assert detector.cache_info().currsize == 1
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # a pool process: the models are there, not loaded again
        try:
            loaded = detector.cache_info().misses
            found = detector(languages)
            ok = found is not None and detector.cache_info().misses == loaded
            os.write(write, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.close(write)
    _, status = os.waitpid(child, 0)
    assert os.read(read, 1) == b"1" and status == 0
    os.close(read)
