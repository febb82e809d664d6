"""The offline intent router: plain English and slash commands turned into the same tool calls
the model would make. Pure functions over the text and the little context the chat keeps."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from copilot.dates import WHEN_START
from copilot.text import closest_word, fold, fold_word, name_score
from copilot.vocabulary import EMPTY, Vocabulary
from store.models import NOTE_CATEGORIES

HELP = (
    "I'm your Leaddesk copilot. Ask me in plain words"
    " (typos, no accents and other languages are fine),\n"
    "by lead id, phone, email or name:\n"
    '• "summarise lead 42" · "what\'s next for 42?" · /lead 42'
    ' · then "is she hot?", "write her a first email"\n'
    '• "qualify lead 42" (BANT) · /qualify 42 · "is lead 42 hot?"\n'
    '• "draft an intro email for 42" · /email 42\n'
    "• Lists: /hot · /today (follow-ups) · /unassigned · /stale · /recent · /mine"
    ' · "new leads yesterday" · "Mike\'s leads" · "leads on whatsapp" · "score 50-80" · "more"\n'
    '• "what happened today?" (new leads, status changes, hot leads waiting, replies owed)\n'
    '• Changes: /note 42 text · "set 42 to Converted" · "rename 42 to Ana Ruiz"'
    ' · "set 42\'s company to Acme" · /assign 42 Mike · /archive 42 · "merge 31 into 7"\n'
    '• Many at once (shown first, then yes/no): "assign all unassigned leads to me"'
    ' · "set all stale leads to Not Interested" · "move all of Sarah\'s leads to Mike"\n'
    '• Customers: "reply to 42: text" · /takeover 42 · "resume the bot for 42"\n'
    "• Paste a business card or email signature (or /card …) to create or merge a lead\n"
    '• Tasks: "remind me to call 42 tomorrow at 10" · "book a demo with Dana on Thursday 3pm"'
    ' · "what\'s on my plate today?" · /tasks\n'
    "• /inbox shows your unread notifications"
)

PRONOUNS = {
    "it",
    "this",
    "that",
    "them",
    "him",
    "her",
    "he",
    "she",
    "this lead",
    "that lead",
    "the lead",
    "this one",
    "that one",
    "this customer",
    "that customer",
    "this person",
    "they",
    "the customer",
    "that guy",
    "this guy",
    "the guy",
    "that lady",
    "the same one",
    "the same lead",
    "lead",
    "customer",
    "contact",
    "one",
    "same one",
    "it again",
}
_PERIOD = (
    r"(?:on\s+|since\s+|for\s+|from\s+|of\s+)?"
    r"(?P<period>today|yesterday|this week|last week|this month|"
    r"last month|monday|tuesday|wednesday|thursday|friday|saturday|sunday)"
)
# Words that start a request: typos are corrected only here, never inside names or texts.
_POLITE = {
    "please",
    "pls",
    "plz",
    "can",
    "could",
    "would",
    "you",
    "hey",
    "ok",
    "okay",
    "so",
    "now",
    "and",
    "also",
    "then",
    "quick",
    "quickly",
    "por",
    "favor",
    "porfa",
    "s'il",
    "te",
    "plait",
    "bitte",
    "kannst",
    "du",
}
# An afterthought starts at these: "set 12 to follow up, she asked for a call".
_AFTERTHOUGHT = re.compile(
    r"\s*(?:[,;!?]+|\.\s|\s[-–—]+\s|\s\((?![^)]*\)\s*:))\s*"
    r"|\s+(?=(?:because|cause|coz|bc|as she|as he|"
    r"she said|he said|she asked|he asked|they asked|"
    r"porque|ya que|pues|parce que|car|puisque|weil|denn|da sie|"
    r"pois|porque|لأن)\b)",
    re.IGNORECASE,
)
_POLITE_TAIL = re.compile(
    r"[\s,]+(?:pls|plz|please|thanks|thank you|thx|ty|asap|por favor|porfa|gracias|merci|"
    r"s'il te pla[iî]t|s'il vous pla[iî]t|bitte|danke|obrigad[oa]|شكرا)[\s.!]*$",
    re.IGNORECASE,
)
_POLITE_HEAD = re.compile(
    r"^(?:(?:hey|hi|hello|hola|salut)\s*,\s*|(?:ok|okay|so|pls|plz|please|por favor|can you|"
    r"could you|would you|puedes|podrias|peux-tu|kannst du|bitte)[\s,]+)+(?=\S)",
    re.IGNORECASE,
)
_FILTER_TAIL = re.compile(
    r"^(?:score|on|from|via|in|with|status|created|and|only|that|which|sorted|page)\b",
    re.IGNORECASE,
)
_ORDINALS = {
    "first": 1,
    "second": 2,
    "third": 3,
    "fourth": 4,
    "fifth": 5,
    "sixth": 6,
    "seventh": 7,
    "eighth": 8,
    "last": -1,
}
_CHANNELS = {
    "web": "web",
    "webchat": "web",
    "website": "web",
    "site": "web",
    "messenger": "messenger",
    "facebook": "messenger",
    "fb": "messenger",
    "instagram": "instagram",
    "insta": "instagram",
    "ig": "instagram",
    "whatsapp": "whatsapp",
    "wa": "whatsapp",
    "manual": "manual",
}
_LEAD = r"(?:lead\s+|customer\s+|contact\s+)?"


@dataclass
class ToolCall:
    name: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass
class Reply:
    text: str


Intent = ToolCall | Reply


def _clean(text: str) -> str:
    return " ".join((text or "").replace("\u00a0", " ").split())


def _ref(raw: str | None, focus: int | None) -> str | None:
    """The lead reference as typed, or the focus lead for 'it' / 'this lead' / nothing."""
    ref = (raw or "").strip().strip("?.!,;\"'").strip()
    ref = re.sub(r"^(?:to|a|the)\s+(?=\S)", "", ref, flags=re.IGNORECASE)
    ref = re.sub(r"^(?:lead|customer|contact)\s+(?=\S)", "", ref, flags=re.IGNORECASE)
    if not ref or fold(ref) in PRONOUNS:
        return str(focus) if focus is not None else None
    return ref


def _need_lead(name: str, raw: str | None, focus: int | None, **args: Any) -> Intent:
    ref = _ref(raw, focus)
    if ref is None:
        return Reply("Which lead? Give me an id, a phone number, an email or a name.")
    return ToolCall(name, {"lead": ref, **args})


def route(
    text: str,
    *,
    focus_lead_id: int | None = None,
    last_list: dict[str, Any] | None = None,
    clarify: dict[str, Any] | None = None,
    statuses: Sequence[str] = (),
    vocabulary: Vocabulary | None = None,
    fields: Sequence[str] = (),
    lost_statuses: Sequence[str] = (),
) -> Intent:
    """Turn one message from an agent into a tool call (or a direct answer). A move to one of
    `lost_statuses` (they ask why) keeps the words after the status as its reason."""
    vocabulary = vocabulary or EMPTY
    raw = (text or "").strip()
    if not _clean(raw):
        return Reply(HELP)
    if raw.startswith("/"):
        return _slash(raw, _clean(raw), focus_lead_id, last_list, statuses)
    if clarify:
        chosen = _choice(_clean(raw).lower().rstrip("?.! "), clarify)
        if chosen is not None:
            return ToolCall(
                clarify["tool"],
                {**clarify.get("args", {}), clarify.get("arg", "lead"): str(chosen)},
            )
    understood = understand(raw, vocabulary)
    intent = _route_english(understood, raw, focus_lead_id, last_list, statuses, fields)
    if intent is None and understood.full != understood.text:
        # The afterthought was not one: read the whole message.
        intent = _route_english(
            understood._replace(text=understood.full),
            raw,
            focus_lead_id,
            last_list,
            statuses,
            fields,
        )
    if intent is not None:
        return _with_reason(intent, understood, lost_statuses)
    if _is_greeting(understood.text.lower()):
        return Reply("Hello! " + HELP)
    return ToolCall("suggest_requests", {"text": raw[:200]})


def _with_reason(intent: Intent, understood: Understood, lost: Sequence[str]) -> Intent:
    """A move to a lost status keeps its afterthought as the reason ("mark 12 as lost, went with
    SunCo"); any other status change takes no reason."""
    if not isinstance(intent, ToolCall) or intent.name != "set_status":
        return intent
    if str(intent.args.get("status", "")).lower() not in {name.lower() for name in lost}:
        return ToolCall(intent.name, {k: v for k, v in intent.args.items() if k != "reason"})
    if (
        intent.args.get("reason")
        or understood.full == understood.text
        or not understood.full.startswith(understood.text)
    ):
        return intent
    _said, reason = _status_and_reason("x" + understood.full[len(understood.text) :])
    reason = re.sub(r"^(?:because|porque|due to)\s+(?:of\s+)?", "", reason, flags=re.I).strip()
    return ToolCall(intent.name, {**intent.args, "reason": reason}) if reason else intent


class Understood(NamedTuple):
    """A message read into the router's English: `text` without an afterthought, `full` with it."""

    text: str
    full: str


def understand(raw: str, vocabulary: Vocabulary) -> Understood:
    """Translate the vocabulary's phrases to English, correct typos in the command words, turn
    pronouns into 'it', and set aside a trailing afterthought. What follows a ':' stays as typed."""
    head, colon, tail = raw.partition(":") if _has_text_part(raw) else (raw, "", "")
    head = _POLITE_TAIL.sub("", _POLITE_HEAD.sub("", _clean(head)))
    full = _translate(_clean(head), vocabulary)
    cut = _AFTERTHOUGHT.split(_clean(head), maxsplit=1)
    short = full
    if len(cut) > 1 and cut[0].strip() and not _FILTER_TAIL.match(cut[-1].strip()) and not colon:
        short = _translate(_clean(cut[0]), vocabulary)
    whole = full + (f": {tail.strip()}" if colon else "")
    text = short + (f": {tail.strip()}" if colon else "")
    return Understood(text=text, full=whole)


def _translate(head: str, vocabulary: Vocabulary) -> str:
    # "donne-le", "écris-lui", "e-mail": the parts are words of their own (names fold hyphens
    # anyway).
    tokens = [
        part
        for token in head.split()
        for part in (
            token.split("-") if re.fullmatch(r"[^\W\d_]+(?:-[^\W\d_]+)+", token) else [token]
        )
    ]
    out: list[str] = []
    longest = max(vocabulary.longest, 4)
    i = 0
    command_position = True
    while i < len(tokens):
        token = tokens[i]
        plain = not re.search(r"[@\d]", token)
        replaced = False
        if plain:
            for n in range(min(longest, len(tokens) - i), 0, -1):
                window = tokens[i : i + n]
                if any(re.search(r"[@\d]", t) for t in window):
                    continue
                folded = fold(" ".join(window))
                if n > 1 or folded not in _KEEP:
                    target = vocabulary.phrases.get(folded)
                    is_pronoun = folded in vocabulary.pronouns or (n > 1 and folded in PRONOUNS)
                    if is_pronoun:
                        out.append("it")
                        i += n
                        replaced = True
                        break
                    if target is not None:
                        out.append(target)
                        i += n
                        replaced = True
                        break
        if replaced:
            command_position = command_position and out[-1] in _POLITE
            continue
        word = fold_word(token) if plain else ""
        if plain and command_position and word not in _POLITE and token.isalpha():
            if word in _ENGLISH or word in vocabulary.typo_words:
                token = word  # "Résume" reads as "resume"
            else:
                fixed = closest_word(word, vocabulary.typo_words)
                if fixed is not None and fixed != word:
                    token = fixed
        out.append(token)
        command_position = command_position and word in _POLITE
        i += 1
    return " ".join(out)


_KEEP = {"a", "to", "me", "my", "i", "it", "is", "on", "in", "for", "of", "the", "and", "as"}
# Words the router reads as they are: never "corrected" towards a command word.
_ENGLISH = {
    "more",
    "next",
    "note",
    "notes",
    "mine",
    "move",
    "mark",
    "make",
    "take",
    "tell",
    "send",
    "list",
    "find",
    "help",
    "give",
    "lead",
    "page",
    "open",
    "show",
    "what",
    "with",
    "from",
    "have",
    "this",
    "that",
    "call",
    "who",
    "whose",
    "which",
    "where",
    "when",
    "some",
    "stop",
    "start",
    "pause",
    "reply",
    "leads",
    "today",
    "week",
    "month",
    "menu",
    "hello",
    "thanks",
    "thank",
    "done",
    "then",
    "nope",
    "sure",
    "okay",
    "please",
    "resume",
    "status",
    "stale",
    "hand",
    "pass",
    "unassign",
    "reassign",
    "draft",
    "email",
    "write",
    "summary",
    "recap",
    "mails",
    "info",
    "details",
    "whats",
    "what's",
    "any",
    "news",
    "unread",
    "inbox",
    "remind",
    "book",
    "schedule",
    "tasks",
    "plate",
    "meet",
    "demo",
    *_CHANNELS,
}


def _has_text_part(raw: str) -> bool:
    """A ':' that introduces a note's or a reply's text (not the one in '5:30' or in a URL)."""
    head = raw.split(":", 1)[0]
    tail = raw.split(":", 1)[1] if ":" in raw else ""
    clock_time = bool(re.search(r"\d$", head) and re.match(r"\d", tail))
    return ":" in raw and not clock_time and not head.lower().endswith(("http", "https"))


def _is_greeting(lower: str) -> bool:
    return bool(
        re.fullmatch(
            r"(?:hi|hello|hey|good (?:morning|afternoon|evening)|salut|hola|bonjour|hallo|ola|"
            r"olá|buenos dias|buenas)(?: there)?[!.]*",
            lower,
        )
    )


def _route_english(
    understood: Understood,
    raw: str,
    focus_lead_id: int | None,
    last_list: dict[str, Any] | None,
    statuses: Sequence[str],
    fields: Sequence[str],
) -> Intent | None:
    clean = _clean(understood.text)
    if not clean:
        return Reply(HELP)
    lower = clean.lower().rstrip("?.! ")

    if lower in {"yes", "no", "y", "n", "yes please", "no thanks", "cancel", "ok", "okay"}:
        return Reply("There is nothing waiting for a yes or no right now.")
    if lower in {"help", "commands", "what can you do", "menu", "start", "?"} or lower.startswith(
        "help "
    ):
        return Reply(HELP)
    if _is_greeting(lower):
        return Reply("Hello! " + HELP)
    if re.fullmatch(r"(?:more|next|next page|show more|more please|continue|page \d+)", lower):
        if not last_list:
            return Reply("There is no list to continue. Try /hot or /today.")
        page = (
            int(lower.split()[-1])
            if lower.startswith("page ")
            else int(last_list.get("page") or 1) + 1
        )
        return ToolCall("list_leads", {**last_list, "page": page})

    # Pasted business cards and signatures: several lines with an email or a phone number.
    card = re.match(
        r"^(?:new lead|add (?:this |a )?(?:contact|lead|card)|create (?:a )?lead(?: from)?|"
        r"(?:business )?card|signature)\s*:?\s*(?P<body>.+)$",
        raw,
        re.IGNORECASE | re.DOTALL,
    )
    if card and (_has_contact(card.group("body")) or "\n" in card.group("body")):
        return ToolCall("fill_contact_card", {"text": card.group("body").strip()})
    if (
        "\n" in raw.strip()
        and _has_contact(raw)
        and not re.match(r"^(?:reply|note|tell|send|add)\b", lower)
    ):
        return ToolCall("fill_contact_card", {"text": raw.strip()})

    for matcher in (
        _task,
        _plate,
        _reply,
        _note,
        _merge,
        _digest,
        _bulk_filter,
        _bulk,
        _rename,
        _assign,
        _status,
        _archive,
        _resume,
        _takeover,
        _email,
        _qualify,
        _hot,
        _next_action,
        _summary,
        _find,
    ):
        intent = matcher(clean, lower, focus_lead_id, statuses)
        if intent is not None:
            return intent
    field_change = _set_field(clean, lower, focus_lead_id, fields)
    if field_change is not None:
        return field_change
    listing = _list(lower, statuses)
    if listing is not None:
        return listing
    if re.search(r"\bnotifications?\b|\binbox\b|\bwhat'?s new\b|\bany news\b|\bunread\b", lower):
        return ToolCall("my_notifications", {})
    if re.fullmatch(r"(?:lead\s+)?#?\d{1,7}", lower) or _is_contact(clean):
        return ToolCall("lead_summary", {"lead": clean.lstrip("#")})
    return None


# --- slash commands --------------------------------------------------------------------------


def _slash(
    raw: str,
    clean: str,
    focus: int | None,
    last_list: dict[str, Any] | None,
    statuses: Sequence[str],
) -> Intent:
    head, _, rest = (
        raw.strip().partition(" ")
        if "\n" not in raw.split(" ", 1)[0]
        else raw.strip().partition("\n")
    )
    command = head[1:].split("@", 1)[0].lower()
    rest = rest.strip()
    one_line = _clean(rest)
    lists = {
        "hot": "hot",
        "today": "follow_ups",
        "followups": "follow_ups",
        "follow_ups": "follow_ups",
        "unassigned": "unassigned",
        "stale": "stale",
        "recent": "recent",
        "new": "recent",
        "mine": "mine",
        "my": "mine",
        "leads": "all",
        "all": "all",
        "list": "all",
    }
    if command in ("start", "help"):
        return Reply(HELP)
    if command in lists:
        intent = _list(f"{command} leads {one_line.lower()}", statuses, default=lists[command])
        return intent or ToolCall("list_leads", {"kind": lists[command]})
    if command == "more":
        return route("more", last_list=last_list)
    if command in ("lead", "summary", "summarise", "summarize", "next", "show", "open"):
        return _need_lead("lead_summary", one_line, focus)
    if command in ("qualify", "bant"):
        return _need_lead("qualify_lead", one_line, focus)
    if command in ("ishot", "hotcheck", "is_hot"):
        return _need_lead("check_hot", one_line, focus)
    if command in ("email", "draft", "intro"):
        return _need_lead("draft_intro_email", one_line, focus)
    if command in ("find", "search", "lookup"):
        return (
            ToolCall("find_leads", {"query": one_line})
            if one_line
            else Reply("Find what? /find Dana")
        )
    if command in ("archive",):
        return _need_lead("archive_lead", one_line, focus)
    if command == "merge":
        return _merge(f"merge {one_line}", "", focus, statuses) or Reply("Usage: /merge 31 into 7")
    if command in ("resume", "resumebot"):
        return _need_lead("resume_bot", one_line, focus)
    if command in ("takeover", "take"):
        return _need_lead("take_over", one_line, focus)
    if command in ("inbox", "notifications"):
        return ToolCall("my_notifications", {})
    if command in ("tasks", "plate", "todo"):
        window = rest.strip().lower().replace("this week", "week") or "today"
        if window not in ("today", "overdue", "week", "open"):
            return Reply("Say /tasks, /tasks overdue, /tasks week or /tasks open.")
        return ToolCall("my_tasks", {"window": window})
    if command in ("card", "contact", "newlead"):
        if not rest:
            return Reply("Paste the business card or signature after /card.")
        return ToolCall("fill_contact_card", {"text": rest})
    if command == "note":
        ref, text = _split_ref(rest)
        if not text:
            return Reply("Usage: /note 42 Called, will decide on Friday")
        category, text = _category(text)
        return _need_lead("add_note", ref, focus, text=text, category=category)
    if command == "reply":
        ref, text = _split_ref(rest)
        if not text:
            return Reply("Usage: /reply 42 Thanks, I'll call you at 5")
        return _need_lead("reply_to_customer", ref, focus, text=text)
    if command == "status":
        status = _trailing_status(one_line, statuses)
        if status is None:
            return Reply("Usage: /status 42 Interested. Statuses: " + ", ".join(statuses))
        ref = one_line[: len(one_line) - len(status)].strip()
        return _need_lead("set_status", ref, focus, status=status)
    if command in ("assign", "give"):
        match = re.match(r"^(?P<ref>.+?)\s+to\s+(?P<agent>.+)$", one_line, re.IGNORECASE)
        if match:
            return _need_lead("assign_lead", match.group("ref"), focus, agent=match.group("agent"))
        parts = one_line.rsplit(" ", 1)
        if len(parts) != 2:
            return Reply("Usage: /assign 42 Mike")
        return _need_lead("assign_lead", parts[0], focus, agent=parts[1])
    if command == "unassign":
        return _need_lead("assign_lead", one_line, focus, agent="nobody")
    if command in ("reassign", "move"):
        match = re.match(
            r"^(?:from\s+)?(?P<src>.+?)\s+(?:to\s+)?(?P<dst>\S+)$", one_line, re.IGNORECASE
        )
        if not match:
            return Reply("Usage: /reassign Sarah Mike (moves all of Sarah's open leads to Mike)")
        return ToolCall(
            "reassign_leads",
            {
                "from_agent": _agent_ref(match.group("src")),
                "to_agent": _agent_ref(match.group("dst")),
            },
        )
    return Reply(f"I don't know /{command}.\n" + HELP)


def _split_ref(rest: str) -> tuple[str, str]:
    """'42 some text' / 'Dana Smith: some text' -> (ref, text)."""
    rest = rest.strip()
    first, _, tail = rest.partition(" ")
    simple = re.fullmatch(r"#?\d{1,7}:?|[\w.+-]+@[\w-]+\.[\w.-]+:?|\+?\d[\d().-]{6,}:?", first)
    if simple or ":" not in rest.split("\n", 1)[0]:
        return first.rstrip(":"), tail.strip()
    ref, _, text = rest.partition(":")
    return ref.strip(), text.strip()


def _category(text: str) -> tuple[str, str]:
    """A leading '[Follow-up]' or 'Objection:' picks the note category."""
    for category in NOTE_CATEGORIES:
        pattern = re.escape(category).replace(r"\-", "[- ]?").replace(r"\ ", r"\s*")
        match = re.match(
            rf"^\s*(?:\[\s*{pattern}\s*\]|\(\s*{pattern}\s*\)|{pattern}\s*:)\s*(.+)$",
            text,
            re.IGNORECASE | re.DOTALL,
        )
        if match:
            return category, match.group(1).strip()
    return "General", text.strip()


def _trailing_status(text: str, statuses: Sequence[str]) -> str | None:
    lowered = text.lower()
    for status in sorted(statuses, key=len, reverse=True):
        if lowered.endswith(status.lower()) and (
            len(lowered) == len(status) or lowered[-len(status) - 1] == " "
        ):
            return text[len(text) - len(status) :]
    return None


_REASON_SPLIT = re.compile(r"\s*[;:,]\s*|\s+-\s+|\s+(?:because(?:\s+of)?|due\s+to)\s+", re.I)


def _status_and_reason(text: str) -> tuple[str, str]:
    """ "lost: chose a competitor" → ("lost", "chose a competitor"); no reason → (text, "")."""
    parts = _REASON_SPLIT.split(text, maxsplit=1)
    if len(parts) < 2:
        return text, ""
    return parts[0].strip(), re.sub(r"^(?:the)\s+", "", parts[1].strip(), flags=re.I)


def _status_named(text: str, statuses: Sequence[str]) -> str | None:
    wanted = " ".join(text.replace("-", " ").split()).lower().strip("\"'")
    for status in statuses:
        if " ".join(status.replace("-", " ").split()).lower() == wanted:
            return status
    return None


def _agent_ref(text: str) -> str:
    text = text.strip().strip("?.!,")
    text = re.sub(r"(?:'s|’s|s')$", "", text)
    return "me" if text.lower() in ("my", "me", "mine", "myself", "i") else text


def _has_contact(text: str) -> bool:
    return bool(
        re.search(r"[\w.+-]+@[\w-]+\.[\w.-]+", text)
        or re.search(r"(?:\+|\b)\d[\d\s().-]{6,}\d", text)
    )


def _is_contact(text: str) -> bool:
    return bool(
        re.fullmatch(r"[\w.+-]+@[\w-]+\.[\w.-]+", text)
        or re.fullmatch(r"\+?[\d\s().-]{7,20}", text)
    )


def _choice(lower: str, clarify: dict[str, Any]) -> int | None:
    """The candidate picked: '2' is the second in the list shown, '#17' / 'lead 17' is lead 17."""
    candidates = [int(c) for c in clarify.get("candidates", [])]
    match = re.fullmatch(r"(?:#|lead\s*#?|id\s*)(\d{1,7})", lower)
    if match:
        value = int(match.group(1))
        return value if value in candidates else None
    match = re.fullmatch(r"(?:number |no\.? ?|option )?(\d{1,7})(?:st|nd|rd|th)?", lower)
    if match:
        value = int(match.group(1))
        if 1 <= value <= len(candidates):
            return candidates[value - 1]
        return value if value in candidates else None
    match = re.fullmatch(
        r"(?:the )?(first|second|third|fourth|fifth|sixth|seventh|eighth|last)(?: one)?", lower
    )
    if match:
        index = _ORDINALS[match.group(1)]
        if index == -1:
            return candidates[-1] if candidates else None
        return candidates[index - 1] if index <= len(candidates) else None
    return _choice_by_name(lower, candidates, [str(label) for label in clarify.get("labels", [])])


def _choice_by_name(lower: str, candidates: list[int], labels: list[str]) -> int | None:
    """The one candidate a name or a distinguishing word picks ('Fernández', 'the one at Acme')."""
    if len(labels) != len(candidates) or len(lower) > 80:
        return None
    words = [
        w
        for w in fold(
            re.sub(r"^(?:the one (?:at|from|with|called)|the one|la de|el de|the)\s+", "", lower)
        ).split()
        if w not in {"one", "lead", "please"}
    ]
    if not words:
        return None
    scores = [name_score(" ".join(words), fold(label)) for label in labels]
    best = max(scores)
    if best < 85:
        return None
    top = [c for c, score in zip(candidates, scores, strict=True) if score >= best - 0.5]
    return top[0] if len(top) == 1 else None


# --- plain English ---------------------------------------------------------------------------


def _reply(clean: str, lower: str, focus: int | None, statuses: Sequence[str]) -> Intent | None:
    match = re.match(
        rf"^(?:reply|respond|answer|write back|send a message|send|tell|message|text)\s+(?:to\s+)?"
        rf"{_LEAD}(?P<ref>[^:]+?)\s*(?::|\bsaying\b|\bwith\b)\s*(?P<text>.+)$",
        clean,
        re.IGNORECASE | re.DOTALL,
    )
    if match and match.group("text").strip():
        return _need_lead(
            "reply_to_customer", match.group("ref"), focus, text=match.group("text").strip()
        )
    return None


def _note(clean: str, lower: str, focus: int | None, statuses: Sequence[str]) -> Intent | None:
    categories = "|".join(
        re.escape(c).replace(r"\-", "[- ]?").replace(r"\ ", r"\s*") for c in NOTE_CATEGORIES
    )
    match = re.match(
        rf"^(?:add|put|leave|make|write)?\s*(?:an?\s+)?(?P<cat>{categories})?\s*note\s+"
        rf"(?:to|on|for|about)?\s*{_LEAD}(?P<ref>[^:()]+?)\s*(?:\((?P<cat2>[^)]+)\))?\s*:\s*(?P<text>.+)$",
        clean,
        re.IGNORECASE | re.DOTALL,
    )
    if not match:
        return None
    label = match.group("cat") or match.group("cat2")
    category = "General"
    if label:
        wanted = label.replace(" ", "").replace("-", "").lower()
        category = next(
            (c for c in NOTE_CATEGORIES if c.replace(" ", "").replace("-", "").lower() == wanted),
            "General",
        )
    text = match.group("text").strip()
    if category == "General":
        category, text = _category(text)
    return _need_lead("add_note", match.group("ref"), focus, text=text, category=category)


_TASK_VERBS = {
    "call": "call",
    "phone": "call",
    "ring": "call",
    "email": "email",
    "e-mail": "email",
    "mail": "email",
    "write to": "email",
    "meet": "meeting",
    "meet with": "meeting",
    "visit": "meeting",
    "follow up with": "other",
    "follow up on": "other",
    "check in with": "other",
    "text": "other",
    "message": "other",
}
_TASK_THINGS = {
    "demo": "meeting",
    "meeting": "meeting",
    "site survey": "meeting",
    "survey": "meeting",
    "visit": "meeting",
    "call": "call",
    "callback": "call",
    "call back": "call",
    "email": "email",
    "follow up": "other",
    "follow-up": "other",
}


def _split_when(rest: str) -> tuple[str, str] | None:
    """(who, when) of "Dana tomorrow at 10": the due time is where the first time word starts."""
    found = WHEN_START.search(rest)
    if found is None or found.start() == 0:
        return None
    return rest[: found.start()].strip(" ,"), rest[found.start() :].strip()


def _task(clean: str, lower: str, focus: int | None, statuses: Sequence[str]) -> Intent | None:
    """ "remind me to call Dana tomorrow at 10", "book a demo with 42 on Thursday 3pm"."""
    verbs = "|".join(sorted((re.escape(v) for v in _TASK_VERBS), key=len, reverse=True))
    things = "|".join(sorted((re.escape(t) for t in _TASK_THINGS), key=len, reverse=True))
    text = clean.rstrip("?.! ")
    notes = ""
    if ":" in text:
        text, _, notes = text.partition(":")
    reminder = re.match(
        rf"^(?:remind me to|reminder to|remember to|i need to|i have to|schedule a reminder to)\s+"
        rf"(?P<verb>{verbs})\s+(?P<rest>.+)$",
        text,
        re.IGNORECASE,
    )
    booking = re.match(
        rf"^(?:book|schedule|set up|arrange|plan|add)\s+(?:a|an|the)?\s*(?P<thing>{things})"
        rf"(?:\s+task)?\s+(?:with|for|on)\s+(?P<rest>.+)$",
        text,
        re.IGNORECASE,
    )
    if reminder:
        kind, rest = _TASK_VERBS[reminder.group("verb").lower()], reminder.group("rest")
    elif booking:
        kind, rest = _TASK_THINGS[booking.group("thing").lower()], booking.group("rest")
        thing = booking.group("thing").lower()
        if thing not in ("meeting", "call", "email", "follow up", "follow-up") and not notes:
            notes = thing
    else:
        return None
    split = _split_when(rest)
    if split is None:
        who = _ref(rest, focus)
        if who is None or WHEN_START.match(rest):
            return Reply('Which lead, and when? Say e.g. "remind me to call Dana tomorrow at 10".')
        return Reply(f'When? Say e.g. "remind me to {kind} {who} tomorrow at 10".')
    who, when = split
    return _need_lead("schedule_task", who, focus, kind=kind, when=when, notes=notes.strip())


def _plate(clean: str, lower: str, focus: int | None, statuses: Sequence[str]) -> Intent | None:
    """ "what's on my plate today?", "my tasks this week", "overdue tasks"."""
    match = re.match(
        r"^(?:what'?s|what is|whats|what do i have|anything)\s+(?:on\s+)?(?:my plate|on for me|"
        r"to do|due|on my list)(?:\s+(?:for\s+)?(?P<w1>today|this week|overdue))?$|"
        r"^(?:show\s+|list\s+)?(?:me\s+)?(?:my\s+)?(?P<w2>overdue\s+)?"
        r"(?:tasks|to-?dos|follow-?up tasks|reminders)"
        r"(?:\s+(?:for\s+)?(?P<w3>today|this week|overdue))?$",
        lower,
    )
    if match is None:
        return None
    window = (match.group("w1") or match.group("w3") or (match.group("w2") or "")).strip()
    window = {"this week": "week", "": "today"}.get(window, window)
    return ToolCall("my_tasks", {"window": window})


def _merge(clean: str, lower: str, focus: int | None, statuses: Sequence[str]) -> Intent | None:
    match = re.match(
        rf"^merge\s+{_LEAD}(?P<src>.+?)\s+(?:into|with)\s+{_LEAD}(?P<dst>.+)$",
        clean.rstrip("?.! "),
        re.IGNORECASE,
    )
    if match is None:
        return None
    src, dst = _ref(match.group("src"), focus), _ref(match.group("dst"), focus)
    if src is None or dst is None:
        return Reply('Which leads? Say e.g. "merge 31 into 7".')
    return ToolCall("merge_leads", {"lead": src, "into": dst})


def _bulk(clean: str, lower: str, focus: int | None, statuses: Sequence[str]) -> Intent | None:
    patterns = (
        r"^(?:move|reassign|transfer|give|hand(?: over)?|assign)\s+all\s+"
        r"(?:of\s+)?(?:the\s+)?(?P<src>.+?)"
        r"(?:'s|’s|s')?\s+(?:open\s+)?leads\s+(?:over\s+)?to\s+(?P<dst>.+)$",
        r"^(?:move|reassign|transfer|give|hand(?: over)?)\s+"
        r"(?:all\s+)?(?:the\s+)?(?:open\s+)?leads\s+(?:of|from)\s+"
        r"(?P<src>.+?)\s+(?:over\s+)?to\s+(?P<dst>.+)$",
    )
    for pattern in patterns:
        match = re.match(pattern, clean.rstrip("?.! "), re.IGNORECASE)
        if match:
            return ToolCall(
                "reassign_leads",
                {
                    "from_agent": _agent_ref(match.group("src")),
                    "to_agent": _agent_ref(match.group("dst")),
                },
            )
    match = re.match(
        r"^unassign\s+all\s+(?:of\s+)?(?P<src>.+?)(?:'s|’s|s')?\s+leads$",
        clean.rstrip("?.! "),
        re.IGNORECASE,
    )
    if match:
        return ToolCall(
            "reassign_leads", {"from_agent": _agent_ref(match.group("src")), "to_agent": "nobody"}
        )
    return None


_PROFILE_FIELDS = ("name", "company", "email", "phone", "title", "website")


def _rename(clean: str, lower: str, focus: int | None, statuses: Sequence[str]) -> Intent | None:
    match = re.match(
        rf"^(?:rename|re-name)\s+{_LEAD}(?P<ref>.+?)\s+(?:to|as|into|a|à|en|zu|in|para|em)\s+"
        r"(?P<value>.+)$",
        clean,
        re.IGNORECASE,
    )
    if match:
        return _need_lead(
            "set_field",
            match.group("ref"),
            focus,
            field="name",
            value=match.group("value").strip().strip("\"'"),
        )
    return None


def _set_field(clean: str, lower: str, focus: int | None, fields: Sequence[str]) -> Intent | None:
    """'set 12's company to Acme', 'set the name of lead 1 to Ana Ruiz', 'change her email to
    a@b.co'."""
    names = sorted(
        {*(_PROFILE_FIELDS), *(f.replace("_", " ") for f in fields), *fields}, key=len, reverse=True
    )
    known = "|".join(re.escape(name) for name in names)
    patterns = (
        rf"^(?:set|change|update|put|make|fix)\s+(?:the\s+)?(?P<field>{known})\s+(?:of|for|on)\s+{_LEAD}"
        rf"(?P<ref>.+?)\s+(?:to|as|=|:|a|à|en|auf|zu|para|em)\s*(?P<value>.+)$",
        rf"^(?:set|change|update|put|make|fix)\s+{_LEAD}(?P<ref>.+?)(?:'s|’s)\s+(?P<field>{known})\s+(?:to|as|=|:)\s*"
        rf"(?P<value>.+)$",
        rf"^(?:set|change|update|put|make|fix)\s+(?:the\s+)?{_LEAD}(?P<ref>.+?)\s+(?P<field>{known})\s+(?:to|as|=|:)\s*"
        rf"(?P<value>.+)$",
        rf"^{_LEAD}(?P<ref>.+?)(?:'s|’s)\s+(?P<field>{known})\s+is\s+(?P<value>.+)$",
    )
    for pattern in patterns:
        match = re.match(pattern, clean, re.IGNORECASE)
        if match:
            field_name = match.group("field").lower()
            if field_name not in _PROFILE_FIELDS:
                field_name = next(
                    (
                        f
                        for f in fields
                        if f.lower() == field_name.replace(" ", "_")
                        or f.lower().replace("_", " ") == field_name
                    ),
                    field_name,
                )
            value = match.group("value").strip().strip("\"'")
            return _need_lead("set_field", match.group("ref"), focus, field=field_name, value=value)
    return None


def _bulk_filter(
    clean: str, lower: str, focus: int | None, statuses: Sequence[str]
) -> Intent | None:
    """Every lead matching a filter to one agent, one status, or the archive."""
    match = re.match(
        r"^(?P<verb>assign|give|move|hand(?: over)?|transfer|set|mark|put|archive|change)\s+"
        r"(?:all|every|each)\s+(?:of\s+)?(?:the\s+)?(?P<filter>.*?\bleads?\b.*?)"
        r"(?:\s+(?P<conn>to|as|a|in|into)\s+(?P<target>.+))?$",
        lower,
    )
    if not match:
        return None
    target_status = _status_named((match.group("target") or "").strip(), statuses)
    if target_status and match.group("verb") in ("set", "mark", "put", "move", "change"):
        filters = _list(match.group("filter") + " leads", statuses, default="all")
        args: dict[str, Any] = (
            dict(filters.args) if isinstance(filters, ToolCall) else {"kind": "all"}
        )
        if args.pop("agent", None) == "me" and args.get("kind") == "all":
            args["kind"] = "mine"
        args.pop("page", None)
        args.pop("detail", None)
        if "status" in args:
            args["filter_status"] = args.pop("status")
        return ToolCall("bulk_update", {**args, "action": "status", "status": target_status})
    owner = re.match(
        r"^(?:of\s+)?(?:my|\S+(?:'s|’s|s'))\s+(?:open\s+)?leads$|^(?:open\s+)?leads\s+(?:of|from)\s+"
        r"(?P<src>\S+)$",
        match.group("filter"),
    )
    if owner and (owner.group("src") or "") not in _CHANNELS:
        return None  # "move all of Sarah's leads to Mike" is a reassignment
    filters = _list(match.group("filter") + " leads", statuses, default="all")
    args = dict(filters.args) if isinstance(filters, ToolCall) else {"kind": "all"}
    if args.get("agent"):
        return None
    args.pop("page", None)
    args.pop("detail", None)
    if "status" in args:
        args["filter_status"] = args.pop("status")
    verb, target = match.group("verb"), (match.group("target") or "").strip()
    if verb == "archive":
        if target:
            return None
        return ToolCall("bulk_update", {**args, "action": "archive"})
    if not target:
        return None
    status = _status_named(target, statuses)
    if status and verb in ("set", "mark", "put", "move", "change"):
        return ToolCall("bulk_update", {**args, "action": "status", "status": status})
    if verb in ("set", "mark", "put", "change") and not status:
        return None
    original = _original(clean, target)
    return ToolCall("bulk_update", {**args, "action": "assign", "agent": _agent_ref(original)})


def _assign(clean: str, lower: str, focus: int | None, statuses: Sequence[str]) -> Intent | None:
    match = re.match(
        rf"^(?:re-?assign|assign|give|hand(?: over)?|pass|move|transfer)\s+{_LEAD}(?P<ref>.+?)\s+"
        r"(?:over\s+)?(?:to|a|à|an|para|zu)\s+(?P<agent>.+)$",
        clean,
        re.IGNORECASE,
    )
    if match:
        if _status_named(match.group("agent"), statuses):
            return None  # "move 42 to Follow Up" is a status change
        return _need_lead(
            "assign_lead", match.group("ref"), focus, agent=_agent_ref(match.group("agent"))
        )
    match = re.match(
        rf"^(?:assign|give)\s+(?:me|myself)\s+{_LEAD}(?P<ref>.+)$", clean, re.IGNORECASE
    )
    if match and not re.search(r"\bleads\b|\blist\b", match.group("ref"), re.IGNORECASE):
        return _need_lead("assign_lead", match.group("ref"), focus, agent="me")
    match = re.match(
        rf"^(?:assign|give)\s+{_LEAD}(?P<ref>.+?)\s+(?:to\s+)?(?:me|myself)$", clean, re.IGNORECASE
    )
    if match:
        return _need_lead("assign_lead", match.group("ref"), focus, agent="me")
    match = re.match(rf"^unassign\s+{_LEAD}(?P<ref>.+)$", clean, re.IGNORECASE)
    if match:
        return _need_lead("assign_lead", match.group("ref"), focus, agent="nobody")
    return None


def _status(clean: str, lower: str, focus: int | None, statuses: Sequence[str]) -> Intent | None:
    # (pattern, whether an unknown status name still counts: only when the wording says "status")
    patterns = (
        (
            rf"^(?:set|change|update)\s+(?:the\s+)?status\s+(?:of\s+|for\s+)?{_LEAD}(?P<ref>.+?)\s+to\s+"
            r"(?P<status>.+)$",
            True,
        ),
        (rf"^(?:set|change|update)\s+{_LEAD}(?P<ref>.+?)'s\s+status\s+to\s+(?P<status>.+)$", True),
        (rf"^mark\s+{_LEAD}(?P<ref>.+?)\s+as\s+(?P<status>.+)$", True),
        (
            rf"^(?:set|change|update|move|put|mark)\s+{_LEAD}(?P<ref>.+?)\s+(?:to|as|in|into|en|a|à|auf|zu|para|em|"
            r"como|comme|als|for)\s+(?P<status>.+)$",
            False,
        ),
        (rf"^{_LEAD}(?P<ref>.+?)\s+(?:is|are)\s+(?:now\s+)?(?P<status>.+)$", False),
        (rf"^{_LEAD}(?P<ref>\S+)\s+(?:is\s+now|status)\s*:?\s+(?P<status>.+)$", False),
    )
    for pattern, lenient in patterns:
        match = re.match(pattern, clean, re.IGNORECASE)
        if match:
            wanted = re.sub(
                r"^status\s+",
                "",
                match.group("status").strip().strip("?.!\"'"),
                flags=re.IGNORECASE,
            )
            wanted = re.sub(
                r"\s+(?:now|again|please|then|too|as well|already)$",
                "",
                wanted,
                flags=re.IGNORECASE,
            )
            # "lost: chose a competitor", "lost because of the price": the status and why.
            said, reason = _status_and_reason(wanted)
            status = _status_named(said, statuses) if reason else None
            if status:
                return _need_lead(
                    "set_status", match.group("ref"), focus, status=status, reason=reason
                )
            status = _status_named(wanted, statuses) or (wanted if lenient else None)
            if status:
                return _need_lead("set_status", match.group("ref"), focus, status=status)
    return None


def _archive(clean: str, lower: str, focus: int | None, statuses: Sequence[str]) -> Intent | None:
    match = re.match(rf"^(?:please\s+)?archive\s+{_LEAD}(?P<ref>.*)$", clean, re.IGNORECASE)
    if match:
        return _need_lead("archive_lead", match.group("ref"), focus)
    return None


def _resume(clean: str, lower: str, focus: int | None, statuses: Sequence[str]) -> Intent | None:
    patterns = (
        r"^(?:resume|restart|unpause|re-?enable|turn on|reactivate|start)\s+"
        r"(?:the\s+)?(?:bot|ai|assistant)"
        rf"(?:\s+(?:for|on|with)\s+{_LEAD}(?P<ref>.+))?$",
        r"^(?:let|have)\s+the\s+(?:bot|ai|assistant)\s+"
        rf"(?:handle|answer|take|talk to|reply to)\s+{_LEAD}(?P<ref>.+?)"
        r"(?:\s+again)?$",
        rf"^(?:give|hand)\s+{_LEAD}(?P<ref>.+?)\s+back\s+to\s+the\s+(?:bot|ai|assistant)$",
    )
    for pattern in patterns:
        match = re.match(pattern, lower)
        if match:
            return _need_lead("resume_bot", match.group("ref"), focus)
    return None


def _takeover(clean: str, lower: str, focus: int | None, statuses: Sequence[str]) -> Intent | None:
    match = re.match(
        r"^(?:take\s*over|i'?ll take|pause the (?:bot|ai) (?:for|on)"
        r"|stop the (?:bot|ai) (?:for|on))"
        rf"\s*{_LEAD}(?P<ref>.*)$",
        lower,
    )
    if match:
        return _need_lead("take_over", match.group("ref"), focus)
    return None


_INTRO = r"(?:intro(?:duction|ductory)?|first|outreach|welcome)"


def _email(clean: str, lower: str, focus: int | None, statuses: Sequence[str]) -> Intent | None:
    # "send the intro email to 42", "send dana the intro email": drafted, then sent on yes.
    match = re.match(
        rf"^(?:please\s+)?send\s+(?:the\s+|an?\s+|my\s+)?{_INTRO}\s+e-?mail\s+(?:draft\s+)?"
        rf"(?:to|for|a)\s+{_LEAD}(?P<ref>.+)$",
        clean,
        re.IGNORECASE,
    ) or re.match(
        rf"^(?:please\s+)?send\s+(?P<ref>.+?)\s+(?:the\s+|an?\s+|my\s+)?{_INTRO}\s+e-?mail$",
        clean,
        re.IGNORECASE,
    )
    if match:
        return _need_lead("draft_intro_email", match.group("ref"), focus, send=True)
    match = re.match(
        r"^(?:please\s+)?(?:draft|write|prepare|compose|create|make)?\s*(?:me\s+)?(?:an?\s+)?"
        r"(?:intro(?:duction|ductory)?|first|outreach|welcome)?\s*e-?mail\s*(?:draft\s*)?"
        rf"(?:for|to)?\s*{_LEAD}(?P<ref>.*)$",
        clean,
        re.IGNORECASE,
    )
    if (
        match
        and re.search(r"e-?mail", lower)
        and re.match(
            r"^(?:please\s+)?(?:draft|write|prepare|compose|create|"
            r"make|intro|an?\s+intro|e-?mail)",
            lower,
        )
    ):
        return _need_lead("draft_intro_email", match.group("ref"), focus)
    match = re.match(
        r"^(?:please\s+)?(?:draft|write|prepare|compose|send)\s+(?P<ref>.+?)\s+(?:an?\s+)?"
        r"(?:intro(?:duction|ductory)?|first|outreach|welcome|short|quick)?\s*(?:intro\s+)?e-?mail"
        r"(?:\s+draft)?$",
        clean,
        re.IGNORECASE,
    )
    if match:
        return _need_lead("draft_intro_email", match.group("ref"), focus)
    return None


def _qualify(clean: str, lower: str, focus: int | None, statuses: Sequence[str]) -> Intent | None:
    match = re.match(
        rf"^(?:please\s+)?(?:qualify|bant(?:\s+(?:for|on))?|run bant on)\s*{_LEAD}(?P<ref>.*)$",
        clean,
        re.IGNORECASE,
    )
    if match:
        return _need_lead("qualify_lead", match.group("ref"), focus)
    match = re.match(rf"^is\s+{_LEAD}(?P<ref>.+?)\s+qualified$", lower)
    if match:
        return _need_lead("qualify_lead", match.group("ref"), focus)
    return None


def _hot(clean: str, lower: str, focus: int | None, statuses: Sequence[str]) -> Intent | None:
    patterns = (
        rf"^(?:is|are)\s+{_LEAD}(?P<ref>.+?)\s+"
        r"(?:a\s+)?(?:hot|warm|ready to buy|hot lead|worth (?:it|chasing))$",
        rf"^how\s+(?:hot|warm)\s+is\s+{_LEAD}(?P<ref>.+)$",
        r"^(?:is\s+)?(?:it|this|that)\s+hot$",
        rf"^(?:is|are)\s+(?:hot|warm)\s+{_LEAD}(?P<ref>.+)$",
        r"^is\s+(?:hot|warm)$",
    )
    for pattern in patterns:
        match = re.match(pattern, lower)
        if match:
            return _need_lead("check_hot", match.groupdict().get("ref"), focus)
    return None


def _next_action(
    clean: str, lower: str, focus: int | None, statuses: Sequence[str]
) -> Intent | None:
    patterns = (
        rf"^what\s+(?:should|do|can|shall)\s+i\s+do\s+(?:next\s+)?(?:with|about|for|on)\s+{_LEAD}(?P<ref>.+?)"
        r"(?:\s+next)?$",
        r"^(?:what'?s|what is|whats)\s+(?:the\s+)?next\s*"
        r"(?:step|action|best action|move)?s?\s*(?:for|with|on)"
        rf"\s+{_LEAD}(?P<ref>.+)$",
        r"^(?:the\s+)?next\s+(?:step|action|best action|move)s?\s*(?:for|with|on)?\s*"
        rf"{_LEAD}(?P<ref>.*)$",
        r"^what\s+(?:should|do)\s+i\s+do\s+next(?:\s+with\s+(?P<ref>.+))?$",
        r"^(?:what'?s|what is|whats)\s+next(?:\s+for\s+(?P<ref>.+))?$",
        r"^how\s+do\s+i\s+move\s+(?P<ref>.+?)\s+forward$",
    )
    for pattern in patterns:
        match = re.match(pattern, lower)
        if match:
            ref = match.groupdict().get("ref")
            if ref is not None and ref.strip():
                ref = _original(clean, ref)
            return _need_lead("next_action", ref, focus)
    return None


def _digest(clean: str, lower: str, focus: int | None, statuses: Sequence[str]) -> Intent | None:
    match = re.match(
        rf"^(?:so\s+)?(?:what\s+(?:has\s+)?happened|what\s+went\s+on|what\s+changed|any\s+activity|"
        rf"activity|digest|recap|catch me up|what did i miss)\s*(?:on the desk\s*)?{_PERIOD}?"
        r"(?:\s+on the desk)?$",
        lower,
    )
    if match:
        return ToolCall("activity_digest", {"period": match.group("period") or "today"})
    match = re.match(
        rf"^(?:give me\s+)?(?:the\s+|a\s+)?(?:activity\s+)?(?:digest|recap|summary|rundown)\s+"
        rf"(?:of\s+)?{_PERIOD}$",
        lower,
    )
    if match:
        return ToolCall("activity_digest", {"period": match.group("period")})
    return None


def _summary(clean: str, lower: str, focus: int | None, statuses: Sequence[str]) -> Intent | None:
    patterns = (
        rf"^(?:please\s+)?(?:summari[sz]e|sum up|recap|brief me on|resume)\s*{_LEAD}(?P<ref>.*)$",
        r"^(?:give me\s+)?(?:a\s+|the\s+)?(?:summary|details|info|status|overview)\s+"
        r"(?:of|for|on|about)\s+"
        rf"{_LEAD}(?P<ref>.+)$",
        r"^(?:tell me about|show(?: me)?|open|who is|who's|what about|how is|how's|look at)\s+"
        rf"{_LEAD}(?P<ref>.+?)"
        r"(?:\s+(?:doing|getting on|going|coming along))?$",
    )
    for pattern in patterns:
        match = re.match(pattern, lower)
        if match:
            ref = match.groupdict().get("ref")
            if ref and re.search(r"\bleads\b", ref):
                return None  # "show me hot leads" is a list
            if ref is not None and ref.strip():
                ref = _original(clean, ref)  # keep the case of names and emails
            return _need_lead("lead_summary", ref, focus)
    return None


def _find(clean: str, lower: str, focus: int | None, statuses: Sequence[str]) -> Intent | None:
    match = re.match(
        r"^(?:find|search(?: for)?|look ?up|lookup|look for)\s+(?:lead\s+|leads\s+)?(?P<q>.+)$",
        clean,
        re.IGNORECASE,
    )
    if match and not re.search(r"\bleads\b", match.group("q").lower()):
        return ToolCall("find_leads", {"query": match.group("q").strip().strip("?.!")})
    return None


def _original(clean: str, lowered_fragment: str) -> str:
    """The fragment with its original capitalisation (matching was done on the lower-cased text)."""
    fragment = lowered_fragment.strip()
    index = clean.lower().rfind(fragment)
    return clean[index : index + len(fragment)] if index >= 0 else fragment


# --- lists -----------------------------------------------------------------------------------


def _list(lower: str, statuses: Sequence[str], default: str | None = None) -> Intent | None:
    """A request for a list of leads, with kind and filters, or None when it is not one."""
    kind = default
    period_match = re.search(
        r"\b(today|yesterday|this week|last week|this month|last month|monday|tuesday|"
        r"wednesday|thursday|friday|saturday|sunday)\b",
        lower,
    )
    recent = re.search(
        r"\b(?:new|recent|latest|newest|fresh)\s+(?:\w+\s+)?leads\b"
        r"|\bcreated\b|\brecently created\b|"
        r"\bcame in\b|\barrived\b|\bleads created\b",
        lower,
    )
    if re.search(r"\bhot(?:test)?\b", lower):
        kind = "hot"
    elif recent:
        kind = "recent"
    elif re.search(
        r"follow[- ]?ups?\b|to follow up|due today|today'?s (?:leads|list|tasks)|\btoday\b", lower
    ):
        kind = "follow_ups"
    elif re.search(r"\bunassigned\b|\bnot assigned\b|\bnobody'?s\b|\bunclaimed\b", lower):
        kind = "unassigned"
    elif re.search(
        r"\bstale\b|\bgone (?:quiet|cold)\b|\bcold leads\b|\binactive\b|\bneglected\b"
        r"|\bquiet leads\b",
        lower,
    ):
        kind = "stale"
    elif re.search(
        r"^my\s+(?:open\s+)?leads\b|\bshow\s+(?:me\s+)?my\s+(?:open\s+)?leads\b|\blist\s+my\s+leads\b|"
        r"\bleads assigned to me\b|\bmine\b|^my leads$",
        lower,
    ):
        kind = "mine"
    args: dict[str, Any] = {"kind": kind or "all"}
    if kind == "recent" and period_match:
        args["period"] = period_match.group(1)
    if kind != "mine":
        owner = re.search(
            r"(?:^|\s)(?P<who>my|[a-z][\w.-]*(?:'s|’s|s'))\s+(?:(?:open|hot|new|stale|recent|interested|"
            r"[a-z]+)\s+){0,3}leads\b",
            lower,
        )
        by = re.search(
            r"\bleads\s+(?:of|assigned to|owned by|belonging to|for agent)\s+(?P<who>[a-z][\w.-]*)",
            lower,
        )
        who = (owner.group("who") if owner else None) or (by.group("who") if by else None)
        if who:
            who = re.sub(r"(?:'s|’s|s')$", "", who)
            if who not in _CHANNELS and who not in (
                "today",
                "yesterday",
                "week",
                "month",
                "everyone",
                "everybody",
            ):
                args["agent"] = _agent_ref(who)
    if re.search(r"\b(?:summari[sz]e|sum up|brief me on|recap|overview of|summary of)\b", lower):
        args["detail"] = True
    status = None
    match = re.search(
        r"\bstatus\s*(?:is|=|:)?\s*(?P<s>[a-z][a-z \-]*?)(?:\s+(?:leads|on|in|with|score)\b|$)",
        lower,
    )
    if match:
        status = _status_named(match.group("s"), statuses) or match.group("s").strip()
    else:
        for name in sorted(statuses, key=len, reverse=True):
            if re.search(
                rf"\b{re.escape(name.lower())}\s+leads\b|\bleads\s+(?:that are|marked|in)\s+"
                rf"{re.escape(name.lower())}\b",
                lower,
            ):
                status = name
                break
    if (
        status
        and not (kind == "follow_ups" and "follow" in status.lower())
        and not (
            kind == "recent" and status.lower() == "new" and not re.search(r"\bstatus\b", lower)
        )
    ):
        args["status"] = status
    for word, channel in _CHANNELS.items():
        if re.search(rf"\b(?:on|from|via|through|in)\s+{word}\b|\b{word}\s+leads\b", lower):
            args["channel"] = channel
            break
    low, high = _score_range(lower)
    if low is not None:
        args["score_min"] = low
    if high is not None:
        args["score_max"] = high
    filtered = any(key not in ("kind", "detail") for key in args)
    is_list = (kind is not None or filtered) and (
        default is not None
        or re.search(r"\bleads?\b|\blist\b|\bshow\b|\bwho\b|\bwhich\b|\bfollow[- ]?ups?\b", lower)
    )
    if not is_list:
        return None
    return ToolCall("list_leads", args)


def _score_range(lower: str) -> tuple[int | None, int | None]:
    match = re.search(
        r"score\s*(?:between|from|of)?\s*(\d{1,3})\s*(?:and|to|-|–|\.\.)\s*(\d{1,3})", lower
    )
    if match:
        low, high = sorted((int(match.group(1)), int(match.group(2))))
        return min(low, 100), min(high, 100)
    match = re.search(
        r"score\s*(?:above|over|>=|>|at least|min(?:imum)?|of at least|greater than|more than)\s*"
        r"(\d{1,3})",
        lower,
    )
    if match:
        value = int(match.group(1))
        strict = re.search(r"(?:above|over|>(?!=)|greater than|more than)\s*\d", lower) is not None
        return min(100, value + (1 if strict else 0)), None
    match = re.search(
        r"score\s*(?:below|under|<=|<|at most|max(?:imum)?|less than)\s*(\d{1,3})", lower
    )
    if match:
        value = int(match.group(1))
        strict = re.search(r"(?:below|under|<(?!=)|less than)\s*\d", lower) is not None
        return None, max(0, value - (1 if strict else 0))
    match = re.search(r"\b(\d{1,3})\s*(?:-|–|to)\s*(\d{1,3})\b", lower)
    if match and "score" in lower:
        low, high = sorted((int(match.group(1)), int(match.group(2))))
        return min(low, 100), min(high, 100)
    return None, None
