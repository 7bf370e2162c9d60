"""Synthetic invoices with exact Decimal arithmetic and realistic, locale-specific content.

    >>> from finscribe.synthetic.generator import generate_invoice
    >>> inv = generate_invoice(num_items=5, currency="EUR", seed=42, locale="de_DE")

Every amount is rounded ROUND_HALF_UP to the currency's minor unit exactly as the data contract's
invariants state (line_total = quantity × unit_price; subtotal = Σ line_total; tax_amount =
(subtotal − discount) × tax_rate / 100; total = subtotal − discount + tax_amount), so a label is
always arithmetically consistent. An invoice depends only on its arguments: Faker is seeded per
call on a per-locale instance and all other draws come from a `random.Random` seeded from the
arguments — the global RNG is never touched.
"""

from __future__ import annotations

import calendar
import datetime as dt
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import cache

from faker import Faker

import finscribe.synthetic.locales as L
from finscribe.data.schema import Invoice, LineItem, Party, get_currency, round_money
from finscribe.synthetic.renderer import LAYOUTS

SUPPORTED_LOCALES: tuple[str, ...] = tuple(L.DEFAULT_CURRENCY)
MAX_ITEMS = 25
MAX_TEXT = 40  # longest single printed line (names, address lines, descriptions)

# Rough value of one unit of each currency in USD terms, so prices stay realistic per currency.
# These are the currencies synthetic invoices use; the data contract itself takes every ISO 4217
# code (finscribe.data.schema, from Babel).
_PRICE_SCALE = {"USD": 1, "EUR": 1, "GBP": 1, "CHF": 1, "CAD": 1.4, "AUD": 1.5, "JPY": 150,
                "INR": 80, "SEK": 10}
SYNTHETIC_CURRENCIES: tuple[str, ...] = tuple(sorted(_PRICE_SCALE))
_SERVICE_HOURS = ("0.25", "0.5", "1", "1.5", "2", "2.5", "3", "4", "6", "7.5", "8", "10", "12",
                  "16", "20", "24", "40")
_FIRST_DAY = dt.date(2022, 1, 1)
_LAST_DAY = dt.date(2026, 11, 20)


def _check_args(num_items: int, currency: str | None, locale: str) -> None:
    if locale not in L.DEFAULT_CURRENCY:
        raise ValueError(f"unsupported locale {locale!r}; supported: {', '.join(SUPPORTED_LOCALES)}")
    if currency is not None and currency not in SYNTHETIC_CURRENCIES:
        raise ValueError(f"unknown currency {currency!r}; the generator supports: {', '.join(SYNTHETIC_CURRENCIES)}")
    if isinstance(num_items, bool) or not isinstance(num_items, int) or not 1 <= num_items <= MAX_ITEMS:
        raise ValueError(f"num_items must be an integer from 1 to {MAX_ITEMS}, got {num_items!r}")


@cache
def _faker(locale: str) -> Faker:
    # Building a Faker costs ~50 ms; reseeding one costs microseconds, so keep one per locale.
    return Faker(locale)


def _weighted(rng: random.Random, options: Sequence[tuple[str, int]]) -> str:
    return rng.choices([o for o, _ in options], weights=[w for _, w in options])[0]


def _short(draw, limit: int = MAX_TEXT) -> str:
    """A Faker draw no longer than `limit` characters (redraw a few times, then cut at a word)."""
    text = draw()
    for _ in range(6):
        if len(text) <= limit:
            return text
        text = draw()
    return text[:limit].rsplit(" ", 1)[0].rstrip(",")


def _address(fake: Faker, rng: random.Random, locale: str) -> str:
    """Address lines joined by newlines, as printed on the page (each ≤ MAX_TEXT characters)."""
    if locale == "ja_JP":
        ward, city, zip3 = rng.choice(L.JA_WARDS)
        street = f"{rng.randint(1, 9)}-{rng.randint(1, 30)}-{rng.randint(1, 20)} {rng.choice(L.JA_AREAS)}"
        return f"{street}\n{ward}, {city} {zip3}-{rng.randint(0, 9999):04d}"
    lines = [line.strip() for line in fake.address().split("\n") if line.strip()]
    return "\n".join(line if len(line) <= MAX_TEXT else line[:MAX_TEXT].rsplit(" ", 1)[0] for line in lines)


