"""Schema-constrained decoding: the model can only emit a JSON object of its region's schema.

For every region of the data contract (and the whole "page") this module builds a JSON schema
from `finscribe.data.schema` and hands it to the grammar engine xgrammar (chosen by measurement,
`benchmarks/constrained_overhead.py`), which compiles it against the tokenizer into a token mask
per step. `predict(..., constrained=True)` adds one `RegionConstraint` logits processor per batch:

    from finscribe.inference import predict
    [pred] = predict(model, processor, ["crop.png"], "totals_section", constrained=True)

What the schema allows (DESIGN §3): only the region's known keys, in canonical order, each one
optional (the model may omit what it cannot read, never invent a key; `{}` says nothing was
readable), a line-item row or a region inside a page only with at least one field; amounts as canonical
decimal strings with exactly the currency's minor units; dates `YYYY-MM-DD` (valid calendar
dates, years 1900-2099); quantities and rates canonical decimals; text any JSON string;
`line_items` an array of rows (at most `MAX_LINE_ITEMS`), each a non-empty subset of the four
row fields. The currency comes *after* the amounts in canonical key order, so without a known
currency the object is an `anyOf` over minor-unit groups: amounts with 0 decimals paired with the
0-decimal currencies, 2 with 2, 3 with 3, and so on. The output is compact JSON (no whitespace),
as in the training targets, and EOS is allowed only once the object is complete.

**Whatever stops the generation, a constrained answer is a complete object of its schema.** Three
things can stop a row: EOS (the grammar allows it only on a complete object), the token cap and the
repetition guard. For the last two the answer is *closed through the grammar*, inside the budget:
`closing_tokens` finds, from the grammar's current state, a short sequence of single-character
tokens that completes the object (end the open string, complete a cut amount or date with zeros,
finish a cut key and give it the shortest value, close the containers), accepted token by token by
the grammar itself. `RegionConstraint` forces that sequence when the guard reports a loop (instead
of the guard cutting the row mid-string), and in the last `CLOSING_HORIZON` steps it lets the
model's chosen token through only if the object can still be closed in the tokens left after it.
Why this and not the alternatives the issue offered: not cutting inside a structure would let a
loop inside a text value run to the cap (text is unbounded, see MAX_LINE_ITEMS), and bounding
strings and arrays would make a closing fit only if the cap exceeds the longest bounded answer
(thousands of tokens for 50 rows) while xgrammar 0.2.9 drops escapes from length-bounded strings.
Closing through the grammar keeps the schema as it is, costs nothing until the last
`CLOSING_HORIZON` steps (a closing is ~1 us per grammar step to find), and needs only that the cap
holds the shortest valid answer (`{}`: `shortest_answer_tokens`), which `predict` checks before
generating. The closed answer keeps what the model wrote (a looped value stays looped, flagged
`repetition`): it is valid, not made right.
"""

from __future__ import annotations

import json
import time
import weakref
from collections import deque
from collections.abc import Sequence
from typing import Any

import torch
from transformers import LogitsProcessor

from finscribe.data.formatters import PAGE
from finscribe.data.schema import (
    CURRENCY_CODES,
    LINE_ITEM_FIELDS,
    REGION_FIELDS,
    REGIONS,
    field_type,
    get_currency,
)

# Most rows of a line-items table. Text values are not bounded by default: xgrammar 0.2.9 drops
# JSON escapes ("\\n" in an address) from a string with minLength/maxLength, which would make
# canonical labels unreachable; a model looping inside a string is stopped by the repetition guard.
MAX_LINE_ITEMS = 50
# Canonical numbers: no '+', no exponent, no leading zeros; at most 15 integer digits (beyond any
# invoice; a digit run cannot go on forever). "-0.00" stays allowed: format_money writes it.
_INTEGER = r"-?(0|[1-9][0-9]{0,14})"
DECIMAL_PATTERN = "^" + _INTEGER + r"(\.[0-9]{0,7}[1-9])?$"  # format_decimal: no trailing zeros
# Valid calendar dates 1900-2099 (Feb 29 only in leap years), so `date.fromisoformat` accepts them.
DATE_PATTERN = (
    r"^((19|20)[0-9]{2}-((0[13578]|1[02])-(0[1-9]|[12][0-9]|3[01])|(0[469]|11)-(0[1-9]|[12][0-9]|30)"
    r"|02-(0[1-9]|1[0-9]|2[0-8]))|(19(0[48]|[2468][048]|[13579][26])|20([02468][048]|[13579][26]))-02-29)$"
)


def amount_pattern(minor_units: int) -> str:
    """Regex of a canonical amount with exactly `minor_units` decimals ('1235', '1234.50', '1.500')."""
    return "^" + _INTEGER + (rf"\.[0-9]{{{minor_units}}}" if minor_units else "") + "$"


