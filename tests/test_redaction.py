"""Secrets a check knows never leave the process: not in the log, the events, the spans or the
probes' verbose answers, not even the pieces of a password that a driver's parse error repeats."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.applications import Starlette
from starlette.routing import Mount

from gracekit import Check, Lifecycle, ProbeApp
from gracekit.checks import http_check, postgres_check, redis_check
from gracekit.events import LifecycleEvent
from gracekit.events.otel import trace_events
from gracekit.probes import CheckState
from gracekit.probes._runner import run_once
from gracekit.probes._secrets import MASK, Secrets
from tests.support.asgi import client, eventually

#: One password per reserved character, and one with all of them; every piece between two
#: reserved characters is long enough to matter.
PASSWORDS = [
    "Hunter2/Seagull7",
    "Hunter2#Seagull7",
    "Hunter2?Seagull7",
    "Hunter2@Seagull7",
    "Hunter2:Seagull7",
    "Hunter2%Seagull7",
    "Hunter2[Seagull7",
    "Hunter2]Seagull7",
    "Hunter2 Seagull7",
    "Alpha1/Bravo2#Charlie3?Delta4@Echo5:Foxtrot6%Golf7[Hotel8]India9 Juliet0",
]
_RESERVED = "/#?@:%[] "


def pieces(password: str) -> list[str]:
    """What a parser can cut out of *password*: the password, and its parts between reserved
    characters."""
    return [password, *(p for p in re.split(f"[{re.escape(_RESERVED)}]", password) if p)]


def with_password(url: str, password: str) -> str:
    """*url* with a user and *password* written into it as is, unencoded."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{parts.username or ''}:{password}@{host}").geturl()


# -- the redaction itself ------------------------------------------------------------------


@pytest.mark.parametrize("password", PASSWORDS)
def test_a_dsn_password_and_its_pieces_are_masked_and_the_rest_kept(password: str) -> None:
    dsn = f"postgresql://orders:{password}@db.internal:5432/orders?sslmode=require"
    secrets = Secrets([dsn])
    for piece in pieces(password):
        said = "ValueError: invalid literal for int() with base 10: '{}'"
        assert secrets.redact(said.format(piece)) == said.format(MASK)
    repeated = secrets.redact(f"cannot connect to {dsn}")
    assert repeated == (
        f"cannot connect to postgresql://{MASK}@db.internal:5432/orders?sslmode=require"
    )
    kept = 'role "orders" does not exist on db.internal:5432'
    assert secrets.redact(kept) == kept, "the user name, host and port are not secrets"


def test_other_forms_of_a_secret_are_masked() -> None:
    secrets = Secrets(
        ["redis://:p%40ss/w0rd@cache:6379/0", "https://api/x?access_token=Tok3nValue"]
    )
    assert secrets.redact("AUTH p@ss/w0rd failed") == f"AUTH {MASK} failed", "decoded"
    assert secrets.redact("token Tok3nValue refused") == f"token {MASK} refused"
    literal = Secrets(["s3cr3t'quote"])
    assert literal.redact(repr("s3cr3t'quote")) == f'"{MASK}"'


def test_a_token_as_user_name_is_masked_and_short_pieces_are_not() -> None:
    assert Secrets(["https://ghp_T0ken@github.com/x"]).redact("ghp_T0ken") == MASK
    secrets = Secrets(["postgresql://u:ab/cd@h/db"])
    assert secrets.redact("cd and ab/cd") == f"cd and {MASK}", "2-character pieces match anything"


def test_secrets_are_never_shown_and_must_be_strings() -> None:
    secrets = Secrets(["Hunter2/Seagull7"])
    assert "Hunter2" not in repr(secrets)
    assert not Secrets(["postgresql://db/orders"]), "a URL without credentials has no secret"
    with pytest.raises(TypeError, match="iterable of str, not a single str"):
        Secrets("Hunter2")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="a secret must be a str, not int"):
        Check("x", lambda: None, secrets=[42])  # type: ignore[list-item, arg-type, return-value]


