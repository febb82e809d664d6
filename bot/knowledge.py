"""Knowledge retrieval: which section of `prompts/knowledge/` answers a question, and which part of
it to quote.

Sections are ranked with BM25 over Snowball-stemmed words (one index per language the business
lists, built once per loaded configuration), titles and `keywords:` lines weighted up. A small set
of question types (price, financing, warranty, area, timeline, how it works, contact,
cancellation) steers which sections may answer; a question mostly about things the knowledge base
never mentions finds nothing, so the bot says the team will check instead of passing the nearest
section off as the answer.
"""

from __future__ import annotations

import logging
import math
import re
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import Stemmer
from rank_bm25 import BM25Okapi

from bot.config import KnowledgeSection, PromptConfig
from bot.language import language_name
from bot.scoring import knowledge_terms
from bot.text import normalize, words
from store.contacts import find_emails, find_phones, try_normalize_phone

log = logging.getLogger(__name__)

STOPWORDS = frozenset(
    """
a an the is are was be been am do does did you your yours i me my mine we our us it its of to in on
at for with and or but not no yes what how when where which who why can could would will should
shall may might there this that these those about much many any some please hi hello hey thanks
thank get got want like need know tell have has had just also more very so if than then them they
their he she his her from by as up out into over offer offers provide sell worth well instead
really someone somebody anyone place come see ok okay guys still already even lot thing things way
new old big small good best nice right sure maybe were being wonder wondering wondered think
thinking thought look looking ask asking talk talking keep keeps getting moved move husband wife
partner family friend neighbor neighbour kids again bit one ones sorry prefer actually rather
english spanish french german portuguese arabic ingles espanol anglais englisch deutsch
cuanto cuanta el la los las un una unos unas de del que en y o por para con es son era mi mis tu
tus su sus como cuando donde cual cuales hola gracias quiero quisiera tienen tiene hay se me lo le
al muy mas pero si no ya esto esta este eso ese usted ustedes puedo pueden puede tengo hacen estoy
hacer venden vende vendes ofrecen ofrece
le la les un une des du et ou est sont pour avec mon ma mes vous je tu que quel quelle quels
comment bonjour merci il elle nous ce cette qui dans sur pas au aux votre vos peux puis
pouvez avez etes faites suis fait ai vendez vendent proposez offrez
der die das ein eine einen einem und oder ist sind fur mit mein meine sie ich wie was hallo danke
es zu den dem im auf bei nicht auch noch ihr ihre ihnen kann konnen haben gibt bin mochte
verkaufen verkauft bieten
o os as um uma do da dos das e para com meu minha voce voces que como ola obrigado obrigada tem no
na em nos nas se posso podem pode tenho sao estou fazem vendem oferecem
في من على هل ما أن عن الى إلى مع هذا هذه هو هي لدي لديكم لديك عندكم عندك انا أنا نحن انتم أنتم
تبيعون تقدمون كيف ماذا متى لماذا يمكن يمكنني ممكن اريد أريد او أو ثم لكن كل اي أي
التي الذي هناك شكرا مرحبا
""".split()
)

