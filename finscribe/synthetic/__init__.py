"""Synthetic invoices with exact arithmetic (the seed's public API; no torch is imported here).

    from finscribe.synthetic import generate_invoice, render_invoice
    data = generate_invoice(num_items=5, currency="USD")
    image = render_invoice(data)          # a RenderedPage: .image, .boxes, .spans; .save("x.png")
    image.save("invoice.png")
"""

from finscribe.synthetic.generator import generate_invoice
from finscribe.synthetic.renderer import RenderedPage, render_invoice, render_pdf

__all__ = ["RenderedPage", "generate_invoice", "render_invoice", "render_pdf"]