def _company(fake: Faker, rng: random.Random, locale: str) -> str:
    if locale == "ja_JP":
        words = f"{fake.last_romanized_name()} {rng.choice(L.JA_COMPANY_WORDS)}"
        return f"{words} {rng.choice(L.JA_COMPANY_SUFFIXES)}"
    return _short(fake.company)


def _person(fake: Faker, locale: str) -> str:
    return _short(fake.romanized_name if locale == "ja_JP" else fake.name)


def _tax_id(rng: random.Random, locale: str) -> str:
    digits = lambda n: "".join(str(rng.randint(0, 9)) for _ in range(n))  # noqa: E731
    return {
        "en_US": lambda: f"{digits(2)}-{digits(7)}",  # EIN
        "en_GB": lambda: f"GB{digits(9)}",
        "de_DE": lambda: f"DE{digits(9)}",
        "fr_FR": lambda: f"FR{digits(11)}",
        "es_ES": lambda: f"ES{rng.choice('ABG')}{digits(8)}",
        "ja_JP": lambda: f"T{digits(13)}",  # qualified invoice issuer number
        "it_IT": lambda: f"IT{digits(11)}",
        "nl_NL": lambda: f"NL{digits(9)}B01",
    }[locale]()


def _email(fake: Faker) -> str:
    return _short(fake.company_email)


def _unit_price(rng: random.Random, currency: str, service: bool) -> Decimal:
    scale = _PRICE_SCALE.get(currency, 1)
    if service:
        major = rng.choice((45, 55, 60, 75, 85, 90, 95, 110, 120, 125, 150, 175, 195, 220))
        major *= scale
    else:
        major = math.exp(rng.uniform(math.log(1.5), math.log(1800))) * scale
    if get_currency(currency).minor_units == 0:
        step = 10 if major < 5000 else 100
        return Decimal(max(step, round(major / step) * step))
    whole = max(1, int(major))
    cents = rng.choices(("00", "99", "95", "50", None), weights=(4, 1, 1, 1, 3))[0]
    if cents is None:
        cents = f"{rng.randint(0, 99):02d}"
    if service:
        cents = "00"
    return round_money(Decimal(f"{whole}.{cents}"), currency)