# Question types: what the customer wants to know, whatever the topic. Each has the words that
# ask it (normalised: lower case, no accents) and the words of a section's English title or
# keywords that say the section answers it. A price question may be answered by any section
# quoting a price.
QUESTION_TYPES: dict[str, tuple[str, str]] = {
    "price": (
        r"\b(?:price|prices|pricing|cost|costs|how much|expensive|cheap|quote|"
        r"precio|precios|cuesta|cuestan|cuanto|cuanta|vale|valen|presupuesto|"
        r"prix|combien|coute|coutent|tarif|tarifs|devis|"
        r"preis|preise|kostet|kosten|wie viel|wieviel|teuer|angebot|"
        r"preco|precos|custa|custam|quanto|quanta|orcamento)\b|"
        r"سعر|اسعار|أسعار|تكلفة|ثمن|(?<!\w)بكم(?!\w)|(?<!\w)كم(?!\w)",
        r"price|cost|discount",
    ),
    "financing": (
        r"\b(?:financ\w*|loan|loans|monthly|per month|a month|installments?|lease|leasing|"
        r"prestamo\w*|cuotas?|mensual\w*|al mes|pret|prets|mensualites?|par mois|"
        r"finanzierung|kredit|monatlich\w*|raten?|pro monat|emprestimo\w*|parcelas?|por mes)\b|"
        r"تمويل|قرض|أقساط|اقساط|شهري",
        r"financ|loan|monthly",
    ),
    "warranty": (
        r"\b(?:warrant\w*|guarantee\w*|garantia|garantias|garantie|garanties|gewahrleistung)\b|"
        r"ضمان",
        r"warrant",
    ),
    "area": (
        r"\b(?:where|area|areas|region|cities|city|located|location|near me|"
        r"(?:install|work|operate|serve|come|go|available|deliver)s?\s+(?:in|to|near|around)|"
        r"(?:instalan|trabajan|operan|llegan|vienen|cubren)\s+(?:en|a|hasta)|"
        r"(?:installez|travaillez|intervenez|venez|allez)\s+(?:a|au|en|dans|jusqu)|"
        r"(?:installieren|arbeiten|kommen)\s+sie\s+(?:auch\s+)?(?:in|nach|bis)|"
        r"(?:instalam|trabalham|atendem|atuam|chegam|vem)\s+(?:em|no|na|a|ate)|"
        r"donde|zona|ciudad|ou etes|ville|wo|gebiet|stadt|onde|cidade|regiao)\b|"
        r"أين|منطقة|مدينة|تعملون في|تركبون في|تعملون ب",
        r"\barea\b|where|location",
    ),
    "timeline": (
        r"\b(?:how long|how soon|how quickly|timeline|take|takes|weeks|"
        r"cuanto tarda|tarda|tardan|cuanto tiempo|semanas|plazo|combien de temps|delai|delais|"
        r"semaines|wie lange|dauert|dauer|wochen|quanto tempo|demora|prazo)\b|"
        r"كم من الوقت|مدة|أسابيع|تستغرق",
        r"how long|timeline|take",
    ),
    "how_it_works": (
        r"\b(?:how (?:does|do|will|would) (?:[\w-]+\s+){1,3}work|how it works|"
        r"process|steps|what happens|como funciona|proceso|comment (?:ca|cela) (?:marche|"
        r"fonctionne)|processus|wie funktioniert|ablauf|processo)\b|كيف يعمل",
        r"how|work|survey|happens",
    ),
    "contact": (
        r"\b(?:contact|phone number|your number|email|e-mail|call you|reach you|opening hours|"
        r"hours|open|contacto|horario|telefono|correo|horaires|telephone|ouvert|kontakt|"
        r"offnungszeiten|telefon|erreichen|contato|telefone)\b|اتصال|ساعات|هاتف|بريد",
        r"contact|hours",
    ),
    "cancellation": (
        r"\b(?:cancel\w*|refund\w*|money back|change my mind|"
        r"cancelar|cancelacion|reembolso|devolucion|annuler|annulation|rembourse\w*|"
        r"stornier\w*|storno|widerruf|ruckerstattung|kundigen|desistir|desistencia)\b|إلغاء|الغاء|استرداد",
        r"cancel|refund",
    ),
}
_TYPE_PATTERNS = {
    name: (re.compile(asks), re.compile(answers))
    for name, (asks, answers) in QUESTION_TYPES.items()
}
_PRICE = re.compile(r"[$€£]\s?\d|\d[\d.,]*\s?(?:usd|eur|euros?|dollars?|€|\$|دولار)", re.IGNORECASE)

