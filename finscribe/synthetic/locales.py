"""Per-locale facts the invoice generator draws from: currency, tax regime, payment terms,
invoice-number patterns and short goods/services descriptions in the locale's language.

Data only; `finscribe.synthetic.generator` turns it into invoices. Tax rates are the real
statutory rates of each country (US: typical state + local sales-tax totals). Descriptions stay
under ~40 characters so that every layout can print them on one line.
"""

from __future__ import annotations

# Standard rate first and weighted highest: most real invoices carry the standard rate.
TAX_RATES: dict[str, tuple[tuple[str, int], ...]] = {
    "en_US": (("0", 3), ("4", 1), ("5.3", 1), ("6", 2), ("6.25", 2), ("7", 2), ("7.25", 2),
              ("8.25", 2), ("8.875", 2), ("9.5", 1), ("10.25", 1)),
    "en_GB": (("20", 8), ("5", 1), ("0", 1)),
    "de_DE": (("19", 8), ("7", 2)),
    "fr_FR": (("20", 7), ("10", 2), ("5.5", 1)),
    "es_ES": (("21", 7), ("10", 2), ("4", 1)),
    "ja_JP": (("10", 8), ("8", 2)),
    "it_IT": (("22", 7), ("10", 2), ("4", 1)),
    "nl_NL": (("21", 8), ("9", 2)),
}

DEFAULT_CURRENCY: dict[str, str] = {
    "en_US": "USD", "en_GB": "GBP", "de_DE": "EUR", "fr_FR": "EUR",
    "es_ES": "EUR", "ja_JP": "JPY", "it_IT": "EUR", "nl_NL": "EUR",
}

# (printed terms, days until due); days None = end of the following month.
PAYMENT_TERMS: dict[str, tuple[tuple[str, int | None], ...]] = {
    "en_US": (("Net 30", 30), ("Net 15", 15), ("Net 60", 60), ("Due on receipt", 0),
              ("2/10 Net 30", 30), ("Net 45", 45)),
    "en_GB": (("30 days", 30), ("Payment within 14 days", 14), ("Due on receipt", 0),
              ("Net 30", 30), ("60 days from invoice", 60)),
    "de_DE": (("14 Tage netto", 14), ("30 Tage netto", 30), ("Zahlbar sofort ohne Abzug", 0),
              ("Zahlbar innerhalb 10 Tagen", 10), ("Zahlung bis Monatsende", None)),
    "fr_FR": (("30 jours net", 30), ("Paiement à réception", 0), ("45 jours net", 45),
              ("60 jours date de facture", 60), ("Paiement fin de mois", None)),
    "es_ES": (("30 días", 30), ("Pago al contado", 0), ("60 días netos", 60),
              ("Pago a 15 días", 15), ("Transferencia a 30 días", 30)),
    "ja_JP": (("Net 30", 30), ("End of next month", None), ("Due on receipt", 0),
              ("Net 14", 14)),
    "it_IT": (("30 giorni data fattura", 30), ("Pagamento a vista", 0), ("60 gg d.f.", 60),
              ("Rimessa diretta", 0), ("Bonifico a 30 giorni", 30)),
    "nl_NL": (("Betaling binnen 30 dagen", 30), ("14 dagen netto", 14), ("Direct betalen", 0),
              ("Binnen 8 dagen", 8)),
}