def _quantity(rng: random.Random, service: bool) -> Decimal:
    if service:
        return Decimal(rng.choice(_SERVICE_HOURS))
    if rng.random() < 0.08:
        return Decimal(rng.choice((50, 100, 120, 200, 250, 500)))
    return Decimal(rng.choices(range(1, 21), weights=[20 // k + 1 for k in range(1, 21)])[0])


def _line_items(rng: random.Random, locale: str, currency: str, n: int) -> tuple[LineItem, ...]:
    services, goods = L.DESCRIPTIONS[L.LANGUAGE[locale]]
    items = []
    for _ in range(n):
        service = rng.random() < 0.4
        description = rng.choice(services if service else goods)
        quantity = _quantity(rng, service)
        unit_price = _unit_price(rng, currency, service)
        items.append(LineItem(description, quantity, unit_price, round_money(quantity * unit_price, currency)))
    return tuple(items)


def _discount(rng: random.Random, subtotal: Decimal, currency: str) -> Decimal:
    """Zero on about half of the invoices, else a percentage or a round fixed amount ≤ subtotal."""
    roll = rng.random()
    if roll < 0.5:
        return round_money(Decimal(0), currency)
    if roll < 0.8:
        percent = Decimal(rng.choice((2, 3, 5, 10, 15, 20)))
        return round_money(subtotal * percent / 100, currency)
    fixed = Decimal(rng.choice((5, 10, 20, 25, 50, 100, 250)) * _PRICE_SCALE.get(currency, 1))
    return round_money(min(fixed, subtotal), currency)


def _due_date(invoice_date: dt.date, days: int | None) -> dt.date:
    if days is not None:
        return invoice_date + dt.timedelta(days=days)
    year, month = (invoice_date.year + 1, 1) if invoice_date.month == 12 else (invoice_date.year, invoice_date.month + 1)
    return dt.date(year, month, calendar.monthrange(year, month)[1])


def generate_invoice(
    num_items: int = 5, currency: str | None = None, seed: int = 0, locale: str = "en_US"
) -> Invoice:
    """One arithmetically exact invoice; `currency=None` uses the locale's usual currency.

    Raises `ValueError` (listing the allowed values) for an unsupported locale, an unknown
    currency or `num_items` outside 1..25.
    """
    _check_args(num_items, currency, locale)
    currency = currency or L.DEFAULT_CURRENCY[locale]
    fake = _faker(locale)
    fake.seed_instance(seed)
    rng = random.Random(f"invoice:{seed}:{locale}:{currency}:{num_items}")

    vendor = Party(
        name=_company(fake, rng, locale),
        address=_address(fake, rng, locale),
        tax_id=_tax_id(rng, locale) if rng.random() < 0.85 else None,
        email=_email(fake) if rng.random() < 0.85 else None,
        phone=_short(fake.phone_number, 24) if rng.random() < 0.8 else None,
    )
    client_is_company = rng.random() < 0.65
    client = Party(
        name=_company(fake, rng, locale) if client_is_company else _person(fake, locale),
        address=_address(fake, rng, locale),
        tax_id=_tax_id(rng, locale) if client_is_company and rng.random() < 0.4 else None,
    )
    invoice_date = _FIRST_DAY + dt.timedelta(days=rng.randrange((_LAST_DAY - _FIRST_DAY).days + 1))
    terms, days = rng.choice(L.PAYMENT_TERMS[locale])
    pattern = rng.choice(L.INVOICE_NUMBERS[locale])
    invoice_number = pattern.format(y=invoice_date.year, n=rng.randint(1, 99999 if "{n}" in pattern else 9999))

    items = _line_items(rng, locale, currency, num_items)
    subtotal = sum((item.line_total for item in items), start=round_money(Decimal(0), currency))
    discount = _discount(rng, subtotal, currency)
    tax_rate = Decimal(_weighted(rng, L.TAX_RATES[locale]))
    tax_amount = round_money((subtotal - discount) * tax_rate / 100, currency)
    return Invoice(
        vendor=vendor,
        client=client,
        invoice_number=invoice_number,
        invoice_date=invoice_date,
        due_date=_due_date(invoice_date, days),
        payment_terms=terms if rng.random() < 0.9 else None,
        currency=currency,
        line_items=items,
        subtotal=subtotal,
        discount=discount,
        tax_rate=tax_rate,
        tax_amount=tax_amount,
        total=subtotal - discount + tax_amount,
        locale=locale,
    )


@dataclass(frozen=True)
class InvoiceSpec:
    """What sample i of a generated set looks like; a pure function of (seed, i)."""

    locale: str
    currency: str
    num_items: int
    layout: str
    seed: int  # seeds the invoice content, the renderer and the degradation


def random_invoice_spec(seed: int, i: int, layouts: Sequence[str] | None = None,
                        locales: Sequence[str] = SUPPORTED_LOCALES) -> InvoiceSpec:
    """Locale, currency, item count and layout for sample `i` of the set generated with `seed`.

    Most invoices use the locale's own currency; ~15% bill in another one (and JPY invoices
    appear outside Japan). Item counts favour short invoices but reach 25.
    """
    if layouts is None:

        layouts = LAYOUTS
    rng = random.Random(f"spec:{seed}:{i}")
    locale = rng.choice(tuple(locales))
    currency = L.DEFAULT_CURRENCY[locale]
    if rng.random() < 0.15:
        currency = rng.choice(SYNTHETIC_CURRENCIES)
    num_items = rng.choices(range(1, MAX_ITEMS + 1), weights=[max(1, 12 - k // 2) for k in range(1, MAX_ITEMS + 1)])[0]
    return InvoiceSpec(locale, currency, num_items, rng.choice(tuple(layouts)), rng.getrandbits(31))