# Weights of a section's parts in its BM25 document: a word of the title or of the keywords line
# says more about what the section answers than one in its body.
TITLE_WEIGHT = 2
KEYWORDS_WEIGHT = 1
# Extra score for a section whose title or keywords answer the question's type ("Warranty" for
# "what guarantee do I get?").
TYPE_BONUS = 2.0
# Extra score per word of the question found in a section's title or keywords.
LABEL_BONUS = 0.8
# Weight of the previous messages' words for a follow-up that names nothing ("how much is it?").
CONTEXT_WEIGHT = 0.6
# Weight of the words of an interest label ("Battery storage") when an unknown word of the question
# is one of its keywords ("blackouts"): scoring.yaml's interests double as a small thesaurus.
INTEREST_HINT_WEIGHT = 0.7
# When this share of the question's weight (IDF) is words the knowledge base never uses, the
# question is about something it does not cover.
MAX_UNKNOWN_SHARE = 0.45
# An unknown word counts as a quarter of a rare word (chat is full of words no FAQ uses)...
UNKNOWN_SHARE = 0.25
# ...but fully when it names something ("the Pro plan", "an Enphase inverter", "Tesla Powerwall").
NAMED_UNKNOWN_SHARE = 1.0
MIN_SCORE = 1.0
# A price list answers a question that is not about prices only when nothing else does.
NOT_ASKED_PRICE = 0.7


# --------------------------------------------------------------------------------------------
# Words


@lru_cache(maxsize=32)
def stemmer(language: str) -> Stemmer.Stemmer | None:
    """The Snowball stemmer of a language (None when Snowball has none)."""
    name = language_name(language).lower()
    if name not in Stemmer.algorithms():
        return None
    return Stemmer.Stemmer(name)


def stem_words(tokens: Sequence[str], language: str) -> list[str]:
    found = stemmer(language)
    if language == "ar":
        # The article and the prepositions glued to it ("الضمان", "بالبطارية") first.
        tokens = [_ARABIC_ARTICLE.sub("", t) if len(t) > 4 else t for t in tokens]
    return list(found.stemWords(list(tokens))) if found is not None else list(tokens)


_ARABIC_ARTICLE = re.compile(r"^(?:وال|بال|فال|كال|لل|ال)")
# Languages whose adjectives and names come before the noun ("the Pro plan", "das Pro-Paket"):
# there an unknown word right before a known one names something.
_NAME_BEFORE_NOUN = frozenset({"en", "de"})


def content_words(text: str) -> list[str]:
    """The words of a text that can say what it is about (no stop words, numbers kept)."""
    return [w for w in words(text) if w not in STOPWORDS and (len(w) > 1 or w.isdigit())]


def tokens(text: str, language: str) -> list[str]:
    return stem_words(content_words(text), language)


def question_types(text: str) -> list[str]:
    """The kinds of answer a question asks for ("price", "area", ...), in the order listed."""
    normalized = normalize(text or "")
    found = [name for name, (asks, _) in _TYPE_PATTERNS.items() if asks.search(normalized)]
    if "price" in found and _SAVINGS.search(normalized):
        found.remove("price")  # "how much will I save?" asks about savings, not a price
    elif "price" in found and "timeline" in found and not _PRICE_WORDS.search(normalized):
        found.remove("price")  # "¿cuánto tarda?": "how much" of time
    return found


_PRICE_WORDS = re.compile(
    r"\b(?:price|cost|costs|precio|cuesta|cuestan|prix|coute|preis|kostet|kosten|preco|custa)\b|"
    r"سعر|تكلفة"
)

_SAVINGS = re.compile(
    r"\b(?:save|saving|savings|ahorr\w*|econom\w*|sparen|spare|ersparnis)\b|توفير"
)


# --------------------------------------------------------------------------------------------
# The index


@dataclass
class _LanguageIndex:
    language: str
    sections: list[KnowledgeSection]  # one per section id: this language's, else the default's
    bm25: BM25Okapi
    df: dict[str, int]
    types: list[frozenset[str]]  # the question types each section answers
    labels: list[frozenset[str]]  # the stemmed words of each section's title and keywords
    primary: list[frozenset[str]]  # the types its title or keywords name ("Package prices")
    title_words: frozenset[str] = frozenset()  # the stemmed words of every section's title


@dataclass
class KnowledgeIndex:
    """Everything retrieval needs from one configuration, built once for it."""

    config: weakref.ReferenceType[PromptConfig]
    by_id: dict[tuple[str, str], KnowledgeSection]  # (id, language) -> section
    terms: frozenset[str]
    allowed_phones: frozenset[str]
    allowed_emails: frozenset[str]
    languages: dict[str, _LanguageIndex] = field(default_factory=dict)

    def section(self, section_id: str, language: str) -> KnowledgeSection | None:
        return self.by_id.get((section_id, language))

    def for_language(self, language: str | None) -> _LanguageIndex | None:
        config = self.config()
        if config is None:
            return None
        default = config.business.default_language
        language = language if language in self.languages else default
        return self.languages.get(language)