def currency_groups(currency: str | None = None) -> dict[int, list[str]]:
    """Currency codes grouped by minor units, {2: ['AUD', ...], 0: ['JPY', ...]}; only `currency`'s
    group (holding just it) when the caller knows the currency."""
    if currency is not None:
        return {get_currency(currency).minor_units: [currency]}
    groups: dict[int, list[str]] = {}
    for code in sorted(CURRENCY_CODES):
        groups.setdefault(get_currency(code).minor_units, []).append(code)
    return dict(sorted(groups.items()))


def _value_schema(name: str, minor_units: int, codes: list[str], max_text_length: int | None) -> dict[str, Any]:
    kind = field_type(name)
    if kind == "money":
        return {"type": "string", "pattern": amount_pattern(minor_units)}
    if kind == "decimal":
        return {"type": "string", "pattern": DECIMAL_PATTERN}
    if kind == "date":
        return {"type": "string", "pattern": DATE_PATTERN}
    if kind == "currency":
        return {"type": "string", "enum": codes}
    if max_text_length is None:
        return {"type": "string"}
    return {"type": "string", "minLength": 1, "maxLength": max_text_length}


def _object(properties: dict[str, Any], min_properties: int = 1) -> dict[str, Any]:
    # Every key optional; a nested object (row, region of a page) holds at least one.
    return {"type": "object", "properties": properties, "required": [], "minProperties": min_properties,
            "additionalProperties": False}


def _region_object(region: str, minor_units: int, codes: list[str], max_text_length: int | None,
                   max_line_items: int) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    for name in REGION_FIELDS[region]:
        if name == "line_items":
            row = _object({key: _value_schema(key, minor_units, codes, max_text_length) for key in LINE_ITEM_FIELDS})
            properties[name] = {"type": "array", "items": row, "maxItems": max_line_items}
        else:
            properties[name] = _value_schema(name, minor_units, codes, max_text_length)
    return _object(properties)


def region_schema(region: str, currency: str | None = None, *, max_text_length: int | None = None,
                  max_line_items: int = MAX_LINE_ITEMS) -> dict[str, Any]:
    """The JSON schema of one region's output (a schema region or "page"); every field optional,
    `{}` included (nothing readable), rows and a page's regions non-empty.

    `currency` (an ISO code) pins the amounts to its minor units and the currency field to it;
    without it the schema is an `anyOf` over the minor-unit groups of `currency_groups()`.
    `max_text_length` bounds text values (1..n characters); None leaves them free (see MAX_LINE_ITEMS).
    """
    if region != PAGE and region not in REGION_FIELDS:
        raise ValueError(f"unknown region {region!r}; expected one of {', '.join((*REGIONS, PAGE))}")
    top = {"minProperties": 0}  # the whole answer may be "{}": omitting everything beats inventing
    has_amounts = region == PAGE or any(field_type(f) == "money" or f == "line_items" for f in REGION_FIELDS[region])
    if currency is None and not has_amounts:  # nothing to pair a currency with: any known code
        return _region_object(region, 2, sorted(CURRENCY_CODES), max_text_length, max_line_items) | top
    branches = []
    for minor_units, codes in currency_groups(currency).items():
        regions = REGIONS if region == PAGE else (region,)
        objects = {r: _region_object(r, minor_units, codes, max_text_length, max_line_items) for r in regions}
        branches.append((_object(objects) if region == PAGE else objects[region]) | top)
    return branches[0] if len(branches) == 1 else {"anyOf": branches}


# ----------------------------------------------------------------------------- engine (xgrammar)
# Compilers per tokenizer object (building the token table walks the whole vocabulary: ~0.5 s for
# the real 103k one) and compiled grammars per (region, currency, bounds) inside each; weak keys so
# a dropped tokenizer frees its tables.
_COMPILERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _xgrammar() -> Any:
    try:
        import xgrammar
    except ImportError:
        raise ImportError("constrained decoding needs the xgrammar package: pip install 'xgrammar>=0.2.9'") from None
    return xgrammar


def _compiler(tokenizer: Any, vocab_size: int, eos_token_ids: tuple[int, ...]) -> tuple[Any, dict]:
    xgr = _xgrammar()
    per_tokenizer = _COMPILERS.setdefault(tokenizer, {})
    key = (vocab_size, eos_token_ids)
    if key not in per_tokenizer:
        info = xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab_size, stop_token_ids=list(eos_token_ids))
        per_tokenizer[key] = (xgr.GrammarCompiler(info, cache_enabled=False), {})
    return per_tokenizer[key]