# str.format patterns; {y} = year, {n} = sequence number.
INVOICE_NUMBERS: dict[str, tuple[str, ...]] = {
    "en_US": ("INV-{y}-{n:05d}", "#{n}", "{y}{n:04d}", "INV{n:06d}"),
    "en_GB": ("INV-{y}-{n:05d}", "SI-{n:06d}", "#{n}", "{y}/{n:04d}"),
    "de_DE": ("RE-{y}-{n:04d}", "RE{y}{n:05d}", "R-{n:06d}", "{y}-{n:04d}"),
    "fr_FR": ("FA{y}-{n:04d}", "F{y}{n:05d}", "FAC-{n:06d}", "{y}-{n:04d}"),
    "es_ES": ("F-{y}/{n:04d}", "FAC-{y}-{n:04d}", "{y}/{n:05d}", "A{n:06d}"),
    "ja_JP": ("INV-{y}{n:05d}", "No. {y}-{n:04d}", "{y}{n:06d}"),
    "it_IT": ("{n}/{y}", "FT-{y}-{n:04d}", "FPR {n}/{y}", "{y}/{n:05d}"),
    "nl_NL": ("F{y}-{n:04d}", "FACT-{y}-{n:04d}", "{y}{n:05d}", "#{n}"),
}

_EN_SERVICES = (
    "Consulting services", "Software development", "Project management", "UX design workshop",
    "Data migration", "Technical support", "Legal advisory", "Bookkeeping services",
    "Website maintenance", "Cloud infrastructure setup", "Security audit", "Staff training session",
    "Copywriting", "Photography", "Translation services", "Network installation",
)
_EN_GOODS = (
    "Office chair", "Laptop stand", "USB-C docking station", "A4 copy paper (box)",
    "Printer toner cartridge", "Wireless keyboard", "27-inch monitor", "Network switch 24-port",
    "Ergonomic mouse", "LED desk lamp", "Whiteboard markers (12 pack)", "External SSD 1 TB",
    "HDMI cable 2 m", "Coffee beans 1 kg", "Standing desk", "Filing cabinet", "Cat6 patch cable",
    "Webcam 1080p", "Headset with microphone", "Paper shredder",
)

