"""Draw the fixture images of tests/data (receipt scans whose text sits where the box/quad files
say). Run once: `python tests/data/make_fixture_images.py`; the PNG/JPG files are committed."""

from pathlib import Path

from PIL import Image, ImageDraw

HERE = Path(__file__).parent


def receipt(path: Path, size: tuple[int, int], lines: list[tuple[int, int, str]]) -> None:
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    for x, y, text in lines:
        draw.text((x, y), text, fill="black")
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, quality=85) if path.suffix == ".jpg" else image.save(path)


def sroie() -> None:
    for name in ("X00016469612", "X51005255805"):
        box = HERE / "sroie" / "box" / f"{name}.txt"
        lines = []
        if box.is_file():
            for row in box.read_text().splitlines():
                parts = row.split(",", 8)
                lines.append((int(parts[0]), int(parts[1]), parts[8]))
        else:
            lines = [(40, 30, "KEDAI PAPAN YEW CHUAN"), (40, 60, "LOT 276 JALAN BANTING"), (40, 300, "TOTAL RM 9.00")]
        receipt(HERE / "sroie" / "img" / f"{name}.jpg", (480, 460), lines)


def cord() -> None:
    receipt(HERE / "cord" / "image" / "receipt_00000.png", (320, 420), [
        (20, 62, "Nasi Campur Bali"), (230, 62, "75,000"), (20, 92, "Es Teh Manis"), (230, 92, "16.000"),
        (20, 202, "SUBTOTAL"), (230, 202, "91,000"), (20, 262, "TOTAL"), (220, 262, "104,650")])


def label_studio() -> None:
    receipt(HERE / "label_studio" / "crops" / "inv_000007__totals_section.png", (240, 90),
            [(10, 10, "Subtotal 120.00"), (10, 35, "Tax 19% 22.80"), (10, 60, "Total EUR 142.80")])
    receipt(HERE / "label_studio" / "crops" / "inv_000007__vendor_block.png", (260, 80),
            [(10, 10, "Acme GmbH"), (10, 35, "Hauptstr. 1, 10115 Berlin")])


if __name__ == "__main__":
    sroie()
    cord()
    label_studio()
