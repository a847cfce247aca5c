"""Row generators for the Empire schema's demo data: pure Python, no I/O.

Each table has a :class:`TableSpec`: its column list (in COPY order) and a
generator of rows. Generators run in dependency order and share a
:class:`World` holding the keys of the rows already generated, so every
foreign key points at a row generated before it. Every value comes from a
``random.Random`` derived from the seed and the table name (never from the
clock or the process), so a seed always yields the same rows.

Values are plain Python objects that psycopg's COPY dumps as text: ``str``
for jsonb (pre-serialised JSON), inet and vector (``[x1,...,x1536]``),
``list[str]`` for text[] columns.
"""

from __future__ import annotations

import json
import math
import random
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

# Every non-event timestamp is an offset from this fixed instant (never now()).
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
# Non-event rows are created over this many days after EPOCH.
SPAN_DAYS = 300
EMBEDDING_DIM = 1536

Row = tuple[Any, ...]
Generator = Callable[["World", random.Random, int], Iterator[Row]]

# Rows per table at scale 1 (about 10 MB with indexes; see docs/benchmarks.md).
# Every count grows linearly with the scale, with a floor of 1.
BASE_COUNTS: dict[str, int] = {
    "users": 700,
    # One per user: empire_private.user_credentials (decision 0008).
    "user_credentials": 700,
    "user_sessions": 1400,
    "offers": 80,
    "products": 60,
    "blogs": 50,
    "quizzes": 8,
    "quiz_results": 500,
    "purchases": 280,
    "license_keys": 140,
    "payout_logs": 100,
    "persona_profiles": 350,
    "memory_nodes": 100,
    "prompts": 21,
    "federation_neurons": 8,
    "admin_logs": 170,
    "funnels": 6,
    "funnel_steps": 30,
    "ab_tests": 5,
    "ab_variants": 12,
    "ab_assignments": 1000,
    "conversions": 400,
    "notifications": 1000,
    "translations": 136,
    "search_queries": 850,
    "analytics_events": 5000,
    "affiliate_clicks": 1350,
    "consent_logs": 850,
    "rlhf_feedback": 700,
    "error_logs": 500,
}
# Share of blogs / memory_nodes rows that carry an embedding (each is ~6 KB
# in the heap plus its HNSW entry, so they dominate the size budget).
EMBEDDED_SHARE = 0.3
# Share of event rows placed before the first monthly partition, so they land
# in the DEFAULT partition.
DEFAULT_PARTITION_SHARE = 0.1


# -- vocabulary ---------------------------------------------------------------------------
def _words(text: str) -> list[str]:
    return text.split()


FIRST = _words("ada alan grace linus barbara ken dennis margaret edsger donald frances tim")
LAST = _words("lovelace turing hopper torvalds liskov thompson ritchie hamilton dijkstra knuth")
WORDS = _words(
    "smart budget premium guide review best fast green home fitness travel money "
    "sleep focus garden coffee crypto skincare laptop course recipe habit yoga "
    "investing camera hiking pet family career design cloud privacy energy"
)
NOUNS = _words("planner toolkit bundle masterclass tracker blueprint starter kit journal app")
ARCHETYPES = ["explorer", "optimizer", "saver", "achiever", "nurturer", "skeptic"]
EMOTIONS = ["joy", "trust", "fear", "surprise", "anticipation", "curiosity", "calm"]
COUNTRIES = ["US", "GB", "DE", "FR", "ES", "IT", "NL", "CA", "AU", "BR", "IN", "JP"]
CITIES = ["Berlin", "London", "Paris", "Madrid", "Austin", "Toronto", "Sydney", "Tokyo"]
CURRENCIES = ["USD", "EUR", "GBP", "CAD", "AUD", "JPY"]
NETWORKS = ["impact", "cj", "awin", "shareasale", "partnerstack", "amazon"]
DEVICES = ["desktop", "mobile", "tablet"]
BROWSERS = ["chrome", "firefox", "safari", "edge"]
LOCALES = ["en", "de", "fr", "es", "pt-BR", "it", "nl", "ja"]
PATHS = ["/", "/blog", "/offers", "/quiz", "/pricing", "/checkout", "/account", "/search"]
SOURCES = ["web", "app", "api", "worker", "cron"]
AGENTS = ["writer-gpt", "offer-ranker", "quiz-coach", "seo-bot", "support-bot"]