def compiled_grammar(tokenizer: Any, region: str, *, vocab_size: int, eos_token_ids: Sequence[int],
                     currency: str | None = None, max_text_length: int | None = None,
                     max_line_items: int = MAX_LINE_ITEMS) -> Any:
    """The xgrammar `CompiledGrammar` of `region_schema(region, currency)` for this tokenizer, whose
    logits have `vocab_size` columns (the model's, which may exceed len(tokenizer)) and which stops on
    `eos_token_ids`. Cached per (tokenizer, vocab_size, eos, region, currency, bounds)."""
    compiler, cache = _compiler(tokenizer, int(vocab_size), tuple(sorted(int(t) for t in eos_token_ids)))
    key = (region, currency, max_text_length, max_line_items)
    if key not in cache:
        schema = region_schema(region, currency, max_text_length=max_text_length, max_line_items=max_line_items)
        # Compact separators, no free whitespace: the canonical form of the training targets, and a
        # weak model cannot spend its budget on spaces.
        cache[key] = compiler.compile_json_schema(json.dumps(schema), any_whitespace=False, separators=(",", ":"),
                                                  strict_mode=True)
    return cache[key]


# ----------------------------------------------------------------------------- closing a cut answer
# Bytes a closing may append, in the order tried. Inside a string: end it, else complete a pattern
# with the smallest characters (zeros for amounts and dates, letters for a key or a currency code,
# 0x80 for a cut multi-byte character). Outside: close a container first, then what a cut key or
# an opened value needs. Every grammar step is checked by the grammar, so the order only decides
# which valid closing is found (and how short it is), never whether it is valid.
_IN_STRING = b'"0123456789-.' + bytes(range(65, 91)) + bytes(range(97, 123)) + b"_\x80"
_OUTSIDE = b'}]:"{['
MAX_CLOSING = 96  # longest closing searched for (the schema's deepest cut needs ~40 characters)
_MAX_TRIES = 5000  # grammar steps one search may take (each ~1 us)
# The last steps of the budget in which every chosen token is checked against the closing it leaves.
CLOSING_HORIZON = 2 * MAX_CLOSING
# Per TokenizerInfo (unhashable: keyed by id, checked by a weak reference so a reused id misses).
_BYTE_TOKENS: dict[int, tuple[weakref.ref, dict[int, int]]] = {}


def _byte_tokens(tokenizer_info: Any) -> dict[int, int]:
    """{byte: id of a token that decodes to exactly that byte} for the closing alphabet."""
    cached = _BYTE_TOKENS.get(id(tokenizer_info))
    if cached is not None and cached[0]() is tokenizer_info:
        return cached[1]
    wanted = {bytes([b]) for b in _IN_STRING + _OUTSIDE}
    table: dict[int, int] = {}
    for token, text in enumerate(tokenizer_info.decoded_vocab):
        if text in wanted and text[0] not in table:
            table[text[0]] = token
    _BYTE_TOKENS[id(tokenizer_info)] = (weakref.ref(tokenizer_info), table)
    return table


def _lex(state: tuple[bool, bool], text: bytes) -> tuple[bool, bool]:
    """(inside a JSON string, after a backslash) once `text` follows `state`."""
    inside, escaped = state
    for byte in text:
        if escaped:
            escaped = False
        elif inside and byte == 0x5C:  # backslash
            escaped = True
        elif byte == 0x22:  # quote
            inside = not inside
    return inside, escaped


def closing_tokens(matcher: Any, tokenizer_info: Any, lex_state: tuple[bool, bool] = (False, False),
                   limit: int = MAX_CLOSING) -> list[int] | None:
    """Token ids that complete the object `matcher` (an xgrammar GrammarMatcher) has accepted so far,
    at most `limit` of them, each accepted by the grammar; [] when it is complete already, None
    when none was found. `lex_state` says whether the text so far ends inside a string. The matcher
    is left as it was (every step is rolled back)."""
    table = _byte_tokens(tokenizer_info)
    path: list[int] = []
    tries = 0

    def search(state: tuple[bool, bool]) -> bool:
        nonlocal tries
        if matcher.is_completed():
            return True
        if len(path) >= limit:
            return False
        for byte in _IN_STRING if state[0] else _OUTSIDE:
            token = table.get(byte)
            if token is None or tries >= _MAX_TRIES:
                continue
            tries += 1
            if not matcher.accept_token(token):
                continue
            path.append(token)
            if search(_lex(state, bytes([byte]))):
                return True
            path.pop()
            matcher.rollback(1)
        return False

    found = search(lex_state)
    if path:
        matcher.rollback(len(path))
    return list(path) if found else None


def shortest_answer_tokens(grammar: Any) -> list[int]:
    """The tokens of the shortest answer the closing finds from the start (`{}`): a token cap below
    its length cannot hold any valid answer."""
    matcher = _xgrammar().GrammarMatcher(grammar)
    tokens = closing_tokens(matcher, grammar.tokenizer_info)
    assert tokens is not None, "the grammar admits no closable answer"  # '{}' always is one
    return tokens


