"""How amounts, dates and quantities are PRINTED on a synthetic invoice page, per locale.

Labels stay canonical (`schema.format_money`, ISO dates); only the page shows these forms:

    en_US  $1,234.56   03/15/2024        de_DE  1.234,56 €  15.03.2024
    en_GB  £1,234.56   15/03/2024        fr_FR  1 234,56 €  15/03/2024
    es_ES  1.234,56 €  15/03/2024        ja_JP  ¥1,235      2024/03/15

Written with `Decimal` only (no babel, no float). Also holds the localised page wording
(`labels_for`), with a few seed-chosen variants per label so that layouts don't all read alike.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from decimal import Decimal

from finscribe.data.schema import format_decimal, get_currency, round_money


@dataclass(frozen=True)
class LocaleFormat:
    group: str  # thousands separator
    decimal: str  # decimal separator
    symbol_after: bool  # "1.234,56 €" rather than "€1,234.56"
    date_order: str  # strftime pattern of the printed date
    language: str  # key into the label vocabularies below
    symbol_space: bool = False  # "€ 1.234,56" (nl_NL) rather than "€1.234,56"


LOCALES: dict[str, LocaleFormat] = {
    "en_US": LocaleFormat(",", ".", False, "%m/%d/%Y", "en"),
    "en_CA": LocaleFormat(",", ".", False, "%Y-%m-%d", "en"),
    "en_GB": LocaleFormat(",", ".", False, "%d/%m/%Y", "en"),
    "en_AU": LocaleFormat(",", ".", False, "%d/%m/%Y", "en"),
    "en_IN": LocaleFormat(",", ".", False, "%d/%m/%Y", "en"),
    "de_DE": LocaleFormat(".", ",", True, "%d.%m.%Y", "de"),
    "de_AT": LocaleFormat(".", ",", True, "%d.%m.%Y", "de"),
    "de_CH": LocaleFormat("'", ".", False, "%d.%m.%Y", "de"),
    "fr_FR": LocaleFormat(" ", ",", True, "%d/%m/%Y", "fr"),
    "fr_CH": LocaleFormat(" ", ".", True, "%d.%m.%Y", "fr"),
    "es_ES": LocaleFormat(".", ",", True, "%d/%m/%Y", "es"),
    "it_IT": LocaleFormat(".", ",", True, "%d/%m/%Y", "it"),
    "nl_NL": LocaleFormat(".", ",", False, "%d-%m-%Y", "nl", symbol_space=True),
    "sv_SE": LocaleFormat(" ", ",", True, "%Y-%m-%d", "en"),
    "ja_JP": LocaleFormat(",", ".", False, "%Y/%m/%d", "ja"),
}


def get_locale(locale: str) -> LocaleFormat:
    try:
        return LOCALES[locale]
    except KeyError:
        raise ValueError(
            f"unsupported locale {locale!r} for printing amounts/dates; supported: {', '.join(sorted(LOCALES))}"
        ) from None


def _group(digits: str, sep: str) -> str:
    head = len(digits) % 3 or 3
    parts = [digits[:head]] + [digits[i : i + 3] for i in range(head, len(digits), 3)]
    return sep.join(parts)


def format_number(value: Decimal, locale: str, *, places: int | None = None, grouping: bool = True) -> str:
    """`value` with the locale's separators; `places` fixes the decimals, None keeps them as given."""
    fmt = get_locale(locale)
    text = format(value if places is None else value.quantize(Decimal(1).scaleb(-places)), "f")
    sign = "-" if text.startswith("-") else ""
    whole, _, frac = text.lstrip("-").partition(".")
    whole = _group(whole, fmt.group) if grouping else whole
    return sign + whole + (fmt.decimal + frac if frac else "")


def format_amount(amount: Decimal, currency: str, locale: str) -> str:
    """Money as printed: `format_amount(Decimal("1234.56"), "EUR", "de_DE") == "1.234,56 €"`.

    Rounded to the currency's minor units (JPY: none). Letter symbols ("CHF", "kr") get a space.
    """
    fmt, cur = get_locale(locale), get_currency(currency)
    amount = round_money(amount, currency)
    number = format_number(abs(amount), locale, places=cur.minor_units)
    sign = "-" if amount < 0 else ""
    if fmt.symbol_after:
        return f"{sign}{number} {cur.symbol}"
    space = " " if fmt.symbol_space or cur.symbol[-1].isalpha() else ""
    return f"{sign}{cur.symbol}{space}{number}"


