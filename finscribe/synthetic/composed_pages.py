"""The composed page families on A4/Letter: `composed_stack` (blocks in rows, in any order),
`composed_columns` (a sidebar on either side holding some of the blocks) and `composed_banner`
(a full-width colour band, boxed client/meta, a tinted band of bank details and terms).

Each family is a plan, drawn once per page from the page's seed (`plan_*`), and a draw function
(`draw_*`) that lays the plan out top-down; the composer calls the draw function more than once
(dry runs to fit the table, then for real), so all randomness lives in the plan.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import finscribe.synthetic.compose_parts as parts
from finscribe.synthetic.canvas import WHITE, Canvas, Page
from finscribe.synthetic.compose_parts import Slot, Style, row, split
from finscribe.synthetic.decor import Logo, band, draw_logo, logo_size
from finscribe.synthetic.distractors import KINDS, Stamp, TextBlock, draw_distractor

Item = TextBlock | Stamp
BLOCKS = ("vendor", "client", "meta")


@dataclass(frozen=True)
class Common:
    """Choices every page family makes: spacing, table and totals styles, logo, distractors."""

    style: Style
    table_style: str
    totals_style: str
    totals_align: str
    totals_width: int
    logo: Logo | None
    title_scale: float
    distractors: tuple[Item, ...]
    footer: bool
    top: int  # extra space above the first block (room a letterhead would take), pixels


def draw_common(rng: random.Random, p: Page, *, logo_p: float = 0.6, max_distractors: int = 3) -> Common:
    gap = max(parts.min_gap(p), p.px(rng.uniform(4, 10)))
    style = Style(gap, max(parts.min_gap(p), p.px(rng.uniform(5, 12))))
    totals_style = rng.choice(parts.TOTALS_STYLES)
    cw = p.width - 2 * p.margin
    kinds = rng.sample(KINDS, rng.randint(0, max_distractors))
    return Common(
        style=style,
        table_style=rng.choice(parts.TABLE_STYLES),
        totals_style=totals_style,
        totals_align=rng.choice(("right", "right", "right", "left")),
        totals_width=parts.totals_size(p, totals_style, cw * rng.uniform(0.38, 0.55)),
        logo=draw_logo(rng, p) if rng.random() < logo_p else None,
        title_scale=rng.uniform(1.5, 2.6),
        distractors=tuple(draw_distractor(rng, p, kind) for kind in kinds),
        footer=rng.random() < 0.6,
        top=p.px(rng.uniform(5, 35)) if rng.random() < 0.25 else 0,
    )


def _block(p: Page, name: str, align: str, meta_mode: str, *, vendor_scale: float = 1.25) -> Slot:
    if name == "vendor":
        return parts.vendor(p, align=align, scale=vendor_scale)
    if name == "client":
        return parts.client(p, align=align)
    return parts.meta(p, meta_mode, side=align)


def _totals_row(c: Canvas, p: Page, y: float, x: float, width: float, common: Common,
                beside: Item | None) -> float:
    """The totals block at its side, a distractor in the room left on the other side."""
    tw = min(common.totals_width, width)
    totals = parts.totals(p, common.totals_style, tw, "left")
    rest = width - tw - common.style.col_gap
    on_right = common.totals_align == "right"
    slots = [(x + width - tw if on_right else x, tw, totals)]
    if beside is not None and rest >= parts.slot_width(p, beside) * (1 if isinstance(beside, Stamp) else 0.5):
        slots.append((x if on_right else x + tw + common.style.col_gap, rest, parts.distractor(p, beside)))
    return row(c, y, slots)


def _fits_beside(p: Page, item: Item, room: float) -> bool:
    return room >= parts.slot_width(p, item) * (1 if isinstance(item, Stamp) else 0.5)


def _distractor_row(c: Canvas, p: Page, y: float, x: float, width: float, items: tuple[Item, ...],
                    col_gap: int) -> float:
    """Distractors side by side in equal columns (a stamp that does not fit its column is left out)."""
    columns = split(x, width, [1.0] * len(items), col_gap)
    slots = [(cx, cw, parts.distractor(p, item)) for (cx, cw), item in zip(columns, items)
             if not isinstance(item, Stamp) or parts.slot_width(p, item) <= cw]
    return row(c, y, slots) if slots else y


# ----------------------------------------------------------------------------- composed_stack


@dataclass(frozen=True)
class StackPlan:
    common: Common
    header: str  # "none", "rule", "bar" (thin accent bar at the top edge), "band" (title on colour)
    bar_mm: float
    title_align: str
    logo_align: str
    groups: tuple[tuple[str, ...], ...]  # region blocks row by row, e.g. (("vendor", "meta"), ("client",))
    fractions: tuple[tuple[float, ...], ...]
    aligns: tuple[tuple[str, ...], ...]
    meta_mode: str
    above_table: Item | None
    beside_totals: Item | None
    below: tuple[Item, ...]


def plan_stack(rng: random.Random, p: Page) -> StackPlan:
    common = draw_common(rng, p)
    order = rng.sample(BLOCKS, 3)
    sizes = rng.choice(((1, 1, 1), (2, 1), (1, 2), (2, 1), (1, 2), (3,)))
    groups, k = [], 0
    for n in sizes:
        groups.append(tuple(order[k:k + n]))
        k += n
    fractions = tuple(tuple(rng.uniform(0.8, 1.25) for _ in g) for g in groups)
    aligns = tuple(tuple("right" if (j == len(g) - 1 and len(g) > 1 and rng.random() < 0.5)
                         or (len(g) == 1 and rng.random() < 0.2) else "left" for j in range(len(g)))
                   for g in groups)
    lonely_meta = any(g == ("meta",) for g in groups)
    meta_mode = rng.choice(("aligned", "right", "panel", "strip", "strip_boxed") if lonely_meta
                           else ("aligned", "right", "panel"))
    items = list(common.distractors)
    above = items.pop() if items and isinstance(items[-1], TextBlock) and rng.random() < 0.3 else None
    beside = items.pop(0) if items and rng.random() < 0.6 else None
    return StackPlan(common, rng.choice(("none", "none", "rule", "bar", "band")), rng.uniform(2, 7),
                     rng.choice(("left", "right", "center")), rng.choice(("left", "right")),
                     tuple(groups), fractions, aligns, meta_mode, above, beside, tuple(items))


def _title_row(p: Page, x: float, width: float, plan_logo: Logo | None, scale: float, title_align: str,
               logo_align: str, col_gap: int, *, white: bool = False) -> list[tuple[float, float, Slot]]:
    colour = WHITE if white else None
    title = parts.title(p, scale=scale, align=title_align, colour=colour)
    if plan_logo is None:
        return [(x, width, title)]
    lw = logo_size(p, plan_logo)[0]
    letters = {"letters": p.accent} if white else {}
    logo_slot = parts.logo_slot(p, plan_logo, "left", colour, **letters)
    if logo_align == "left":
        return [(x, lw, logo_slot), (x + lw + col_gap, width - lw - col_gap, title)]
    return [(x, width - lw - col_gap, title), (x + width - lw, lw, logo_slot)]


def draw_stack(c: Canvas, p: Page, plan: StackPlan) -> None:
    m, cw, common = p.margin, p.width - 2 * p.margin, plan.common
    gap, col_gap = common.style.gap, common.style.col_gap
    y = m + common.top
    if plan.header == "bar":
        band(c, 0, p.px(plan.bar_mm), p.width, p.accent)
        y = max(y, p.px(plan.bar_mm) + gap)
    white = plan.header == "band"
    head = _title_row(p, m, cw, common.logo, common.title_scale, plan.title_align, plan.logo_align, col_gap, white=white)
    if white:
        top = round(m * 0.6) + common.top
        bottom = row(Canvas(None), top, head) + p.px(4)
        band(c, 0, bottom, p.width, p.accent)
        row(c, top, head)
        y = bottom + gap
    else:
        y = row(c, y, head)
        if plan.header == "rule":
            c.hline(m, p.width - m, y + gap // 2, p.accent, width=max(1, p.px(0.5)))
        y += gap
    for group, fractions, aligns in zip(plan.groups, plan.fractions, plan.aligns):
        columns = split(m, cw, list(fractions), col_gap)
        slots = [(x, w, _block(p, name, align, plan.meta_mode)) for (x, w), name, align in zip(columns, group, aligns)]
        y = row(c, y, slots) + gap
    if plan.above_table is not None:
        y = parts.distractor(p, plan.above_table)(c, m, y, cw) + gap
    y = parts.table(p, common.table_style)(c, m, y, cw) + gap
    y = _totals_row(c, p, y, m, cw, common, plan.beside_totals) + gap
    if plan.below:
        _distractor_row(c, p, y, m, cw, plan.below, col_gap)


# ----------------------------------------------------------------------------- composed_columns


@dataclass(frozen=True)
class ColumnsPlan:
    common: Common
    side: str  # the sidebar's side: "left" or "right"
    fraction: float  # sidebar width / page width
    backdrop: str  # "tint", "rule" or "none"
    sidebar: tuple[str, ...]  # region blocks in the sidebar, top-down
    main: tuple[str, ...]  # region blocks in the main column above the table
    main_pair: bool  # two main blocks side by side
    logo_in_sidebar: bool
    title_align: str
    sidebar_meta: str
    main_meta: str
    sidebar_extra: Item | None
    beside_totals: Item | None
    below: tuple[Item, ...]


def plan_columns(rng: random.Random, p: Page) -> ColumnsPlan:
    common = draw_common(rng, p)
    order = rng.sample(BLOCKS, 3)
    k = rng.choice((1, 2, 2, 3))
    items = list(common.distractors)
    texts = [i for i in items if isinstance(i, TextBlock)]
    extra = texts[0] if texts and rng.random() < 0.5 else None
    if extra is not None:
        items.remove(extra)
    beside = items.pop(0) if items and rng.random() < 0.5 else None
    return ColumnsPlan(common, rng.choice(("left", "right")), rng.uniform(0.28, 0.38),
                       rng.choice(("tint", "tint", "rule", "none")), tuple(order[:k]), tuple(order[k:]),
                       rng.random() < 0.5, rng.random() < 0.5, rng.choice(("left", "right")),
                       rng.choice(("stacked", "stacked", "right")), rng.choice(("aligned", "right", "panel")),
                       extra, beside, tuple(items))


def draw_columns(c: Canvas, p: Page, plan: ColumnsPlan) -> None:
    m, common = p.margin, plan.common
    gap, col_gap = common.style.gap, common.style.col_gap
    side_w = round(p.width * plan.fraction)
    edge = round(m * 0.7) if plan.backdrop == "tint" else m  # sidebar text to page edge
    inner = p.px(4)  # sidebar text to the sidebar's inner edge
    if plan.side == "left":
        sx, sw = edge, side_w - inner - edge
        mx, mw = side_w + col_gap, p.width - m - side_w - col_gap
        boundary = side_w
    else:
        sx, sw = p.width - side_w + inner, side_w - inner - edge
        mx, mw = m, p.width - m - side_w - col_gap
        boundary = p.width - side_w
    if plan.backdrop == "tint":
        c.rect((0, 0, side_w, p.height) if plan.side == "left" else (boundary, 0, p.width, p.height),
               fill=p.tint, track=False)
    elif plan.backdrop == "rule":
        c.rect((boundary, m, boundary, p.height - m), fill=p.muted, track=False)

    y = m
    if plan.logo_in_sidebar and common.logo is not None:
        y = parts.logo_slot(p, common.logo)(c, sx, y, sw) + gap
    for name in plan.sidebar:
        y = _block(p, name, "left", plan.sidebar_meta, vendor_scale=1.1)(c, sx, y, sw) + gap
    if plan.sidebar_extra is not None:
        parts.distractor(p, plan.sidebar_extra)(c, sx, y, sw)

    logo = None if plan.logo_in_sidebar else common.logo
    head = _title_row(p, mx, mw, logo, common.title_scale, plan.title_align,
                      "right" if plan.title_align == "left" else "left", col_gap)
    y = row(c, m + common.top, head) + gap
    if plan.main_pair and len(plan.main) == 2:
        columns = split(mx, mw, [1.0, 1.0], col_gap)
        slots = [(x, w, _block(p, name, align, plan.main_meta))
                 for (x, w), name, align in zip(columns, plan.main, ("left", "right"))]
        y = row(c, y, slots) + gap
    else:
        for name in plan.main:
            y = _block(p, name, "left", plan.main_meta)(c, mx, y, mw) + gap
    y = parts.table(p, common.table_style)(c, mx, y, mw) + gap
    y = _totals_row(c, p, y, mx, mw, common, plan.beside_totals) + gap
    if plan.below:
        _distractor_row(c, p, y, mx, mw, plan.below, col_gap)


# ----------------------------------------------------------------------------- composed_banner


@dataclass(frozen=True)
class BannerPlan:
    common: Common
    vendor_in_band: bool
    dark_band: bool
    arrangement: str  # "boxes" (framed client and meta), "plain" or "strip" (meta as a strip of cells)
    client_first: bool
    band_items: tuple[Item, ...]  # distractors in the tinted band after the totals


def plan_banner(rng: random.Random, p: Page) -> BannerPlan:
    common = draw_common(rng, p, logo_p=0.8)
    texts = tuple(i for i in common.distractors if isinstance(i, TextBlock))
    return BannerPlan(common, rng.random() < 0.6, rng.random() < 0.3, rng.choice(("boxes", "plain", "strip")),
                      rng.random() < 0.7, texts)


def _framed(c: Canvas, p: Page, region: str, slot: Slot, x: float, y: float, w: float) -> float:
    """The block inside an outline frame that is part of its region (as boxed_table draws it)."""
    inner = p.px(2.5)
    bottom = slot(c, x + inner, y + inner, w - 2 * inner) + inner
    with c.region(region):
        c.rect((x, y, x + w, bottom), outline=p.muted)
    return bottom


def draw_banner(c: Canvas, p: Page, plan: BannerPlan) -> None:
    m, cw, common = p.margin, p.width - 2 * p.margin, plan.common
    gap, col_gap = common.style.gap, common.style.col_gap
    colour = p.ink if plan.dark_band else p.accent
    top = round(m * 0.6)
    x, width, head = m, cw, []
    if common.logo is not None:
        lw = logo_size(p, common.logo)[0]
        head.append((x, lw, parts.logo_slot(p, common.logo, "left", WHITE, colour)))
        x, width = x + lw + col_gap, width - lw - col_gap
    if plan.vendor_in_band:
        tw = min(parts.title_width(p, common.title_scale), round(width * 0.45))
        head += [(x, width - tw - col_gap, parts.vendor(p, colour=WHITE, scale=1.3)),
                 (x + width - tw, tw, parts.title(p, scale=common.title_scale, align="right", colour=WHITE))]
    else:
        head.append((x, width, parts.title(p, scale=common.title_scale, align="right", colour=WHITE)))
    bottom = row(Canvas(None), top, head) + p.px(5)
    band(c, 0, bottom, p.width, colour)
    row(c, top, head)
    y = bottom + gap

    names = [] if plan.vendor_in_band else ["vendor"]
    names += ["client", "meta"] if plan.client_first else ["meta", "client"]
    if plan.arrangement == "strip":
        y = parts.meta(p, "strip_boxed")(c, m, y, cw) + gap
        names.remove("meta")
    columns = split(m, cw, [1.0] * len(names), col_gap)
    slots = []
    for (cx, cwid), name in zip(columns, names):
        slot = _block(p, name, "left", "right")
        if plan.arrangement == "boxes" and name != "vendor":
            region = "client_info" if name == "client" else "invoice_meta"
            slots.append((cx, cwid, lambda c_, x_, y_, w_, s=slot, r=region: _framed(c_, p, r, s, x_, y_, w_)))
        else:
            slots.append((cx, cwid, slot))
    y = row(c, y, slots) + gap
    y = parts.table(p, common.table_style)(c, m, y, cw) + gap
    stamps = [i for i in common.distractors if isinstance(i, Stamp)]
    y = _totals_row(c, p, y, m, cw, common, stamps[0] if stamps else None) + gap
    if plan.band_items:
        probe = Canvas(None)
        end = _distractor_row(probe, p, y + p.px(3), m, cw, plan.band_items, col_gap) + p.px(3)
        band(c, y - p.px(1), end, p.width, p.tint)
        _distractor_row(c, p, y + p.px(3), m, cw, plan.band_items, col_gap)