@pytest.mark.anyio
async def test_the_runner_masks_a_custom_checks_error_and_details() -> None:
    async def login() -> dict[str, str]:
        raise ConnectionError("login with Hunter2/Seagull7 refused")

    async def report() -> dict[str, str]:
        return {"url": "https://u:Hunter2@host/", "Hunter2": "key"}

    failing = CheckState(Check("login", login, secrets=["Hunter2/Seagull7"]))
    await run_once(failing)
    assert failing.error == f"ConnectionError: login with {MASK} refused"
    passing = CheckState(Check("report", report, secrets=["https://u:Hunter2@host/"]))
    await run_once(passing)
    assert passing.detail == {"url": f"https://{MASK}@host/", MASK: "key"}


def test_an_http_checks_own_message_hides_the_urls_credentials() -> None:
    check = http_check("https://probe:Hunter2/Seagull7@payments.internal/healthz")
    assert check.secrets.redact("GET https://probe:Hunter2/Seagull7@payments.internal/healthz") == (
        f"GET https://{MASK}@payments.internal/healthz"
    )


# -- the whole path, against the real servers ----------------------------------------------


@asynccontextmanager
async def pools(postgres_dsn: str) -> AsyncIterator[list[asyncpg.Pool]]:
    """A pool per password; min_size=0 creates them without connecting (the DSN is parsed at
    the first connection: in the check)."""
    async with AsyncExitStack() as stack:
        created = []
        for password in PASSWORDS:
            pool = asyncpg.create_pool(
                with_password(postgres_dsn, password), min_size=0, max_size=1
            )
            created.append(await stack.enter_async_context(pool))
        yield created


@pytest.mark.anyio
@pytest.mark.postgres
@pytest.mark.redis
async def test_no_secret_leaves_the_process(
    postgres_dsn: str, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    lifecycle = Lifecycle()
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace_events(lifecycle, tracer_provider=provider)
    events: list[LifecycleEvent] = []
    lifecycle.on_event(events.append)
    async with pools(postgres_dsn) as created:
        for n, (password, pool) in enumerate(zip(PASSWORDS, created, strict=True)):
            options: dict[str, Any] = {"interval": 30, "timeout": 5}
            dsn = with_password(postgres_dsn, password)
            lifecycle.add_check(postgres_check(dsn=dsn, name=f"pg-dsn-{n}", **options))
            lifecycle.add_check(postgres_check(lambda p=pool: p, name=f"pg-pool-{n}", **options))
            url = with_password(redis_url, password)
            lifecycle.add_check(redis_check(url=url, name=f"redis-url-{n}", **options))
        app = Starlette(
            routes=[Mount("/health", app=ProbeApp(lifecycle, details="always"))],
            lifespan=lifecycle.lifespan(),
        )
        async with client(app) as http:
            await eventually(lambda: all(s.runs for s in lifecycle.checks.values()), timeout=20)
            verbose = (await http.get("/health/ready?verbose")).text
            singles = [
                (await http.get(f"/health/ready/{name}?verbose")).text for name in lifecycle.checks
            ]

    errors = {name: state.error for name, state in lifecycle.checks.items()}
    # The parse errors happened, and say what they were about, without the secret.
    assert errors["pg-dsn-0"] == f"ValueError: invalid literal for int() with base 10: '{MASK}'"
    assert errors["pg-pool-0"] == errors["pg-dsn-0"]
    assert errors["redis-url-0"] == (
        f"ValueError: Port could not be cast to integer value as '{MASK}'"
    )
    assert errors["pg-dsn-2"] == f"ValueError: bad query field: '{MASK}@127.0.0.1:5432/test'"
    assert sum(MASK in (e or "") for e in errors.values()) >= 10

    outputs = {
        "log": [
            f"{r.getMessage()} {getattr(r, 'gracekit', '')} {r.exc_text or ''}"
            for r in caplog.records
        ],
        "events": [f"{e.message} {e.fields}" for e in events],
        "spans": [
            f"{span.name} {dict(span.attributes or {})} "
            f"{[(event.name, dict(event.attributes or {})) for event in span.events]}"
            for span in exporter.get_finished_spans()
        ],
        "verbose": [verbose, *singles],
    }
    assert all(outputs.values()), "every way out was looked at"
    for where, texts in outputs.items():
        for text in texts:
            for password in PASSWORDS:
                for piece in pieces(password):
                    assert piece not in text, f"{piece!r} of a password is in the {where}: {text}"