# Enumerated values, exactly as the migrations' CHECK constraints list them.
OFFER_TYPES = ["affiliate", "lead_gen", "product", "subscription", "coupon", "trial"]
OFFER_STATUS = ["draft", "active", "paused", "expired", "archived"]
PRODUCT_TYPES = ["digital", "physical", "course", "software", "subscription", "bundle", "service"]
PRODUCT_STATUS = ["draft", "active", "discontinued", "archived"]
CONTENT_STATUS = ["draft", "published", "archived"]
CONSENT_STATUS = ["unknown", "granted", "partial", "denied", "withdrawn"]
PAY_METHODS = ["card", "paypal", "bank_transfer", "crypto", "apple_pay", "google_pay", "manual"]
PURCHASE_STATUS = ["pending", "completed", "failed", "refunded", "chargeback", "cancelled"]
LICENSE_STATUS = ["active", "suspended", "revoked", "expired"]
PAYOUT_STATUS = ["pending", "approved", "paid", "rejected", "reversed"]
MEMORY_TYPES = ["fact", "concept", "summary", "document", "insight", "prompt", "embedding"]
PROMPT_STATUS = ["draft", "active", "deprecated", "archived"]
NEURON_TYPES = ["content", "seo", "affiliate", "analytics", "ai", "commerce", "social", "email"]
NEURON_STATUS = ["active", "inactive", "degraded", "offline", "retired"]
ADMIN_ACTIONS = ["offer.update", "offer.create", "user.delete", "blog.publish", "quiz.archive"]
FUNNEL_STATUS = ["draft", "active", "paused", "archived"]
AB_STATUS = ["draft", "running", "paused", "completed", "archived"]
CHANNELS = ["in_app", "email", "sms", "push", "webhook"]
NOTIFY_STATUS = ["pending", "sent", "delivered", "read", "failed", "cancelled"]
EVENT_TYPES = [
    "page_view", "click", "scroll", "form_submit", "search", "quiz_start", "quiz_complete",
    "offer_view", "offer_click", "signup", "login", "logout", "conversion", "custom",
]  # fmt: skip
CONSENT_ACTIONS = ["grant", "deny", "update", "withdraw"]
SIGNALS = ["thumbs_up", "thumbs_down", "rating", "click", "dwell", "skip", "correction"]
SEVERITIES = ["debug", "info", "warning", "error", "critical"]


def counts_for(scale: float) -> dict[str, int]:
    """Rows per table at ``scale``: linear in the scale, at least one row per table."""
    return {t: max(1, round(n * scale)) for t, n in BASE_COUNTS.items()}


# -- the shared state of one generation run -------------------------------------------------
@dataclass
class World:
    """Keys of rows generated so far, for the foreign keys of later tables."""

    seed: int
    counts: dict[str, int]
    # First day of each month that has a monthly partition on every event table.
    event_months: list[datetime]
    users: list[uuid.UUID] = field(default_factory=list)
    # The users with an e-mail address: the ones that have a password.
    with_email: set[uuid.UUID] = field(default_factory=set)
    sessions: list[tuple[str, uuid.UUID | None]] = field(default_factory=list)
    offers: list[tuple[uuid.UUID, str, str]] = field(default_factory=list)  # id, slug, currency
    products: list[tuple[uuid.UUID, uuid.UUID | None, Decimal]] = field(default_factory=list)
    quizzes: list[uuid.UUID] = field(default_factory=list)
    funnels: list[uuid.UUID] = field(default_factory=list)
    ab_tests: list[uuid.UUID] = field(default_factory=list)
    ab_variants: dict[uuid.UUID, list[uuid.UUID]] = field(default_factory=dict)
    prompts: list[uuid.UUID] = field(default_factory=list)

    def rng(self, table: str) -> random.Random:
        """The table's own generator: its rows do not shift when another table changes."""
        return random.Random(f"empire-demo:{self.seed}:{table}")


