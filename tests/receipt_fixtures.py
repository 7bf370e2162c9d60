"""Small SROIE- and CORD-shaped data sets, rendered from synthetic receipts, in each layout the
public copies are distributed in (issue 27: the importers must read them all).

Each receipt is drawn with PIL (a monospaced font, one text line per row); its word-box file holds
the real pixel box of every drawn line, and its key file the values as SROIE/CORD write them
(totals as "9.00", "RM9.00", "RM 9.00", "1,234.50", "9"; dates in several day-first forms)."""

from __future__ import annotations

import json
import random
from pathlib import Path

from matplotlib import font_manager
from PIL import Image, ImageDraw, ImageFont

FONT = ImageFont.truetype(font_manager.findfont("DejaVu Sans Mono"), 16)
COMPANIES = ["OJC MARKETING SDN BHD", "KEDAI PAPAN YEW CHUAN", "SYARIKAT PERNIAGAAN GIN KEE", "UNIHAKKA INTERNATIONAL SDN BHD",
             "MR D.I.Y. (M) SDN BHD", "99 SPEED MART S/B", "GARDENIA BAKERIES (KL) SDN BHD", "AEON CO. (M) BHD"]
STREETS = ["NO 2 & 4, JALAN BAYU 4", "LOT 276 JALAN BANTING", "NO 290, JALAN AIR PANAS", "12, JALAN TAMAN SRI",
           "LOT 1851-A & 1851-B, JALAN KPB 6"]
TOWNS = ["BANDAR SERI ALAM, 81750 MASAI, JOHOR", "43800 DENGKIL, SELANGOR.", "SETAPAK, 53200 KUALA LUMPUR",
         "47100 PUCHONG, SELANGOR"]
ITEMS = ["KOPI O", "ROTI CANAI", "MILO ICE", "NASI LEMAK", "PAPER A4 80G", "PEN BLUE", "CABLE TIE 8IN", "GLUE STICK"]
MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]


def _draw(lines: list[str], width: int = 520) -> tuple[Image.Image, list[tuple[tuple[int, int, int, int], str]]]:
    height = 40 + 26 * len(lines)
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    boxes = []
    for i, text in enumerate(lines):
        x, y = 20, 20 + 26 * i
        draw.text((x, y), text, fill="black", font=FONT)
        x0, y0, x1, y1 = draw.textbbox((x, y), text, font=FONT)
        boxes.append(((x0, y0, x1, y1), text))
    return image, boxes


def sroie_receipt(rng: random.Random) -> tuple[Image.Image, list, dict[str, str]]:
    """(image, [(box, text)], key) of one synthetic Malaysian receipt."""
    company, street, town = rng.choice(COMPANIES), rng.choice(STREETS), rng.choice(TOWNS)
    day, month, year = rng.randint(1, 28), rng.randint(1, 12), rng.randint(2016, 2019)
    date = rng.choice([f"{day:02d}/{month:02d}/{year}", f"{day:02d}-{month:02d}-{year}", f"{day:02d}/{month:02d}/{year % 100:02d}",
                       f"{day:02d} {MONTHS[month - 1]} {year}", f"{day:02d}.{month:02d}.{year}", f"{year}-{month:02d}-{day:02d}"])
    rows = [(rng.choice(ITEMS), rng.randint(1, 4), rng.randint(50, 120000) / 100) for _ in range(rng.randint(1, 6))]
    total = round(sum(q * p for _, q, p in rows), 2)
    printed = f"{total:,.2f}"
    lines = [company, f"(ROC NO: {rng.randint(100000, 999999)}-{rng.choice('ADHKTUVW')})", street + ",", town,
             f"TEL: 03-{rng.randint(1000, 9999)} {rng.randint(1000, 9999)}", f"INVOICE NO: CS{rng.randint(10000, 99999)}",
             f"DATE: {date}  {rng.randint(8, 21):02d}:{rng.randint(0, 59):02d}"]
    lines += [f"{name:<14}{q} X {p:>9.2f} {q * p:>10.2f}" for name, q, p in rows]
    lines += [f"TOTAL SALES (INCL GST) {printed:>12}", rng.choice([f"TOTAL: RM{printed}", f"TOTAL RM {printed}", f"TOTAL {printed}"]),
              f"CASH {total + rng.randint(0, 50):>12.2f}", "THANK YOU. PLEASE COME AGAIN."]
    key_total = rng.choices([printed, f"RM{printed}", f"RM {printed}", f"{total:.2f}", f"{total:.0f}" if total == int(total)
                             else printed], weights=[60, 10, 10, 15, 5])[0]
    key = {"company": company, "date": date, "address": f"{street}, {town}", "total": key_total}
    image, boxes = _draw(lines)
    return image, boxes, key


def _box_text(boxes, csv_file: bool) -> str:
    out = []
    for (x0, y0, x1, y1), text in boxes:
        coords = f"{x0},{y0},{x1},{y0},{x1},{y1},{x0},{y1}"
        out.append(f'{coords},"{text}"' if csv_file and "," in text else f"{coords},{text}")
    return "\n".join(out) + "\n"