_INDEXES: weakref.WeakKeyDictionary[PromptConfig, KnowledgeIndex] = weakref.WeakKeyDictionary()


def knowledge_index(config: PromptConfig) -> KnowledgeIndex:
    """The retrieval index of this configuration (built once per loaded configuration)."""
    index = _INDEXES.get(config)
    if index is None:
        index = _build_index(config)
        _INDEXES[config] = index
    return index


def _build_index(config: PromptConfig) -> KnowledgeIndex:
    default = config.business.default_language
    by_id = {(s.id, s.language): s for s in config.knowledge}
    phones = {p for s in config.knowledge for p in find_phones(s.text, "US")}
    business = config.business
    business_phone = try_normalize_phone(business.phone, "US") if business.phone else None
    if business_phone:
        phones.add(business_phone)
    emails = {e.lower() for s in config.knowledge for e in find_emails(s.text)}
    if business.email:
        emails.add(business.email.lower())
    index = KnowledgeIndex(
        config=weakref.ref(config),
        by_id=by_id,
        terms=knowledge_terms(config.knowledge),
        allowed_phones=frozenset(phones),
        allowed_emails=frozenset(emails),
    )
    originals = [s for s in config.knowledge if s.language == default]
    # A section only some language has still answers in that language.
    languages = list(
        dict.fromkeys([default, *business.languages, *(s.language for s in config.knowledge)])
    )
    for language in languages:
        own = [s for s in config.knowledge if s.language == language and language != default]
        ids = [s.id for s in originals] + [s.id for s in own if (s.id, default) not in by_id]
        ids = list(dict.fromkeys(ids))
        if not ids:
            continue
        sections = [by_id.get((i, language)) or by_id[(i, default)] for i in ids]
        documents = []
        types: list[frozenset[str]] = []
        labels: list[frozenset[str]] = []
        primary: list[frozenset[str]] = []
        for section in sections:
            original = by_id.get((section.id, default), section)
            document = tokens(section.text, section.language)
            document += tokens(section.title, section.language) * TITLE_WEIGHT
            document += tokens(" ".join(section.keywords), section.language) * KEYWORDS_WEIGHT
            if section.language != default:
                # The original's title and keywords too: scoring.yaml's labels and product names
                # are often written in the default language.
                document += tokens(original.title + " " + " ".join(original.keywords), default)
            documents.append(document or ["\u2205"])
            types.append(_section_types(section, original))
            labels.append(
                frozenset(
                    tokens(section.title + " " + " ".join(section.keywords), section.language)
                )
            )
            primary.append(_named_types(section, original))
        df: dict[str, int] = {}
        for document in documents:
            for token in set(document):
                df[token] = df.get(token, 0) + 1
        index.languages[language] = _LanguageIndex(
            language=language,
            sections=sections,
            bm25=BM25Okapi(documents, k1=1.2, b=0.75),
            df=df,
            types=types,
            labels=labels,
            primary=primary,
            title_words=frozenset(t for x in sections for t in tokens(x.title, x.language)),
        )
    log.debug("knowledge index built: %d sections in %d languages", len(originals), len(languages))
    return index


def _named_types(section: KnowledgeSection, original: KnowledgeSection) -> frozenset[str]:
    """The question types a section's title or keywords say it answers (in the default
    language, which the cues are written in)."""
    del section
    label = normalize(original.title + " " + " ".join(original.keywords))
    return frozenset(name for name, (_, answers) in _TYPE_PATTERNS.items() if answers.search(label))


def _section_types(section: KnowledgeSection, original: KnowledgeSection) -> frozenset[str]:
    """The question types a section may answer: those it is named for, and price when it quotes
    one."""
    found = set(_named_types(section, original))
    if _PRICE.search(section.text):
        found.add("price")
    return frozenset(found)


# --------------------------------------------------------------------------------------------
# Ranking