# language -> (services billed by the hour, goods billed per unit)
DESCRIPTIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "en": (_EN_SERVICES, _EN_GOODS),
    "de": (
        ("Beratungsleistung", "Softwareentwicklung", "Projektmanagement", "Wartung Webseite",
         "Datenmigration", "Technischer Support", "Steuerberatung", "Buchhaltung",
         "Schulung Mitarbeiter", "Montagearbeiten", "Reinigung Büroräume", "Grafikdesign"),
        ("Bürostuhl", "Schreibtischlampe LED", "Kopierpapier A4 (Karton)", "Tonerkartusche schwarz",
         "Funktastatur", "Monitor 27 Zoll", "Netzwerkswitch 24 Port", "Dockingstation USB-C",
         "Aktenschrank", "Kaffeebohnen 1 kg", "Externe SSD 1 TB", "HDMI-Kabel 2 m",
         "Whiteboard 120x90 cm", "Headset mit Mikrofon", "Aktenvernichter"),
    ),
    "fr": (
        ("Prestation de conseil", "Développement logiciel", "Gestion de projet",
         "Maintenance du site web", "Migration de données", "Assistance technique",
         "Conseil juridique", "Tenue de comptabilité", "Formation du personnel",
         "Conception graphique", "Audit de sécurité", "Nettoyage des locaux"),
        ("Chaise de bureau", "Lampe de bureau LED", "Papier A4 (carton)", "Cartouche de toner noir",
         "Clavier sans fil", "Écran 27 pouces", "Commutateur réseau 24 ports",
         "Station d'accueil USB-C", "Armoire de classement", "Café en grains 1 kg",
         "SSD externe 1 To", "Câble HDMI 2 m", "Tableau blanc", "Casque avec micro",
         "Destructeur de documents"),
    ),
    "es": (
        ("Servicios de consultoría", "Desarrollo de software", "Gestión de proyectos",
         "Mantenimiento web", "Migración de datos", "Soporte técnico", "Asesoría fiscal",
         "Servicios de contabilidad", "Formación de personal", "Diseño gráfico",
         "Auditoría de seguridad", "Limpieza de oficinas"),
        ("Silla de oficina", "Lámpara de escritorio LED", "Papel A4 (caja)",
         "Cartucho de tóner negro", "Teclado inalámbrico", "Monitor de 27 pulgadas",
         "Switch de red 24 puertos", "Base de conexión USB-C", "Archivador metálico",
         "Café en grano 1 kg", "SSD externo 1 TB", "Cable HDMI 2 m", "Pizarra blanca",
         "Auriculares con micrófono", "Destructora de papel"),
    ),
    "it": (
        ("Consulenza", "Sviluppo software", "Gestione progetto", "Manutenzione sito web",
         "Migrazione dati", "Assistenza tecnica", "Consulenza legale", "Servizi di contabilità",
         "Formazione del personale", "Progettazione grafica", "Audit di sicurezza", "Pulizia uffici"),
        ("Sedia da ufficio", "Lampada da scrivania LED", "Carta A4 (scatola)", "Cartuccia toner nero",
         "Tastiera wireless", "Monitor 27 pollici", "Switch di rete 24 porte", "Docking station USB-C",
         "Armadio portadocumenti", "Caffè in grani 1 kg", "SSD esterno 1 TB", "Cavo HDMI 2 m",
         "Lavagna bianca", "Cuffie con microfono", "Distruggidocumenti"),
    ),
    "nl": (
        ("Advieswerkzaamheden", "Softwareontwikkeling", "Projectmanagement", "Onderhoud website",
         "Datamigratie", "Technische ondersteuning", "Juridisch advies", "Boekhouding",
         "Training medewerkers", "Grafisch ontwerp", "Beveiligingsaudit", "Schoonmaak kantoor"),
        ("Bureaustoel", "Bureaulamp LED", "Kopieerpapier A4 (doos)", "Tonercartridge zwart",
         "Draadloos toetsenbord", "Monitor 27 inch", "Netwerkswitch 24 poorten",
         "USB-C dockingstation", "Archiefkast", "Koffiebonen 1 kg", "Externe SSD 1 TB",
         "HDMI-kabel 2 m", "Whiteboard", "Headset met microfoon", "Papierversnipperaar"),
    ),
}
LANGUAGE: dict[str, str] = {
    "en_US": "en", "en_GB": "en", "de_DE": "de", "fr_FR": "fr",
    "es_ES": "es", "ja_JP": "en", "it_IT": "it", "nl_NL": "nl",
}

# Japanese invoices are written here in their English (romanised) form: the machine has no CJK
# font, and kanji rendered as empty boxes would teach the model to read boxes.
JA_WARDS: tuple[tuple[str, str, str], ...] = (
    ("Chiyoda-ku", "Tokyo", "100"), ("Minato-ku", "Tokyo", "105"), ("Shinjuku-ku", "Tokyo", "160"),
    ("Shibuya-ku", "Tokyo", "150"), ("Kita-ku", "Osaka", "530"), ("Chuo-ku", "Osaka", "541"),
    ("Naka-ku", "Yokohama", "231"), ("Nakamura-ku", "Nagoya", "450"), ("Chuo-ku", "Fukuoka", "810"),
    ("Chuo-ku", "Sapporo", "060"), ("Shimogyo-ku", "Kyoto", "600"), ("Aoba-ku", "Sendai", "980"),
)
JA_AREAS: tuple[str, ...] = (
    "Marunouchi", "Nishi-Shinjuku", "Shiba", "Umeda", "Honmachi", "Minatomirai", "Meieki",
    "Tenjin", "Kita-Sanjo", "Karasuma", "Ichibancho", "Dogenzaka", "Akasaka", "Toranomon",
)
JA_COMPANY_WORDS: tuple[str, ...] = (
    "Shoji", "Sangyo", "Denki", "Kogyo", "Trading", "Systems", "Design", "Seiki", "Logistics",
)
JA_COMPANY_SUFFIXES: tuple[str, ...] = ("Co., Ltd.", "K.K.", "Inc.", "Corporation")