class RegionConstraint(LogitsProcessor):
    """Per-row grammar masks for one `generate` call: row i may only continue its own compiled
    grammar (rows of one batch can belong to different regions), EOS only once its object is
    complete. Touches only the logits, so it works with any model (INT8 included).

    With `max_new_tokens` it also keeps every row closable (module docstring): in the last
    `CLOSING_HORIZON` steps the greedy choice (the highest allowed logit) goes through only if the
    object can still be closed in the tokens left after it, otherwise the closing is forced; and a
    row the repetition guard hands over (`close(row)`) is closed at once. This relies on greedy
    decoding (the only mode `predict` combines with the grammar).

    A row whose last token its grammar rejects has stopped for another reason (EOS then padding):
    it is left unconstrained, as its tokens are discarded.
    """

    def __init__(self, grammars: Sequence[Any], prompt_length: int, max_new_tokens: int | None = None):
        self._xgr = xgr = _xgrammar()
        self.matchers = [xgr.GrammarMatcher(grammar) for grammar in grammars]  # rollback is unlimited (xgrammar 0.2)
        self.tokenizer_info = grammars[0].tokenizer_info
        self.vocab_size = self.tokenizer_info.vocab_size
        self.bitmask = xgr.allocate_token_bitmask(len(grammars), self.vocab_size)
        self.prompt_length = prompt_length
        self.max_new_tokens = max_new_tokens
        self.active = [True] * len(grammars)
        self.lex = [(False, False)] * len(grammars)
        self.forced: list[deque[int] | None] = [None] * len(grammars)  # a closing being written
        self.close_requested = [False] * len(grammars)
        self.closed = [False] * len(grammars)  # rows whose end was forced (guard or budget)
        self.seconds = 0.0  # time spent here (benchmarks read it)

    def close(self, row: int) -> bool:
        """Close `row` from the next step on (the repetition guard found it looping); False if the
        row has already ended."""
        if not self.active[row]:
            return False
        self.close_requested[row] = True
        return True

    def _closing(self, row: int, limit: int = MAX_CLOSING) -> deque[int]:
        # The search is depth-first, not shortest-first: the limit makes it find one that fits.
        tokens = closing_tokens(self.matchers[row], self.tokenizer_info, self.lex[row], limit=min(limit, MAX_CLOSING))
        self.closed[row] = True
        return deque(tokens or [])  # none found (not expected): the row goes on unforced

    def _choose(self, row: int, greedy: int, left: int) -> int | None:
        """The token `row` must take now, or None to leave the choice to the model (whose choice,
        the highest allowed logit, is `greedy`)."""
        if self.close_requested[row] and self.forced[row] is None:
            self.forced[row] = self._closing(row, limit=left)
        if self.forced[row] is None and self.max_new_tokens is not None and left <= CLOSING_HORIZON:
            token = greedy
            matcher = self.matchers[row]
            if matcher.accept_token(token):
                after = _lex(self.lex[row], self.tokenizer_info.decoded_vocab[token])
                rest = [] if matcher.is_terminated() else closing_tokens(matcher, self.tokenizer_info, after,
                                                                         limit=min(left - 1, MAX_CLOSING))
                matcher.rollback(1)
                if rest is None:  # the model's token would leave too few tokens to close: close now
                    self.forced[row] = self._closing(row, limit=left)
        if self.forced[row]:
            return self.forced[row].popleft()
        return None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        start = time.perf_counter()
        generated = input_ids.shape[1] - self.prompt_length
        if generated > 0:
            last = input_ids[:, -1].tolist()
            for row, matcher in enumerate(self.matchers):
                if self.active[row]:
                    # Inactive from here: rejected (padding after a stop) or just accepted the EOS.
                    self.active[row] = matcher.accept_token(last[row]) and not matcher.is_terminated()
                    self.lex[row] = _lex(self.lex[row], self.tokenizer_info.decoded_vocab[last[row]])
        for row, matcher in enumerate(self.matchers):
            if self.active[row]:
                matcher.fill_next_token_bitmask(self.bitmask, row)
            else:
                self.bitmask[row] = -1  # all allowed
        self._xgr.apply_token_bitmask_inplace(scores, self.bitmask.to(scores.device), vocab_size=self.vocab_size)
        left = 1 << 30 if self.max_new_tokens is None else self.max_new_tokens - generated
        # One device-to-host copy per step for the whole batch, and only near the end of the budget.
        greedy = scores.argmax(dim=-1).tolist() if left <= CLOSING_HORIZON else [-1] * len(self.matchers)
        for row in range(len(self.matchers)):
            if self.active[row]:
                token = self._choose(row, greedy[row], left)
                if token is not None:
                    scores[row] = float("-inf")
                    scores[row, token] = 0.0
        self.seconds += time.perf_counter() - start
        return scores