@dataclass
class Query:
    """A question as retrieval sees it."""

    language: str
    weighted: list[tuple[list[str], float]]  # (stemmed words, weight) groups to score
    words: list[str]  # the question's own stemmed words (for picking lines)
    types: list[str]
    known: dict[str, float]  # the customer's words the knowledge base uses -> IDF
    unknown: float  # the weight of the words it never uses
    named: float = 0.0  # the part of `unknown` that names something ("the Pro plan")

    @property
    def unknown_share(self) -> float:
        """The share of the question's weight that the knowledge base has no word for. A question
        of a known type ("can I cancel?") only counts the unknown things it names."""
        unknown = self.named if self.types else self.unknown
        total = sum(self.known.values()) + unknown
        return unknown / total if total > 0 else 0.0


def analyse(
    config: PromptConfig,
    index: _LanguageIndex,
    query: str,
    *,
    context: Sequence[str] = (),
) -> Query:
    """The question's words: what ranks the sections, and how much of it they cannot cover."""
    language = index.language
    raw = words(query)
    types = question_types(query)
    # Words that only say what kind of answer is wanted ("cost", "how long") are left to the
    # question types, unless a section is named after them ("Discounts").
    titles = index.title_words
    intent: set[str] = set()
    for signal in config.scoring.signals.values():
        for match in signal.keywords.find(query):
            intent.update(tokens(query[match.start : match.end], language))
    intent -= titles
    # The words that ask the question's type ("combien", "how long") never say what about, even
    # when a section's title is a question using them.
    for name in types:
        asks = _TYPE_PATTERNS[name][0]
        for phrase in asks.finditer(normalize(query)):
            intent.update(tokens(phrase.group(0), language))
    # Words an interest recognised ("blackouts") are understood through its label.
    understood: set[str] = set()
    hints: list[str] = []
    for label, keywords in config.scoring.interests.items():
        matched = {
            t for m in keywords.find(query) for t in tokens(query[m.start : m.end], language)
        }
        unknown = {t for t in matched if not index.df.get(t)}
        understood.update(unknown)
        if unknown:
            hints.extend(tokens(label, language) + tokens(label, config.business.default_language))
    n = max(1, len(index.sections))
    idf_unknown = math.log(1 + (n + 0.5) / 0.5)
    own_name = set(words(_own_name(query) or ""))
    proper_names = {
        normalize(word) for pair in _NAME_PAIR.finditer(query) for word in pair.groups()
    } - own_name
    # Capitalised words inside a sentence.
    capitalised = {normalize(m.group(1)) for m in _CAPITALISED.finditer(query)} - own_name
    asked: list[str] = []
    known: dict[str, float] = {}
    unknown_weight: dict[str, float] = {}
    named_weight: dict[str, float] = {}
    content = [w for w in raw if w not in STOPWORDS and (len(w) > 1 or w.isdigit())]
    stems = stem_words(content, language)
    for word, token in zip(content, stems, strict=True):
        if token in intent:
            continue
        asked.append(token)
        if word.isdigit() or token in understood:
            continue
        if index.df.get(token):
            known[token] = _idf(index, token)
            continue
        at = raw.index(word) + 1 if word in raw else len(raw)
        named = (
            word in proper_names
            or (
                # "el plan Pro": a capitalised word right after one we use
                word in capitalised
                and at >= 2
                and raw[at - 2] not in STOPWORDS
                and bool(index.df.get(stem_words([raw[at - 2]], language)[0]))
            )
            or (
                language in _NAME_BEFORE_NOUN
                and at < len(raw)
                and raw[at] not in STOPWORDS
                and bool(index.df.get(stem_words([raw[at]], language)[0]))
            )
        )
        share = NAMED_UNKNOWN_SHARE if named else UNKNOWN_SHARE
        unknown_weight[token] = max(unknown_weight.get(token, 0.0), idf_unknown * share)
        if named:
            named_weight[token] = unknown_weight[token]
    if not types and context and 0 < len(asked) <= 2:
        # "And the Starter?" after a price question asks the same thing about something else.
        types = question_types(context[0])
    weighted: list[tuple[list[str], float]] = []
    if asked:
        weighted.append((asked, 1.0))
    if hints:
        weighted.append((hints, INTEREST_HINT_WEIGHT))
    if context and not [t for t in asked if index.df.get(t)]:
        # A follow-up that names nothing ("how much is it?", "and the warranty?"): the previous
        # messages say what "it" is.
        earlier = [t for text in context for t in tokens(text, language) if index.df.get(t)]
        if earlier:
            weighted.append((earlier, CONTEXT_WEIGHT))
    return Query(
        language,
        weighted,
        asked,
        types,
        known,
        sum(unknown_weight.values()),
        sum(named_weight.values()),
    )