def format_date(date: dt.date, locale: str) -> str:
    """The printed date: 03/15/2024 (en_US), 15.03.2024 (de_DE), 2024/03/15 (ja_JP)."""
    return date.strftime(get_locale(locale).date_order)


def format_quantity(quantity: Decimal, locale: str) -> str:
    """A quantity or rate as printed: Decimal("7.5") → "7,5" in de_DE; no trailing zeros."""
    return format_number(Decimal(format_decimal(quantity)), locale)


# ----------------------------------------------------------------------------- page wording

# Each entry lists variants; `labels_for` picks one per key from the seed so that the same
# invoice can read "Bill to" on one page and "Billed to" on another.
_LABELS: dict[str, dict[str, tuple[str, ...]]] = {
    "en": {
        "title": ("INVOICE", "Invoice", "TAX INVOICE"),
        "bill_to": ("Bill to", "Billed to", "Customer", "Invoice to"),
        "number": ("Invoice No.", "Invoice #", "Invoice Number"),
        "date": ("Invoice date", "Date", "Issue date"),
        "due": ("Due date", "Payment due", "Due"),
        "terms": ("Terms", "Payment terms"),
        "currency": ("Currency",),
        "tax_id": ("Tax ID", "VAT No.", "Tax No."),
        "email": ("Email", "E-mail"),
        "phone": ("Phone", "Tel."),
        "description": ("Description", "Item", "Item description"),
        "qty": ("Qty", "Quantity", "Units"),
        "unit_price": ("Unit price", "Rate", "Price"),
        "amount": ("Amount", "Line total", "Total"),
        "subtotal": ("Subtotal", "Net amount", "Sub-total"),
        "discount": ("Discount", "Less discount"),
        "tax": ("Tax", "VAT", "Sales tax"),
        "total": ("Total", "Total due", "Amount due", "Balance due"),
        "thanks": ("Thank you for your business.", "Please pay by the due date.", "Thank you!"),
        "page": ("Page 1 of 1", "Page 1/1"),
    },
    "de": {
        "title": ("RECHNUNG", "Rechnung"),
        "bill_to": ("Rechnungsempfänger", "An", "Kunde"),
        "number": ("Rechnungsnr.", "Rechnungsnummer"),
        "date": ("Rechnungsdatum", "Datum"),
        "due": ("Fällig am", "Zahlbar bis"),
        "terms": ("Zahlungsbedingungen", "Zahlungsziel"),
        "currency": ("Währung",),
        "tax_id": ("USt-IdNr.", "Steuernummer"),
        "email": ("E-Mail",),
        "phone": ("Tel.", "Telefon"),
        "description": ("Beschreibung", "Bezeichnung", "Leistung"),
        "qty": ("Menge", "Anz."),
        "unit_price": ("Einzelpreis", "Preis"),
        "amount": ("Betrag", "Gesamt"),
        "subtotal": ("Zwischensumme", "Nettobetrag"),
        "discount": ("Rabatt", "Nachlass"),
        "tax": ("MwSt.", "USt."),
        "total": ("Gesamtbetrag", "Rechnungsbetrag", "Summe"),
        "thanks": ("Vielen Dank für Ihren Auftrag.", "Bitte überweisen Sie den Betrag fristgerecht."),
        "page": ("Seite 1 von 1",),
    },
    "fr": {
        "title": ("FACTURE", "Facture"),
        "bill_to": ("Facturé à", "Client", "Destinataire"),
        "number": ("Facture n°", "N° de facture"),
        "date": ("Date de facture", "Date"),
        "due": ("Échéance", "Date d'échéance"),
        "terms": ("Conditions de paiement", "Conditions"),
        "currency": ("Devise",),
        "tax_id": ("N° TVA", "TVA intracom."),
        "email": ("E-mail", "Courriel"),
        "phone": ("Tél.", "Téléphone"),
        "description": ("Désignation", "Description"),
        "qty": ("Qté", "Quantité"),
        "unit_price": ("Prix unitaire", "P.U."),
        "amount": ("Montant", "Total"),
        "subtotal": ("Sous-total", "Total HT"),
        "discount": ("Remise",),
        "tax": ("TVA",),
        "total": ("Total TTC", "Net à payer", "Total"),
        "thanks": ("Merci pour votre confiance.", "Paiement à réception de facture."),
        "page": ("Page 1 sur 1", "Page 1/1"),
    },
    "es": {
        "title": ("FACTURA", "Factura"),
        "bill_to": ("Facturar a", "Cliente"),
        "number": ("N.º de factura", "Factura n.º"),
        "date": ("Fecha", "Fecha de emisión"),
        "due": ("Vencimiento", "Fecha de vencimiento"),
        "terms": ("Condiciones de pago", "Forma de pago"),
        "currency": ("Moneda", "Divisa"),
        "tax_id": ("NIF", "CIF"),
        "email": ("Correo", "E-mail"),
        "phone": ("Tel.", "Teléfono"),
        "description": ("Descripción", "Concepto"),
        "qty": ("Cant.", "Cantidad"),
        "unit_price": ("Precio unit.", "Precio"),
        "amount": ("Importe", "Total"),
        "subtotal": ("Subtotal", "Base imponible"),
        "discount": ("Descuento",),
        "tax": ("IVA",),
        "total": ("Total", "Total a pagar"),
        "thanks": ("Gracias por su confianza.",),
        "page": ("Página 1 de 1",),
    },
    "it": {
        "title": ("FATTURA", "Fattura"),
        "bill_to": ("Intestatario", "Cliente", "Spett.le"),
        "number": ("Fattura n.", "Numero fattura"),
        "date": ("Data", "Data fattura"),
        "due": ("Scadenza", "Data di scadenza"),
        "terms": ("Condizioni di pagamento", "Pagamento"),
        "currency": ("Valuta",),
        "tax_id": ("P.IVA", "Partita IVA"),
        "email": ("E-mail", "Email"),
        "phone": ("Tel.", "Telefono"),
        "description": ("Descrizione",),
        "qty": ("Q.tà", "Quantità"),
        "unit_price": ("Prezzo unit.", "Prezzo"),
        "amount": ("Importo", "Totale"),
        "subtotal": ("Imponibile", "Subtotale"),
        "discount": ("Sconto",),
        "tax": ("IVA",),
        "total": ("Totale", "Totale fattura", "Totale da pagare"),
        "thanks": ("Grazie per la fiducia.",),
        "page": ("Pagina 1 di 1",),
    },
    "nl": {
        "title": ("FACTUUR", "Factuur"),
        "bill_to": ("Factuuradres", "Klant", "Aan"),
        "number": ("Factuurnummer", "Factuurnr."),
        "date": ("Factuurdatum", "Datum"),
        "due": ("Vervaldatum", "Te betalen voor"),
        "terms": ("Betalingstermijn", "Betaalvoorwaarden"),
        "currency": ("Valuta",),
        "tax_id": ("Btw-nr.", "Btw-nummer"),
        "email": ("E-mail",),
        "phone": ("Tel.", "Telefoon"),
        "description": ("Omschrijving",),
        "qty": ("Aantal",),
        "unit_price": ("Prijs", "Stukprijs"),
        "amount": ("Bedrag", "Totaal"),
        "subtotal": ("Subtotaal", "Totaal excl. btw"),
        "discount": ("Korting",),
        "tax": ("Btw",),
        "total": ("Totaal", "Totaal incl. btw", "Te betalen"),
        "thanks": ("Bedankt voor uw opdracht.",),
        "page": ("Pagina 1 van 1",),
    },
    "ja": {
        "title": ("請求書", "御請求書"),
        "bill_to": ("請求先", "御中"),
        "number": ("請求書番号", "請求番号"),
        "date": ("請求日", "発行日"),
        "due": ("支払期限", "お支払期限"),
        "terms": ("支払条件",),
        "currency": ("通貨",),
        "tax_id": ("登録番号", "法人番号"),
        "email": ("メール",),
        "phone": ("電話", "TEL"),
        "description": ("品目", "摘要", "内容"),
        "qty": ("数量",),
        "unit_price": ("単価",),
        "amount": ("金額",),
        "subtotal": ("小計",),
        "discount": ("値引き", "割引"),
        "tax": ("消費税",),
        "total": ("合計", "ご請求金額"),
        "thanks": ("ご利用ありがとうございます。",),
        "page": ("1 / 1",),
    },
}


def labels_for(locale: str, seed: int, *, can_draw=lambda text: True) -> dict[str, str]:
    """The page wording for `locale`, one variant per label chosen from `seed`.

    `can_draw(text)` says whether the page's font has the glyphs; a language the font can't
    draw (Japanese without a CJK font) falls back to English rather than printing tofu boxes.
    """
    language = get_locale(locale).language
    vocab = _LABELS[language]
    if not can_draw("".join(v for variants in vocab.values() for v in variants)):
        vocab = _LABELS["en"]
    rng = random.Random(f"labels:{seed}")
    return {key: rng.choice(variants) for key, variants in vocab.items()}
