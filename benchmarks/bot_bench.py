"""Bot benchmark: how fast the inbound graph handles customer messages on SQLite, with the offline
engine and with a zero-latency fake model (a real `ChatOpenAI` client talking HTTP to the loopback
fake OpenAI-compatible server, which answers instantly), and whether the prompt grows with the
conversation.

    python benchmarks/bot_bench.py [--conversations 20] [--messages 10] [--long 50] [--json]

Each message goes through `BotService.handle` exactly as `leaddesk replay` feeds it (store, score,
status, reply, commit, local delivery), on a temporary SQLite file (WAL). Reported: messages per
second, median and p95 handling time per message, model calls, and the prompt size (characters of
all messages sent to the model) at message 5 and message `--long` of one conversation.

The retrieval line times what the bot does per message to answer from the knowledge base, on the
shipped multilingual knowledge base: detect the language, rank the sections, pick the part that
answers (CPU time per message; the language models load once per process, timed apart).
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from bot import BotService, LocalOutbox, load_prompts  # noqa: E402
from bot.knowledge import answer, knowledge_index  # noqa: E402
from bot.language import detect_language  # noqa: E402
from store import make_engine, make_session_factory, upgrade  # noqa: E402
from store.messages import Inbound  # noqa: E402
from tests.fakes.fake_openai import FakeOpenAI  # noqa: E402

SCRIPT = [
    "Hi there",
    "I'm thinking about solar panels for my house",
    "What packages do you offer?",
    "How much is the Home package?",
    "Does it work with a flat roof?",
    "How long does installation take?",
    "Do you offer financing or monthly payments?",
    "What's the warranty on the battery?",
    "How does the Plus package compare to the Home one?",
    "Do you install in Houston?",
    "What happens on cloudy days?",
    "Is there a monitoring app?",
]

# Questions in every shipped language, for the retrieval line.
QUESTIONS = [
    ("How much is the Home package?", "en"),
    ("What does the Plus 8 kW with battery cost?", "en"),
    ("do you install batteries only?", "en"),
    ("Do you install in Miami?", "en"),
    ("Hola, ¿cuánto cuesta el paquete Plus?", "es"),
    ("¿Qué garantía tienen los paneles?", "es"),
    ("Combien coûte le pack Home ?", "fr"),
    ("Vous installez à Lyon ?", "fr"),
    ("Was kostet das Plus 8 kW mit Batterie?", "de"),
    ("Wie lange dauert die Installation?", "de"),
    ("Quanto custa o pacote Plus 8 kW com bateria?", "pt"),
    ("Posso cancelar depois de assinar?", "pt"),
    ("كم سعر البطارية وحدها؟", "ar"),
    ("هل تعملون في دبي؟", "ar"),
]

MODEL_ANSWER = {
    "reasoning": "The customer is asking detailed questions about packages and prices.",
    "intent_evidence": "",
    "intent_level": "moderate",
    "intent_score": 55,
    "status": "Interested",
    "interests": ["Solar panels"],
    "objections": [],
    "summary": "Homeowner researching solar packages, prices and installation.",
    "next_best_action": "Offer a free site survey.",
    "language": "en",
    "reply": "Happy to help! Our Home 6.5 kW package is the most popular choice.",
}


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def make_service(directory: Path, name: str, model: Any | None) -> tuple[BotService, Any]:
    engine = make_engine(f"sqlite:///{directory / name}")
    upgrade(engine)
    session_factory = make_session_factory(engine)
    service = BotService(
        session_factory=session_factory,
        prompts=load_prompts(),
        model=model,
        outbox=LocalOutbox(session_factory),
        region="US",
    )
    return service, engine


def run_throughput(service: BotService, conversations: int, messages: int) -> dict[str, float]:
    timings: list[float] = []
    cpu_started = time.process_time()
    started = time.perf_counter()
    # Interleave conversations, as real traffic does.
    for turn in range(messages):
        for number in range(conversations):
            text = SCRIPT[turn % len(SCRIPT)]
            inbound = Inbound(channel="web", external_id=f"visitor-{number}", text=text)
            t0 = time.perf_counter()
            service.handle(inbound)
            timings.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    return {
        "messages": len(timings),
        # CPU time of this process (the server side of the fake model runs in it too): a figure
        # that does not depend on how busy the machine is.
        "cpu_ms_per_message": cpu / len(timings) * 1000,
        "messages_per_second": len(timings) / elapsed,
        "median_ms": statistics.median(timings) * 1000,
        "p95_ms": percentile(timings, 0.95) * 1000,
    }


def run_retrieval(rounds: int) -> dict[str, float]:
    """CPU time per message of language detection plus retrieval of the answering part."""
    config = load_prompts()
    languages = config.business.languages
    started = time.process_time()
    knowledge_index(config)
    index_ms = (time.process_time() - started) * 1000
    started = time.process_time()
    detect_language(
        ["warm up the language models"], languages=languages, current=None, default="en"
    )
    models_ms = (time.process_time() - started) * 1000
    answered = 0
    started = time.process_time()
    for number in range(rounds):
        for text, _expected in QUESTIONS:
            # A different text each round (trailing spaces change no word), so that no cache of
            # earlier texts makes a round cheaper than a new message.
            question = text + " " * number
            language = detect_language(
                [question], languages=languages, current=None, default="en"
            ).language
            answered += answer(config, question, language=language) is not None
    cpu = time.process_time() - started
    messages = rounds * len(QUESTIONS)
    return {
        "messages": messages,
        "answered": answered,
        "sections": len(config.knowledge),
        "cpu_ms_per_message": cpu / messages * 1000,
        "index_build_ms": index_ms,
        "language_models_load_ms": models_ms,
    }


def run_long_conversation(service: BotService, fake: FakeOpenAI, length: int) -> dict[str, Any]:
    marks: dict[int, dict[str, int]] = {}
    for number in range(1, length + 1):
        before = fake.calls
        service.handle(
            Inbound(
                channel="web",
                external_id="long-conversation",
                text=f"{SCRIPT[number % len(SCRIPT)]} (message {number})",
            )
        )
        if number in (5, length):
            marks[number] = {
                "model_calls_for_message": fake.calls - before,
                "model_calls_total": fake.calls,
                "prompt_chars": fake.prompt_chars(),
            }
    return marks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--conversations", type=int, default=20, help="conversations in the throughput run"
    )
    parser.add_argument(
        "--messages", type=int, default=10, help="messages per conversation in the throughput run"
    )
    parser.add_argument(
        "--long", type=int, default=50, help="length of the conversation whose prompt is measured"
    )
    parser.add_argument(
        "--retrieval-rounds", type=int, default=50, help="rounds of the multilingual questions"
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)

    results: dict[str, Any] = {}
    # First, so that the one-time load of the language models is not counted per message below.
    results["retrieval"] = run_retrieval(args.retrieval_rounds)
    with tempfile.TemporaryDirectory(prefix="leaddesk-bot-bench-") as tmp:
        directory = Path(tmp)
        offline, engine = make_service(directory, "offline.db", None)
        results["offline"] = run_throughput(offline, args.conversations, args.messages)
        engine.dispose()

        with FakeOpenAI() as fake:
            fake.respond_with(lambda body: MODEL_ANSWER)
            model = fake.chat_model(timeout=10.0)
            llm, engine = make_service(directory, "llm.db", model)
            results["fake_model"] = run_throughput(llm, args.conversations, args.messages)
            results["fake_model"]["model_calls"] = fake.calls
            engine.dispose()

            fake.reset()
            fake.respond_with(lambda body: MODEL_ANSWER)
            long_service, engine = make_service(directory, "long.db", model)
            results["prompt_growth"] = run_long_conversation(long_service, fake, args.long)
            engine.dispose()

    if args.json:
        json.dump(results, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    print(f"SQLite file, {args.conversations} conversations x {args.messages} messages each")
    print(
        f"{'engine':<12}{'msgs':>6}{'msg/s':>9}{'median ms':>11}{'p95 ms':>9}{'cpu ms/msg':>12}"
        f"{'model calls':>13}"
    )
    for name in ("offline", "fake_model"):
        row = results[name]
        calls = row.get("model_calls", 0)
        print(
            f"{name:<12}{row['messages']:>6}{row['messages_per_second']:>9.1f}{row['median_ms']:>11.1f}"
            f"{row['p95_ms']:>9.1f}{row['cpu_ms_per_message']:>12.1f}{calls:>13}"
        )
    row = results["retrieval"]
    print(
        f"\nRetrieval ({row['sections']} knowledge sections in all languages, {row['messages']} "
        f"questions in 6 languages, {row['answered']} answered): "
        f"{row['cpu_ms_per_message']:.2f} cpu ms/msg; index built once in "
        f"{row['index_build_ms']:.0f} ms, language models loaded once in "
        f"{row['language_models_load_ms']:.0f} ms"
    )
    print("\nOne conversation with the fake model (prompt = all characters sent to the model):")
    for number, mark in sorted(results["prompt_growth"].items()):
        print(
            f"  message {number:>3}: {mark['model_calls_for_message']} model call(s) for it, "
            f"{mark['model_calls_total']} in total, prompt {mark['prompt_chars']} chars"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