# Two capitalised words in a row inside a sentence name a product ("Tesla Powerwall").
_NAME_PAIR = re.compile(r"(?<![.!?¿¡]\s)(?<!^)\b([A-Z][\w-]+)\s+([A-Z][\w-]+)")
_CAPITALISED = re.compile(r"(?<![.!?¿¡]\s)(?<!^)(?<![¿¡])\b([A-Z][a-z][\w-]*)")
_OWN_NAME = re.compile(
    r"\b(?i:my name is|i'?m|i am|this is|me llamo|soy|je m'appelle|je suis|ich hei(?:ss|ß)e|"
    r"ich bin|meu nome [eé]|sou)\s+"
    r"([A-ZÀ-Ý][\w'-]*(?:\s+[A-ZÀ-Ý][\w'-]*)?)"
)


def _own_name(query: str) -> str | None:
    """The customer's own name in the question ("Hi, I'm Sarah"): not a product we do not know."""
    match = _OWN_NAME.search(query)
    return match.group(1) if match else None


def _idf(index: _LanguageIndex, token: str) -> float:
    n = len(index.sections)
    df = index.df.get(token, 0)
    return math.log(1 + (n - df + 0.5) / (df + 0.5))


def retrieve(
    config: PromptConfig,
    query: str,
    *,
    language: str | None = None,
    k: int = 3,
    min_score: float = MIN_SCORE,
    signals: Iterable[str] = (),
    context: Sequence[str] = (),
    max_unknown_share: float = MAX_UNKNOWN_SHARE,
) -> list[tuple[KnowledgeSection, float]]:
    """The sections that answer `query`, best first, each in `language` when it has a
    translation (else in the default language); none when the question is mostly about things the
    knowledge base never mentions. `context` holds the customer's earlier messages, newest first,
    for follow-ups that name nothing ("how much is it?")."""
    del signals  # the question types read the question itself
    found, _ = _retrieve(
        config,
        query,
        language=language,
        k=k,
        min_score=min_score,
        context=context,
        max_unknown_share=max_unknown_share,
    )
    return found


def _retrieve(
    config: PromptConfig,
    query: str,
    *,
    language: str | None,
    k: int,
    min_score: float,
    context: Sequence[str],
    max_unknown_share: float = MAX_UNKNOWN_SHARE,
) -> tuple[list[tuple[KnowledgeSection, float]], Query | None]:
    ranked, analysed = _rank(config, query, language=language, context=context)
    if ranked is None or analysed is None:
        return [], analysed
    if analysed.unknown_share >= max_unknown_share and "area" not in analysed.types:
        return [], analysed
    return [(s, score) for s, score in ranked[:k] if score >= min_score], analysed


def _rank(
    config: PromptConfig,
    query: str,
    *,
    language: str | None,
    context: Sequence[str],
) -> tuple[list[tuple[KnowledgeSection, float]] | None, Query | None]:
    index = knowledge_index(config).for_language(language)
    if index is None:
        return None, None
    analysed = analyse(config, index, query, context=context)
    if not analysed.weighted and not analysed.types:
        return None, analysed
    scores = [0.0] * len(index.sections)
    for group, weight in analysed.weighted:
        for i, value in enumerate(index.bm25.get_scores(group)):
            scores[i] += weight * float(value)
        # A word the section is named by says more than BM25's counts of common words do.
        asked = set(group)
        for i, label in enumerate(index.labels):
            scores[i] += weight * LABEL_BONUS * len(asked & label)
    allowed = range(len(index.sections))
    if "price" not in analysed.types:
        for i in range(len(index.sections)):
            if "price" in index.primary[i]:
                scores[i] *= NOT_ASKED_PRICE
    if analysed.types:
        wanted = set(analysed.types)
        steered = [i for i in allowed if index.types[i] & wanted]
        if steered:
            allowed = steered  # type: ignore[assignment]
            for i in steered:
                if index.primary[i] & wanted:
                    scores[i] += TYPE_BONUS
    ranked = sorted(((index.sections[i], scores[i]) for i in allowed), key=lambda item: -item[1])
    return [(s, score) for s, score in ranked if score > 0], analysed