def new_uuid(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


def moment(rng: random.Random, start: datetime = EPOCH, days: float = SPAN_DAYS) -> datetime:
    """A whole-second instant in [start, start + days)."""
    return start + timedelta(seconds=rng.randrange(max(1, int(days * 86400))))


def stamps(rng: random.Random, start: datetime = EPOCH, days: float = SPAN_DAYS) -> tuple[Any, Any]:
    """(created_at, updated_at) with updated_at at or after created_at."""
    created = moment(rng, start, days)
    return created, created + timedelta(seconds=rng.choice((0, 0, rng.randrange(86400 * 30))))


def as_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def meta(rng: random.Random, **extra: Any) -> str:
    return as_json({"demo": True, "batch": rng.randrange(1, 6), **extra})


def pick_status(rng: random.Random, index: int, statuses: Sequence[str], public: str) -> str:
    """A status, with the first row always ``public`` so every scale has readable rows."""
    if index == 0:
        return public
    return public if rng.random() < 0.6 else rng.choice(statuses)


def sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "."


def paragraph(rng: random.Random, sentences: int) -> str:
    return " ".join(sentence(rng, rng.randint(6, 14)) for _ in range(sentences))


def slug(name: str, tag: str, index: int) -> str:
    """A URL slug; the index keeps it unique whatever words the name drew."""
    return f"{name.lower().replace(' ', '-')}-{tag}{index}"


def title(rng: random.Random) -> str:
    return f"{rng.choice(WORDS).title()} {rng.choice(WORDS).title()} {rng.choice(NOUNS).title()}"


def money(rng: random.Random, low: float, high: float) -> Decimal:
    return Decimal(rng.randrange(int(low * 100), int(high * 100))) / 100


def ip(rng: random.Random) -> str:
    return (
        f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
    )


def geo(rng: random.Random) -> str:
    return as_json({"country": rng.choice(COUNTRIES), "city": rng.choice(CITIES)})


def embedding(rng: random.Random) -> str:
    """A unit-length 1536-dimension vector in pgvector's text form."""
    xs = [rng.gauss(0.0, 1.0) for _ in range(EMBEDDING_DIM)]
    norm = math.sqrt(sum(x * x for x in xs)) or 1.0
    return "[" + ",".join(f"{x / norm:.5f}" for x in xs) + "]"


def maybe_user(world: World, rng: random.Random, share: float = 0.7) -> uuid.UUID | None:
    return rng.choice(world.users) if rng.random() < share else None


def session_of(world: World, rng: random.Random) -> tuple[str, uuid.UUID | None]:
    return rng.choice(world.sessions)


def event_time(world: World, rng: random.Random) -> datetime:
    """An instant in a month that has partitions, or (sometimes) before them: the default."""
    months = world.event_months
    if not months or rng.random() < DEFAULT_PARTITION_SHARE:
        first = months[0] if months else EPOCH
        return moment(rng, first - timedelta(days=60), 60)
    start = rng.choice(months)
    # Stay inside the month whatever its length (28 days is in every month).
    return moment(rng, start, 28)


# -- one generator per table ---------------------------------------------------------------
def gen_users(world: World, rng: random.Random, n: int) -> Iterator[Row]:
    for i in range(n):
        uid = new_uuid(rng)
        world.users.append(uid)
        first, last = rng.choice(FIRST), rng.choice(LAST)
        # The index keeps e-mails unique without a lookup (lower(email) is unique).
        email = f"{first}.{last}.{i}@example.com" if rng.random() < 0.75 else None
        if email:
            world.with_email.add(uid)
        created, updated = stamps(rng)
        devices = [{"kind": rng.choice(DEVICES), "browser": rng.choice(BROWSERS)}]
        consent = {"analytics": rng.random() < 0.8, "marketing": rng.random() < 0.4}
        favorites = [rng.choice(world.offers)[1] for _ in range(rng.randint(0, 3))]
        yield (
            uid, email, f"anon_{i:07d}_{rng.getrandbits(32):08x}", as_json(devices),
            as_json(consent), updated + timedelta(hours=rng.randrange(1, 500)), geo(rng),
            rng.choice(ARCHETYPES), as_json(favorites), meta(rng), created, updated,
        )  # fmt: skip


def gen_user_credentials(world: World, rng: random.Random, n: int) -> Iterator[Row]:
    """One row per user (the first ``n``): a password hash for those with an e-mail."""
    for uid in world.users[:n]:
        pw_hash = f"$demo$sha256${rng.getrandbits(96):024x}${rng.getrandbits(128):032x}"
        tokens = [{"id": f"tok_{rng.getrandbits(48):012x}", "revoked": rng.random() < 0.1}]
        created, updated = stamps(rng)
        yield (
            uid, pw_hash if uid in world.with_email else None, as_json(tokens),
            meta(rng), created, updated,
        )  # fmt: skip


def gen_user_sessions(world: World, rng: random.Random, n: int) -> Iterator[Row]:
    for i in range(n):
        user = maybe_user(world, rng, 0.8)
        sid = f"sess_{i:08d}_{rng.getrandbits(40):010x}"
        world.sessions.append((sid, user))
        started = moment(rng)
        ended = (
            started + timedelta(seconds=rng.randrange(30, 7200)) if rng.random() < 0.85 else None
        )
        actions = [{"path": rng.choice(PATHS), "t": k * rng.randint(3, 40)} for k in range(3)]
        snapshot = as_json({"archetype": rng.choice(ARCHETYPES)}) if user else None
        yield (
            new_uuid(rng), sid, user, started, ended, rng.choice(DEVICES), ip(rng),
            as_json(actions), snapshot, rng.choice(CONSENT_STATUS), meta(rng),
            started, ended or started,
        )  # fmt: skip


def gen_offers(world: World, rng: random.Random, n: int) -> Iterator[Row]:
    for i in range(n):
        oid = new_uuid(rng)
        name = title(rng)
        offer_slug = slug(name, "", i)
        currency = rng.choice(CURRENCIES)
        world.offers.append((oid, offer_slug, currency))
        created, updated = stamps(rng)
        yield (
            oid, rng.choice(OFFER_TYPES), name, offer_slug, f"https://go.example.com/o/{offer_slug}",
            rng.choice(["Get it now", "Start free trial", "Claim discount", "Learn more"]),
            rng.choice(NETWORKS), money(rng, 1, 250), rng.choice(COUNTRIES), currency,
            rng.choice(EMOTIONS), rng.sample(WORDS, 3),
            pick_status(rng, i, OFFER_STATUS, "active"),
            created + timedelta(days=rng.randrange(30, 400)), meta(rng), created, updated,
        )  # fmt: skip


def gen_products(world: World, rng: random.Random, n: int) -> Iterator[Row]:
    for i in range(n):
        pid = new_uuid(rng)
        offer = rng.choice(world.offers)[0] if rng.random() < 0.8 else None
        price = money(rng, 5, 500)
        world.products.append((pid, offer, price))
        name = title(rng)
        created, updated = stamps(rng)
        reviews = [
            {"stars": rng.randint(1, 5), "text": sentence(rng, rng.randint(5, 12))}
            for _ in range(rng.randint(0, 4))
        ]
        yield (
            pid, rng.choice(PRODUCT_TYPES), name, slug(name, "p", i),
            as_json({"summary": paragraph(rng, 2), "sku": f"SKU-{i:06d}"}), offer, price,
            as_json([sentence(rng, 4) for _ in range(3)]), as_json(reviews),
            pick_status(rng, i, PRODUCT_STATUS, "active"), meta(rng), created, updated,
        )  # fmt: skip


def gen_blogs(world: World, rng: random.Random, n: int) -> Iterator[Row]:
    for i in range(n):
        name = title(rng)
        created, updated = stamps(rng)
        status = pick_status(rng, i, CONTENT_STATUS, "published")
        vec = embedding(rng) if i == 0 or rng.random() < EMBEDDED_SHARE else None
        yield (
            new_uuid(rng), slug(name, "b", i), name,
            "\n\n".join(paragraph(rng, rng.randint(3, 6)) for _ in range(rng.randint(2, 5))),
            f"{rng.choice(FIRST).title()} {rng.choice(LAST).title()}", rng.sample(WORDS, 4),
            vec, rng.choice(EMOTIONS), status, updated if status == "published" else None,
            meta(rng), created, updated,
        )  # fmt: skip


def gen_quizzes(world: World, rng: random.Random, n: int) -> Iterator[Row]:
    for i in range(n):
        qid = new_uuid(rng)
        world.quizzes.append(qid)
        name = title(rng)
        questions: list[dict[str, Any]] = [
            {"id": k, "text": sentence(rng, 8)[:-1] + "?", "options": rng.sample(WORDS, 4)}
            for k in range(rng.randint(4, 8))
        ]
        created, updated = stamps(rng)
        yield (
            qid, slug(name, "q", i), name, as_json(questions),
            as_json([q["options"][0] for q in questions]),
            as_json({"scoring": "sum", "thresholds": [3, 6, 9]}),
            as_json({a: rng.sample(WORDS, 2) for a in ARCHETYPES[:3]}),
            updated, pick_status(rng, i, CONTENT_STATUS, "published"), meta(rng),
            created, updated,
        )  # fmt: skip


def gen_quiz_results(world: World, rng: random.Random, n: int) -> Iterator[Row]:
    for _ in range(n):
        sid, user = session_of(world, rng)
        created, updated = stamps(rng)
        stack = [str(rng.choice(world.products)[0]) for _ in range(rng.randint(1, 3))]
        yield (
            new_uuid(rng), rng.choice(world.quizzes), user, sid,
            Decimal(rng.randrange(0, 1000)) / 10,
            as_json({str(k): rng.randint(0, 3) for k in range(5)}), rng.choice(ARCHETYPES),
            as_json(stack), meta(rng), created, updated,
        )  # fmt: skip


def gen_purchases(world: World, rng: random.Random, n: int) -> Iterator[Row]:
    for _ in range(n):
        pid, offer, price = rng.choice(world.products)
        created, updated = stamps(rng)
        yield (
            new_uuid(rng), maybe_user(world, rng, 0.9), pid, offer, price,
            rng.choice(CURRENCIES), rng.choice(PAY_METHODS),
            f"LIC-{rng.getrandbits(40):010X}" if rng.random() < 0.5 else None,
            rng.choice(PURCHASE_STATUS), meta(rng), created, updated,
        )  # fmt: skip


def gen_license_keys(world: World, rng: random.Random, n: int) -> Iterator[Row]:
    for i in range(n):
        created, updated = stamps(rng)
        usage = [
            {"at": (created + timedelta(days=k)).isoformat(), "ip": ip(rng)}
            for k in range(rng.randint(0, 3))
        ]
        yield (
            new_uuid(rng), maybe_user(world, rng, 0.9), rng.choice(world.products)[0],
            f"EMP-{i:06d}-{rng.getrandbits(64):016X}", created + timedelta(days=365),
            rng.choice(LICENSE_STATUS), as_json(usage), meta(rng), created, updated,
        )  # fmt: skip


def gen_payout_logs(world: World, rng: random.Random, n: int) -> Iterator[Row]:
    for _ in range(n):
        oid, _slug, currency = rng.choice(world.offers)
        created, updated = stamps(rng)
        status = rng.choice(PAYOUT_STATUS)
        yield (
            new_uuid(rng), rng.choice(NETWORKS), oid, money(rng, 10, 5000), currency, status,
            updated if status == "paid" else None, meta(rng), created, updated,
        )  # fmt: skip


def gen_persona_profiles(world: World, rng: random.Random, n: int) -> Iterator[Row]:
    for _ in range(n):
        sid, user = session_of(world, rng)
        created, updated = stamps(rng)
        scores = {a: round(rng.random(), 3) for a in ARCHETYPES}
        yield (
            new_uuid(rng), user, sid, rng.sample(ARCHETYPES, 2), as_json(scores),
            as_json({"helpful": rng.random() < 0.7}), meta(rng), created, updated,
        )  # fmt: skip


def gen_memory_nodes(world: World, rng: random.Random, n: int) -> Iterator[Row]:
    for i in range(n):
        created, updated = stamps(rng)
        vec = embedding(rng) if i == 0 or rng.random() < EMBEDDED_SHARE else None
        yield (
            new_uuid(rng), rng.choice(MEMORY_TYPES), f"node-{i:07d}-{rng.choice(WORDS)}",
            paragraph(rng, rng.randint(1, 4)), vec, rng.choice(SOURCES + AGENTS),
            round(rng.random() * 100, 3), rng.randint(1, 5), meta(rng), created, updated,
        )  # fmt: skip


def gen_prompts(world: World, rng: random.Random, n: int) -> Iterator[Row]:
    versions = 3  # each name has up to three versions: (name, version) is unique
    for i in range(n):
        created, updated = stamps(rng)
        pid = new_uuid(rng)
        world.prompts.append(pid)
        yield (
            pid, f"{rng.choice(AGENTS)}-prompt-{i // versions}", i % versions + 1,
            paragraph(rng, 2), rng.choice(["gpt-4o", "claude-sonnet", "llama-3-70b"]),
            pick_status(rng, i, PROMPT_STATUS, "active"), meta(rng), created, updated,
        )  # fmt: skip


def gen_federation_neurons(world: World, rng: random.Random, n: int) -> Iterator[Row]:
    for i in range(n):
        kind = rng.choice(NEURON_TYPES)
        created, updated = stamps(rng)
        flags = {"autopilot": rng.random() < 0.5, "beta": rng.random() < 0.2}
        yield (
            new_uuid(rng), f"{kind}-neuron-{i}", kind, f"https://{kind}-{i}.neurons.example.com",
            # A reference to a secret's name, never a key.
            f"NEURON_{kind.upper()}_{i}_API_KEY", pick_status(rng, i, NEURON_STATUS, "active"),
            updated, as_json(flags), meta(rng), created, updated,
        )  # fmt: skip


def gen_admin_logs(world: World, rng: random.Random, n: int) -> Iterator[Row]:
    for _ in range(n):
        action = rng.choice(ADMIN_ACTIONS)
        at = moment(rng)
        yield (
            new_uuid(rng), action, f"{action.split('.')[0]}:{rng.randrange(10_000)}",
            f"admin-{rng.randrange(5)}", as_json({"status": "draft"}),
            as_json({"status": "active"}), at, ip(rng), meta(rng), at, at,
        )  # fmt: skip


def _gen_campaigns(keys: str, tag: str, statuses: Sequence[str], public: str) -> Generator:
    """Generator for a slug/name/status table (funnels, ab_tests) whose ids are kept in ``keys``."""

    def generate(world: World, rng: random.Random, n: int) -> Iterator[Row]:
        for i in range(n):
            key = new_uuid(rng)
            getattr(world, keys).append(key)
            name = title(rng)
            created, updated = stamps(rng)
            yield (
                key, slug(name, tag, i), name, pick_status(rng, i, statuses, public), meta(rng),
                created, updated,
            )  # fmt: skip

    return generate


gen_funnels = _gen_campaigns("funnels", "f", FUNNEL_STATUS, "active")
gen_ab_tests = _gen_campaigns("ab_tests", "t", AB_STATUS, "running")


def gen_funnel_steps(world: World, rng: random.Random, n: int) -> Iterator[Row]:
    # Round-robin over funnels: position is the step's index within its funnel.
    for i in range(n):
        created, updated = stamps(rng)
        yield (
            new_uuid(rng), world.funnels[i % len(world.funnels)], i // len(world.funnels),
            rng.choice(["landing", "quiz", "offer", "checkout", "upsell", "thank-you"]),
            meta(rng), created, updated,
        )  # fmt: skip


def gen_ab_variants(world: World, rng: random.Random, n: int) -> Iterator[Row]:
    # Round-robin over tests, so (test_id, name) is unique and every test has a variant.
    for i in range(n):
        test = world.ab_tests[i % len(world.ab_tests)]
        vid = new_uuid(rng)
        world.ab_variants.setdefault(test, []).append(vid)
        created, updated = stamps(rng)
        yield (
            vid, test, f"variant-{i // len(world.ab_tests)}",
            Decimal(rng.randrange(1, 10_000)) / 100, meta(rng), created, updated,
        )  # fmt: skip


def gen_ab_assignments(world: World, rng: random.Random, n: int) -> Iterator[Row]:
    # Assignment i is (test i % T, session i // T): (test_id, session_id) is unique.
    tests = len(world.ab_tests)
    for i in range(min(n, tests * len(world.sessions))):
        test = world.ab_tests[i % tests]
        sid, user = world.sessions[i // tests]
        at = moment(rng)
        yield (
            new_uuid(rng), test, rng.choice(world.ab_variants[test]), user, sid, at,
            meta(rng), at, at,
        )  # fmt: skip


def gen_conversions(world: World, rng: random.Random, n: int) -> Iterator[Row]:
    for _ in range(n):
        sid, user = session_of(world, rng)
        offer = rng.choice(world.offers) if rng.random() < 0.8 else None
        at = moment(rng)
        yield (
            new_uuid(rng), user, sid, offer[0] if offer else None,
            rng.choice(world.funnels) if rng.random() < 0.6 else None, money(rng, 1, 400),
            offer[2] if offer else rng.choice(CURRENCIES), at, meta(rng), at, at,
        )  # fmt: skip


def gen_notifications(world: World, rng: random.Random, n: int) -> Iterator[Row]:
    for _ in range(n):
        created, updated = stamps(rng)
        status = rng.choice(NOTIFY_STATUS)
        yield (
            new_uuid(rng), rng.choice(world.users), rng.choice(CHANNELS), title(rng),
            sentence(rng, 12), status, updated if status == "read" else None, meta(rng),
            created, updated,
        )  # fmt: skip


def gen_translations(world: World, rng: random.Random, n: int) -> Iterator[Row]:
    # Row i is (key i // L, locale i % L): (key, locale) is unique.
    for i in range(n):
        key = i // len(LOCALES)
        created, updated = stamps(rng)
        yield (
            new_uuid(rng), f"ui.{WORDS[key % len(WORDS)]}.{key}", LOCALES[i % len(LOCALES)],
            sentence(rng, rng.randint(2, 8)), pick_status(rng, i, CONTENT_STATUS, "published"),
            meta(rng), created, updated,
        )  # fmt: skip


def gen_search_queries(world: World, rng: random.Random, n: int) -> Iterator[Row]:
    for _ in range(n):
        sid, user = session_of(world, rng)
        at = moment(rng)
        yield (
            new_uuid(rng), user, sid, " ".join(rng.sample(WORDS, rng.randint(1, 4))),
            rng.randrange(0, 120), at, meta(rng), at, at,
        )  # fmt: skip


def gen_analytics_events(world: World, rng: random.Random, n: int) -> Iterator[Row]:
    for _ in range(n):
        sid, user = session_of(world, rng)
        kind = rng.choice(EVENT_TYPES)
        at = event_time(world, rng)
        yield (
            new_uuid(rng), user, sid, kind, rng.choice(PATHS), at,
            rng.choice(["https://www.google.com/", "https://t.co/", None]), rng.choice(DEVICES),
            money(rng, 5, 300) if kind == "conversion" else None, meta(rng), at, at,
        )  # fmt: skip


def gen_affiliate_clicks(world: World, rng: random.Random, n: int) -> Iterator[Row]:
    for _ in range(n):
        sid, user = session_of(world, rng)
        at = event_time(world, rng)
        yield (
            new_uuid(rng), rng.choice(world.offers)[0], user, sid, at, money(rng, 0, 40),
            f"aff_{rng.getrandbits(64):016x}", ip(rng), geo(rng), meta(rng), at, at,
        )  # fmt: skip


def gen_consent_logs(world: World, rng: random.Random, n: int) -> Iterator[Row]:
    for _ in range(n):
        sid, user = session_of(world, rng)
        at = event_time(world, rng)
        value = {"analytics": rng.random() < 0.8, "marketing": rng.random() < 0.4}
        yield (
            new_uuid(rng), user, sid, rng.choice(CONSENT_ACTIONS), as_json(value), at, ip(rng),
            geo(rng), rng.choice(["banner", "settings", "api"]), meta(rng), at, at,
        )  # fmt: skip


def gen_rlhf_feedback(world: World, rng: random.Random, n: int) -> Iterator[Row]:
    # A judgement of a response names its prompt and the response in meta (the
    # schema has no link), which `export --preset rlhf` pairs into preferences.
    judged = ("thumbs_up", "thumbs_down", "rating")
    for _ in range(n):
        sid, user = session_of(world, rng)
        signal = rng.choice(SIGNALS)
        at = event_time(world, rng)
        about = (
            {"prompt_id": str(rng.choice(world.prompts)), "response": paragraph(rng, 1)}
            if signal in judged and world.prompts
            else {}
        )
        yield (
            new_uuid(rng), user, sid, rng.choice(AGENTS), signal,
            Decimal(rng.randint(1, 5)) if signal == "rating" else None,
            f"message:{rng.getrandbits(32):08x}", at, meta(rng, **about), at, at,
        )  # fmt: skip


def gen_error_logs(world: World, rng: random.Random, n: int) -> Iterator[Row]:
    for _ in range(n):
        at = event_time(world, rng)
        yield (
            new_uuid(rng), at, rng.choice(SEVERITIES), rng.choice(SOURCES),
            f"{rng.choice(['timeout', 'validation failed', 'upstream 502', 'null reference'])} "
            f"in {rng.choice(PATHS)}",
            as_json({"request_id": f"req_{rng.getrandbits(48):012x}"}),
            maybe_user(world, rng, 0.3), meta(rng), at, at,
        )  # fmt: skip


# -- the tables, in foreign-key order -------------------------------------------------------
@dataclass(frozen=True)
class TableSpec:
    """One table: its name, the columns each generated row fills, and the generator."""

    name: str
    columns: tuple[str, ...]
    generate: Generator
    schema: str = "public"

    @property
    def qualified(self) -> str:
        """``schema.name``, as the report and the messages name the table."""
        return f"{self.schema}.{self.name}"

    @property
    def label(self) -> str:
        """The name alone for a public table, ``schema.name`` otherwise."""
        return self.name if self.schema == "public" else self.qualified


_STAMPS = ("meta", "created_at", "updated_at")


def _spec(name: str, columns: str, generate: Generator, schema: str = "public") -> TableSpec:
    return TableSpec(name, (*columns.split(), *_STAMPS), generate, schema)


TABLES: tuple[TableSpec, ...] = (
    _spec(
        "offers",
        "id type title slug url cta_text affiliate_network payout country currency emotion "
        "product_tags status expires_at",
        gen_offers,
    ),
    _spec(
        "products",
        "id type title slug details offer_id price features reviews status",
        gen_products,
    ),
    _spec(
        "users",
        "id email anon_id device_list consent last_seen geo archetype favorites",
        gen_users,
    ),
    _spec(
        "user_credentials",
        "user_id password_hash session_tokens",
        gen_user_credentials,
        schema="empire_private",
    ),
    _spec(
        "user_sessions",
        "id session_id user_id started_at ended_at device ip actions profile_snapshot "
        "consent_status",
        gen_user_sessions,
    ),
    _spec(
        "blogs",
        "id slug title content author tags vector_embedding emotion status published_at",
        gen_blogs,
    ),
    _spec(
        "quizzes",
        "id slug title questions answers logic personalization_map last_used_at status",
        gen_quizzes,
    ),
    _spec(
        "quiz_results",
        "id quiz_id user_id session_id score answers archetype product_stack",
        gen_quiz_results,
    ),
    _spec(
        "purchases",
        "id user_id product_id offer_id amount currency method license status",
        gen_purchases,
    ),
    _spec(
        "license_keys",
        "id user_id product_id license_key expires_at status usage_logs",
        gen_license_keys,
    ),
    _spec(
        "payout_logs",
        "id affiliate_network offer_id amount currency status paid_at",
        gen_payout_logs,
    ),
    _spec(
        "persona_profiles",
        "id user_id session_id persona_tags fusion_scores feedback",
        gen_persona_profiles,
    ),
    _spec(
        "memory_nodes",
        "id type slug content vector_embedding source usage_score version",
        gen_memory_nodes,
    ),
    _spec("prompts", "id name version body model status", gen_prompts),
    _spec(
        "federation_neurons",
        "id name type url api_key_ref status last_seen_at feature_flags",
        gen_federation_neurons,
    ),
    _spec("admin_logs", "id action subject actor_id before after occurred_at ip", gen_admin_logs),
    _spec("funnels", "id slug name status", gen_funnels),
    _spec("funnel_steps", "id funnel_id position name", gen_funnel_steps),
    _spec("ab_tests", "id slug name status", gen_ab_tests),
    _spec("ab_variants", "id test_id name weight", gen_ab_variants),
    _spec(
        "ab_assignments",
        "id test_id variant_id user_id session_id assigned_at",
        gen_ab_assignments,
    ),
    _spec(
        "conversions",
        "id user_id session_id offer_id funnel_id value currency occurred_at",
        gen_conversions,
    ),
    _spec(
        "notifications",
        "id user_id channel title body status read_at",
        gen_notifications,
    ),
    _spec("translations", "id key locale value status", gen_translations),
    _spec(
        "search_queries",
        "id user_id session_id query results_count occurred_at",
        gen_search_queries,
    ),
    _spec(
        "analytics_events",
        "id user_id session_id event_type path occurred_at referrer device conversion_value",
        gen_analytics_events,
    ),
    _spec(
        "affiliate_clicks",
        "id offer_id user_id session_id clicked_at payout cookie ip geo",
        gen_affiliate_clicks,
    ),
    _spec(
        "consent_logs",
        "id user_id session_id action value occurred_at ip geo source",
        gen_consent_logs,
    ),
    _spec(
        "rlhf_feedback",
        "id user_id session_id agent_id signal value target occurred_at",
        gen_rlhf_feedback,
    ),
    _spec(
        "error_logs",
        "id occurred_at severity source message context user_id",
        gen_error_logs,
    ),
)
# The public tables (the app-facing schema), by name; SEEDED is every table
# seeded, empire_private's included, as TableSpec.label names them.
TABLE_NAMES: tuple[str, ...] = tuple(t.name for t in TABLES if t.schema == "public")
SEEDED: tuple[str, ...] = tuple(t.label for t in TABLES)
# The range-partitioned event tables (monthly partitions plus a DEFAULT one).
EVENT_TABLES = (
    "analytics_events",
    "affiliate_clicks",
    "consent_logs",
    "rlhf_feedback",
    "error_logs",
)