SROIE_LAYOUTS = ("icdar_task_folders", "img_box_csv_key_json", "img_box_txt_entities_txt", "train_test_splits")


def write_sroie(root: Path, layout: str, count: int, seed: int = 0) -> list[str]:
    """`count` receipts under `root` in `layout` (SROIE_LAYOUTS); returns their ids."""
    rng = random.Random(seed)
    ids = []
    for i in range(count):
        stem = f"X{51005200000 + seed * 1000 + i}"
        image, boxes, key = sroie_receipt(rng)
        if layout == "icdar_task_folders":  # ICDAR's archives: scans beside box .txt (task 1) and key .txt (task 2)
            task1, task2 = root / "0325updated.task1train(626p)", root / "0325updated.task2train(626p)"
            files = {task1 / f"{stem}.jpg": image, task1 / f"{stem}.txt": _box_text(boxes, False),
                     task2 / f"{stem}.jpg": image, task2 / f"{stem}.txt": json.dumps(key, indent=4)}
        elif layout == "img_box_csv_key_json":  # the layout issue 27 saw import nothing
            files = {root / "img" / f"{stem}.jpg": image, root / "box" / f"{stem}.csv": _box_text(boxes, True),
                     root / "key" / f"{stem}.json": json.dumps(key)}
        elif layout == "img_box_txt_entities_txt":
            files = {root / "img" / f"{stem}.jpg": image, root / "box" / f"{stem}.txt": _box_text(boxes, False),
                     root / "entities" / f"{stem}.txt": json.dumps(key, indent=4)}
        elif layout == "train_test_splits":
            split = root / ("train" if i % 4 else "test")
            files = {split / "img" / f"{stem}.jpg": image, split / "box" / f"{stem}.txt": _box_text(boxes, False),
                     split / "entities" / f"{stem}.txt": json.dumps(key)}
        else:
            raise ValueError(layout)
        for path, content in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, str):
                path.write_text(content, encoding="utf-8")
            else:
                content.save(path, quality=90)
        ids.append(stem)
    return ids


def cord_receipt(rng: random.Random) -> tuple[Image.Image, dict]:
    """(image, CORD ground truth with gt_parse and valid_line quads) of one synthetic receipt (IDR)."""
    rows = [(rng.choice(ITEMS).title(), rng.randint(1, 3), rng.randint(5, 90) * 1000) for _ in range(rng.randint(1, 5))]
    subtotal = sum(q * p for _, q, p in rows)
    tax = subtotal // 10
    sep = rng.choice([",", "."])

    def money(value: int) -> str:
        return f"{value:,}".replace(",", sep)

    lines, categories = [], []
    for name, q, p in rows:
        lines += [name, f"{q} x {money(p)}  {money(q * p)}"]
        categories += ["menu.nm", "menu.price"]
    lines += [f"SUBTOTAL {money(subtotal)}", f"TAX {money(tax)}", f"TOTAL {money(subtotal + tax)}", f"CASH {money(subtotal + tax)}"]
    categories += ["sub_total.subtotal_price", "sub_total.tax_price", "total.total_price", "total.cashprice"]
    image, boxes = _draw(lines, width=400)
    valid_line = [{"category": cat, "words": [{"quad": {"x1": x0, "y1": y0, "x2": x1, "y2": y0, "x3": x1, "y3": y1,
                                                         "x4": x0, "y4": y1}, "text": text}]}
                  for ((x0, y0, x1, y1), text), cat in zip(boxes, categories)]
    menu = [{"nm": name, "cnt": str(q), "price": money(q * p)} for name, q, p in rows]
    gt = {"gt_parse": {"menu": menu if len(menu) > 1 else menu[0],
                       "sub_total": {"subtotal_price": money(subtotal), "tax_price": money(tax)},
                       "total": {"total_price": money(subtotal + tax), "cashprice": money(subtotal + tax)}},
          "valid_line": valid_line}
    return image, gt


CORD_LAYOUTS = ("release_splits", "json_beside_image", "hugging_face_rows")


def write_cord(root: Path, layout: str, count: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    for i in range(count):
        image, gt = cord_receipt(rng)
        if layout == "release_splits":  # CORD's archive: train/ dev/ test/, each json/ + image/, names repeat
            split = ["train", "dev", "test"][i % 3]
            stem = f"receipt_{i // 3:05d}"
            label, picture = root / split / "json" / f"{stem}.json", root / split / "image" / f"{stem}.png"
        elif layout == "json_beside_image":
            label, picture = root / f"receipt_{i:05d}.json", root / f"receipt_{i:05d}.jpg"
        elif layout == "hugging_face_rows":  # rows of the HF copy saved as files: ground_truth is a JSON string
            label, picture = root / "rows" / f"{i:05d}.json", root / "rows" / f"{i:05d}.png"
            gt = {"ground_truth": json.dumps(gt)}
        else:
            raise ValueError(layout)
        label.parent.mkdir(parents=True, exist_ok=True)
        picture.parent.mkdir(parents=True, exist_ok=True)
        label.write_text(json.dumps(gt), encoding="utf-8")
        image.save(picture)