# --------------------------------------------------------------------------------------------
# Answers


@dataclass(frozen=True)
class Answer:
    """What to tell the customer from one section."""

    section: KnowledgeSection
    text: str  # the part of the section that answers
    translated: bool  # False when the section has no version in the customer's language


def answer(
    config: PromptConfig,
    query: str,
    *,
    language: str,
    context: Sequence[str] = (),
) -> Answer | None:
    """The part of the best section that answers `query` (None: say the team will check)."""
    found, analysed = _retrieve(
        config, query, language=language, k=1, min_score=MIN_SCORE, context=context
    )
    if not found or analysed is None:
        return None
    section = found[0][0]
    index = knowledge_index(config).for_language(language)
    types = analysed.types
    asked = analysed.words
    if not [t for t in asked if index is not None and index.df.get(t)]:
        asked = [t for group, _ in analysed.weighted for t in group]
    text = relevant_part(section, asked, types)
    return Answer(section, text, translated=section.language == language)


def relevant_part(section: KnowledgeSection, asked: Sequence[str], types: Sequence[str]) -> str:
    """The lines of a section that answer: the matching price line of a price list, the line
    naming what was asked about in a longer list; the whole section when it is short."""
    blocks = section_blocks(section)
    wanted = set(asked)

    def overlap(block: str) -> int:
        return len(wanted & set(tokens(block, section.language)))

    if "price" in types:
        priced = [b for b in blocks if _PRICE.search(b)]
        best = max((overlap(b) for b in priced), default=0)
        if best > 0:
            return "\n".join(b for b in priced if overlap(b) == best)
    bullets = [b for b in blocks if b.startswith("• ")]
    if len(bullets) >= 3 and wanted:
        best = max(overlap(b) for b in bullets)
        chosen = [b for b in bullets if overlap(b) == best]
        if best > 0 and len(chosen) < len(bullets):
            return "\n".join(chosen)
    return section_excerpt(section)


def section_blocks(section: KnowledgeSection) -> list[str]:
    """A section's text as display blocks: prose lines joined into paragraphs, bullets kept."""
    blocks: list[str] = []
    for raw in section.text.split("\n"):
        line = raw.strip().replace("**", "")
        if not line:
            if blocks and blocks[-1] != "":
                blocks.append("")
            continue
        bullet = line.startswith(("- ", "* "))
        if bullet:
            line = "• " + line[2:]
        if (
            not bullet
            and blocks
            and blocks[-1]
            and not blocks[-1].startswith("• ")
            and not (blocks[-1].endswith(":"))
        ):
            blocks[-1] = blocks[-1] + " " + line
        else:
            blocks.append(line)
    return [b for b in blocks if b]


def section_excerpt(section: KnowledgeSection, max_chars: int = 450) -> str:
    """The start of a section as plain text, whole lines only: prose lines joined, bullets kept."""
    kept: list[str] = []
    total = 0
    for block in section_blocks(section):
        if kept and total + len(block) > max_chars:
            break
        kept.append(block)
        total += len(block) + 1
    return "\n".join(kept)


def prompt_knowledge(
    config: PromptConfig,
    query: str,
    *,
    language: str | None,
    k: int = 3,
    max_chars: int = 900,
    context: Sequence[str] = (),
) -> tuple[str, list[str]]:
    """The best sections for the model's prompt, each clipped, and their ids."""
    found = retrieve(config, query, language=language, k=k, min_score=0.5, context=context)
    if not found:
        return "(no section matches; say you will check with the team)", []
    text = "\n\n".join(f"## {s.heading}\n{s.text[:max_chars]}" for s, _ in found)
    return text, [s.id for s, _ in found]
