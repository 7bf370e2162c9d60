"""Distractor blocks for composed pages: printed text that belongs to no region (bank details,
payment terms, notes, stamps), so that a detector learns that not every block of text on an
invoice is one of the five regions.

Their text is drawn outside every `Canvas.region`, so its spans carry region None; the composer
places them in their own slots, apart from the region blocks. The wording is drawn once per page
(`draw_distractors`) and the drawing (`text_block`, `stamp`) only lays it out, so the dry runs
and the real draw print the same words.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass

from PIL import Image, ImageDraw

from finscribe.synthetic.canvas import Canvas, Color, Page, text_width, wrap
from finscribe.synthetic.fonts import missing_glyphs

# Per language: headings and sentences. Japanese pages use the English wording (a Japanese
# invoice with romanised bank details is common, and it needs no CJK font).
_WORDS: dict[str, dict[str, tuple[str, ...]]] = {
    "en": {
        "bank": ("Bank details", "Payment details", "Remit to"),
        "bank_name": ("Bank", "Bank name"),
        "holder": ("Account holder", "Account name", "Beneficiary"),
        "account": ("IBAN", "Account no."),
        "swift": ("SWIFT/BIC", "BIC", "Sort code"),
        "reference": ("Payment reference", "Reference"),
        "terms": ("Terms & conditions", "Terms", "Conditions"),
        "terms_text": ("Goods remain our property until paid in full.",
                       "Late payments incur interest of 1.5% per month.",
                       "Please quote the invoice number with your payment.",
                       "Disputes must be raised within 14 days of receipt.",
                       "All prices are subject to the conditions of sale."),
        "notes": ("Notes", "Remarks", "Comments"),
        "notes_text": ("Thank you for choosing us.", "Delivery by courier, tracking sent by email.",
                       "Questions about this invoice? Contact our accounts team.",
                       "Project work completed as agreed.", "Returns accepted within 30 days with receipt."),
        "stamp": ("PAID", "COPY", "ORIGINAL", "RECEIVED", "APPROVED"),
        "banks": ("First National Bank", "Harbor Savings Bank", "Metro Credit Union", "Summit Bank"),
    },
    "de": {
        "bank": ("Bankverbindung", "Zahlungsinformationen"),
        "bank_name": ("Bank", "Kreditinstitut"),
        "holder": ("Kontoinhaber", "Empfänger"),
        "account": ("IBAN",),
        "swift": ("BIC",),
        "reference": ("Verwendungszweck",),
        "terms": ("Geschäftsbedingungen", "Hinweise"),
        "terms_text": ("Die Ware bleibt bis zur vollständigen Bezahlung unser Eigentum.",
                       "Es gelten unsere allgemeinen Geschäftsbedingungen.",
                       "Bitte geben Sie bei Zahlung die Rechnungsnummer an."),
        "notes": ("Bemerkungen", "Anmerkungen"),
        "notes_text": ("Vielen Dank für Ihre Bestellung.", "Lieferung erfolgt per Spedition.",
                       "Leistungszeitraum entspricht dem Rechnungsdatum."),
        "stamp": ("BEZAHLT", "KOPIE", "ORIGINAL", "GEPRÜFT"),
        "banks": ("Sparkasse Rhein", "Volksbank Mitte", "Stadtbank Nord"),
    },
    "fr": {
        "bank": ("Coordonnées bancaires", "Règlement"),
        "bank_name": ("Banque",),
        "holder": ("Titulaire", "Bénéficiaire"),
        "account": ("IBAN",),
        "swift": ("BIC",),
        "reference": ("Référence",),
        "terms": ("Conditions générales", "Conditions"),
        "terms_text": ("Pénalités de retard : trois fois le taux d'intérêt légal.",
                       "Pas d'escompte pour paiement anticipé.",
                       "Indemnité forfaitaire pour frais de recouvrement : 40 EUR."),
        "notes": ("Remarques", "Notes"),
        "notes_text": ("Merci de votre confiance.", "Livraison par transporteur.",
                       "Prestation réalisée conformément au devis."),
        "stamp": ("PAYÉ", "COPIE", "ORIGINAL", "REÇU"),
        "banks": ("Banque du Centre", "Crédit Régional", "Banque Atlantique"),
    },
    "es": {
        "bank": ("Datos bancarios", "Forma de pago"),
        "bank_name": ("Banco",),
        "holder": ("Titular", "Beneficiario"),
        "account": ("IBAN", "Cuenta"),
        "swift": ("BIC", "SWIFT"),
        "reference": ("Referencia", "Concepto"),
        "terms": ("Condiciones", "Condiciones de venta"),
        "terms_text": ("La mercancía viaja por cuenta y riesgo del comprador.",
                       "Indique el número de factura en la transferencia.",
                       "Reclamaciones en un plazo de 15 días."),
        "notes": ("Observaciones", "Notas"),
        "notes_text": ("Gracias por su confianza.", "Entrega a domicilio incluida.",
                       "Servicio prestado según presupuesto."),
        "stamp": ("PAGADO", "COPIA", "ORIGINAL", "RECIBIDO"),
        "banks": ("Banco del Sur", "Caja Mediterránea", "Banco Central"),
    },
    "it": {
        "bank": ("Coordinate bancarie", "Modalità di pagamento"),
        "bank_name": ("Banca",),
        "holder": ("Intestatario", "Beneficiario"),
        "account": ("IBAN",),
        "swift": ("BIC", "SWIFT"),
        "reference": ("Causale",),
        "terms": ("Condizioni", "Condizioni di vendita"),
        "terms_text": ("La merce viaggia a rischio del committente.",
                       "Indicare il numero di fattura nella causale.",
                       "Reclami entro 8 giorni dal ricevimento."),
        "notes": ("Note", "Annotazioni"),
        "notes_text": ("Grazie per la fiducia.", "Consegna tramite corriere.",
                       "Operazione soggetta a IVA ordinaria."),
        "stamp": ("PAGATO", "COPIA", "ORIGINALE", "RICEVUTO"),
        "banks": ("Banca Popolare", "Cassa di Risparmio", "Banca del Nord"),
    },
    "nl": {
        "bank": ("Bankgegevens", "Betaalgegevens"),
        "bank_name": ("Bank",),
        "holder": ("Ten name van", "Begunstigde"),
        "account": ("IBAN", "Rekeningnummer"),
        "swift": ("BIC",),
        "reference": ("Kenmerk", "Omschrijving"),
        "terms": ("Voorwaarden", "Leveringsvoorwaarden"),
        "terms_text": ("Op al onze leveringen zijn onze algemene voorwaarden van toepassing.",
                       "Vermeld bij betaling het factuurnummer.",
                       "Klachten binnen 8 dagen na ontvangst melden."),
        "notes": ("Opmerkingen", "Notities"),
        "notes_text": ("Bedankt voor uw bestelling.", "Levering via koerier.",
                       "Werkzaamheden uitgevoerd volgens offerte."),
        "stamp": ("BETAALD", "KOPIE", "ORIGINEEL", "ONTVANGEN"),
        "banks": ("Noorder Bank", "Stadsbank", "Handelsbank"),
    },
}
KINDS = ("bank", "terms", "notes", "stamp")
STAMP_COLOURS: tuple[Color, ...] = ((190, 30, 40), (30, 70, 170), (20, 120, 60), (120, 120, 130))


@dataclass(frozen=True)
class TextBlock:
    """A heading and lines (a bank-details table, terms, notes), drawn in small muted type."""

    kind: str
    heading: str
    lines: tuple[str, ...]


@dataclass(frozen=True)
class Stamp:
    """A rubber stamp: a word in a frame, rotated, in one ink colour."""

    word: str
    angle: float
    colour: Color


def _words(p: Page) -> dict[str, tuple[str, ...]]:
    words = _WORDS.get(p.language, _WORDS["en"])
    every = "".join(v for variants in words.values() for v in variants)
    return words if not missing_glyphs(p.family, every) else _WORDS["en"]


def _iban(rng: random.Random, country: str) -> str:
    digits = "".join(rng.choice(string.digits) for _ in range(18))
    return f"{country}{rng.randint(10, 99)} " + " ".join(digits[k:k + 4] for k in range(0, 18, 4))


def draw_distractor(rng: random.Random, p: Page, kind: str) -> TextBlock | Stamp:
    """The wording of one distractor of `kind` (one of KINDS), from `rng`."""
    words = _words(p)
    pick = rng.choice
    if kind == "stamp":
        return Stamp(pick(words["stamp"]), rng.uniform(-18, 18), pick(STAMP_COLOURS))
    if kind == "bank":
        country = (p.inv.locale.split("_")[-1] if "_" in p.inv.locale else "GB").upper()
        bic = "".join(rng.choice(string.ascii_uppercase) for _ in range(6)) + f"{rng.randint(10, 99)}"
        rows = [(pick(words["holder"]), p.inv.vendor.name), (pick(words["bank_name"]), pick(words["banks"])),
                (pick(words["account"]), _iban(rng, country)), (pick(words["swift"]), bic)]
        if rng.random() < 0.5:
            rows.append((pick(words["reference"]), p.inv.invoice_number))
        return TextBlock("bank", pick(words["bank"]), tuple(f"{k}: {v}" for k, v in rows))
    sentences = list(words[f"{kind}_text"])
    rng.shuffle(sentences)
    return TextBlock(kind, pick(words[kind]), tuple(sentences[: rng.randint(1, min(3, len(sentences)))]))


def text_block(c: Canvas, p: Page, block: TextBlock, x: float, y: float, width: float, *,
               align: str = "left", color: Color | None = None) -> float:
    """Draw a distractor text block (no region) inside [x, x + width]; returns its bottom."""
    head, font = p.font(0.85, bold=True), p.font(0.78)
    anchor = {"left": x, "right": x + width, "center": x + width / 2}[align]
    for text, f, fill in [(block.heading, head, color or p.ink)] + [(line, font, color or p.muted)
                                                                   for line in block.lines]:
        for line in wrap(text, f, width):
            c.text(anchor, y, line, f, fill, align)
            y += p.line_h(f)
        if f is head:
            y += p.px(0.5)
    return y


def stamp_mask(p: Page, stamp: Stamp) -> Image.Image:
    """The stamp (frame and word) as an 'L' mask, rotated by its angle."""
    font = p.font(1.5, bold=True)
    left, top, right, bottom = font.getbbox(stamp.word)
    pad, line = p.px(2), max(2, p.px(0.6))
    w, h = right - left + 2 * pad, bottom - top + 2 * pad
    mask = Image.new("L", (w + 2 * line, h + 2 * line), 0)
    draw = ImageDraw.Draw(mask)
    draw.rounded_rectangle((line // 2, line // 2, w + line, h + line), radius=p.px(1.5), outline=210, width=line)
    draw.text((line + pad - left, line + pad - top), stamp.word, font=font, fill=210)
    return mask.rotate(stamp.angle, resample=Image.Resampling.BICUBIC, expand=True)


def stamp(c: Canvas, p: Page, s: Stamp, x: float, y: float, width: float) -> float:
    """Draw the stamp centred in [x, x + width] from y; returns its bottom."""
    mask = stamp_mask(p, s)
    left = x + max(0.0, (width - mask.width) / 2)
    c.paste(left, y, mask, s.colour, text=s.word)
    return y + mask.height


def stamp_size(p: Page, s: Stamp) -> tuple[int, int]:
    mask = stamp_mask(p, s)
    return mask.width, mask.height


def natural_width(p: Page, block: TextBlock) -> int:
    """Width of the block's longest line unwrapped (to size a column to its content)."""
    head, font = p.font(0.85, bold=True), p.font(0.78)
    return max([text_width(head, block.heading)] + [text_width(font, line) for line in block.lines])
