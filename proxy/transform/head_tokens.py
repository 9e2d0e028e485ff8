"""What the head locator reads: tokenizer states, the tag state table, and the
regexes that read a whole token (or a run of head tokens) at once.

`TAG_TABLE` is the tag tokenizer as data; `ATTRS` is the same tokenization as
one regex, used when a tag lies whole in the buffer (each branch starts with a
different byte, so the regex never backtracks into another reading).
"""

from __future__ import annotations

import re
from typing import Final

# Start tags that stay in the head (HTML5 "in head" insertion mode, scripting on).
HEAD_TAGS: Final = frozenset({
    b"html", b"head", b"base", b"basefont", b"bgsound", b"link", b"meta", b"title",
    b"noscript", b"noframes", b"style", b"script", b"template",
})
# End tags that close the head; other end tags are ignored before the body.
HEAD_ENDING_END_TAGS: Final = frozenset({b"head", b"body", b"html", b"br"})
# Elements whose content is text up to their own end tag.
RAW_TEXT: Final = frozenset({
    b"script", b"style", b"noscript", b"noframes", b"title", b"textarea",
    b"xmp", b"iframe", b"noembed",
})

# Tokenizer states.
DATA, RAW, COMMENT, BOGUS, PLAINTEXT = "data", "raw", "comment", "bogus", "plaintext"
TAG_NAME, BEFORE_ATTR_NAME, ATTR_NAME, AFTER_ATTR_NAME = "tag", "b-attr", "attr", "a-attr"
BEFORE_VALUE, VALUE_DQ, VALUE_SQ, VALUE_UNQ = "b-value", "value-dq", "value-sq", "value-unq"
AFTER_VALUE_QUOTED, SELF_CLOSING = "a-value", "self-closing"
EMIT = "emit"      # pseudo state: the tag is complete (its `>` consumed)

_WS = b"\t\n\f\r "
# state -> (run of bytes that stays in the state, {byte: (next state, consume?)},
#           default (next state, consume?) for any other byte)
_ws = {c: (BEFORE_ATTR_NAME, True) for c in _WS}
TAG_TABLE: Final[dict[str, tuple[re.Pattern[bytes], dict[int, tuple[str, bool]],
                                 tuple[str, bool]]]] = {
    TAG_NAME: (re.compile(rb"[^\t\n\f\r />]*"),
               {**_ws, ord("/"): (SELF_CLOSING, True), ord(">"): (EMIT, True)}, (TAG_NAME, True)),
    BEFORE_ATTR_NAME: (re.compile(rb"[\t\n\f\r ]*"),
                       {ord("/"): (SELF_CLOSING, True), ord(">"): (EMIT, True)}, (ATTR_NAME, True)),
    ATTR_NAME: (re.compile(rb"[^\t\n\f\r />=]*"),
                {**{c: (AFTER_ATTR_NAME, True) for c in _WS}, ord("/"): (SELF_CLOSING, True),
                 ord(">"): (EMIT, True), ord("="): (BEFORE_VALUE, True)}, (ATTR_NAME, True)),
    AFTER_ATTR_NAME: (re.compile(rb"[\t\n\f\r ]*"),
                      {ord("/"): (SELF_CLOSING, True), ord("="): (BEFORE_VALUE, True),
                       ord(">"): (EMIT, True)}, (ATTR_NAME, True)),
    BEFORE_VALUE: (re.compile(rb"[\t\n\f\r ]*"),
                   {ord('"'): (VALUE_DQ, True), ord("'"): (VALUE_SQ, True),
                    ord(">"): (EMIT, True)}, (VALUE_UNQ, True)),
    VALUE_DQ: (re.compile(rb'[^"]*'), {ord('"'): (AFTER_VALUE_QUOTED, True)}, (VALUE_DQ, True)),
    VALUE_SQ: (re.compile(rb"[^']*"), {ord("'"): (AFTER_VALUE_QUOTED, True)}, (VALUE_SQ, True)),
    VALUE_UNQ: (re.compile(rb"[^\t\n\f\r >]*"), {**_ws, ord(">"): (EMIT, True)}, (VALUE_UNQ, True)),
    AFTER_VALUE_QUOTED: (re.compile(rb""), {**_ws, ord("/"): (SELF_CLOSING, True),
                                            ord(">"): (EMIT, True)}, (BEFORE_ATTR_NAME, False)),
    SELF_CLOSING: (re.compile(rb""), {ord(">"): (EMIT, True)}, (BEFORE_ATTR_NAME, False)),
}
del _ws

# A complete tag from the state after its name to its `>`, as `TAG_TABLE` reads
# it: the same tokenization in one regex (each branch starts with a different
# byte, so it never backtracks into another reading). Only when it does not
# match (the tag is cut by the chunk boundary) is `TAG_TABLE` stepped through.
ATTRS: Final = (
    rb"(?:[\t\n\f\r ]++|/(?!>)|[^\t\n\f\r />][^\t\n\f\r />=]*+[\t\n\f\r ]*+"
    rb"""(?:=[\t\n\f\r ]*+(?:"[^"]*+"|'[^']*+'|[^\t\n\f\r >"'][^\t\n\f\r >]*+|(?=>))|(?!=)))*+"""
    rb"/?>")
TAG_END: Final = re.compile(ATTRS)
# Whitespace, then a whole start or end tag: group 1 is "/" for an end tag, 2 the name.
WHOLE_TAG: Final = re.compile(rb"[\t\n\f\r ]*+<(/?)([A-Za-z][^\t\n\f\r />]*+)" + ATTRS)
DELIM: Final = rb"(?=[\t\n\f\r />])"


def head_run(with_meta: bool) -> re.Pattern[bytes]:
    """Tokens that leave the head open and need no decision, skipped in one
    match: whitespace, comments, end tags that are ignored, head start tags
    (`<meta>` only when no hook wants to see it) and raw-text head elements
    with their content and end tag. It stops before anything else."""
    simple = rb"html|head|base|basefont|bgsound|link" + (rb"|meta" if with_meta else b"")
    raw = [rb"<(?i:%s)" % n + DELIM + ATTRS + rb"(?:[^<]++|<(?!/(?i:%s)[\t\n\f\r />]))*+" % n
           + rb"</(?i:%s)" % n + DELIM + ATTRS
           for n in (b"script", b"style", b"title", b"noscript", b"noframes")]
    return re.compile(rb"(?:" + rb"|".join([
        rb"[\t\n\f\r ]++",
        rb"<!--(?:>|->|(?s:.*?)--!?>)",
        rb"<(?i:" + simple + rb")" + DELIM + ATTRS,
        rb"</(?!(?i:head|body|html|br)" + DELIM + rb")[A-Za-z][^\t\n\f\r />]*+" + ATTRS,
        *raw]) + rb")*+")


HEAD_RUN: Final = head_run(with_meta=True)
HEAD_RUN_NO_META: Final = head_run(with_meta=False)
RAW_END: Final = {name: re.compile(b"</" + name + rb"[\t\n\f\r />]", re.IGNORECASE)
                   for name in RAW_TEXT}
TEXT_RUN: Final = re.compile(rb"[^<]*")
NON_WS: Final = re.compile(rb"[^\t\n\f\r ]")
COMMENT_END: Final = re.compile(rb"--!?>")
ASCII_ALPHA: Final = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
