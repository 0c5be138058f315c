"""Alertmanager 0.25's ``title``: x/text's ``cases.Title(language.AmericanEnglish)``.

x/text walks the runes once. A cased rune is title-cased (full mapping: 'ß' -> 'Ss',
'ﬁ' -> 'Fi') when no word is under way, which starts one, and lower-cased (full
mapping, with a final capital sigma as 'ς') inside a word. An uncased rune is copied
as it is; it ends the word when its Unicode word-break class (UAX #29) is not a
letter-like one (ALetter, Hebrew_Letter, Numeric, ExtendNumLet, Extend, Format, ZWJ)
or a "mid" one (MidLetter, MidNumLet, Single_Quote), and two mids in a row end it too.
So ``foo.bar_baz`` is one word and ``1st`` becomes ``1St``.

Python has no word-break property, so :func:`_breaks` derives it from the general
category and the character name, and treats the blocks Unicode 14 added as unknown,
as x/text's Unicode 13 tables do. Checked against amtool over every code point at the
start of a word and inside one; as a word separator, about 200 rare runes (mostly
Unicode 14 additions to old blocks) still differ.

Pure.
"""

from __future__ import annotations

import functools
import unicodedata

# Case pairs Unicode 14 added, which Go 1.19's tables do not have.
UNICODE_14_CASED = frozenset(
    {
        0x2C2F,
        0x2C5F,
        0xA7C0,
        0xA7C1,
        0xA7D0,
        0xA7D1,
        *range(0xA7D6, 0xA7DA),
        *range(0x10570, 0x105BD),
    }
)
_UNICODE_14_BLOCKS = (
    (0x0870, 0x089F),
    (0x10570, 0x105BF),
    (0x10780, 0x107BF),
    (0x10F70, 0x10FAF),
    (0x11AB0, 0x11ABF),
    (0x12F90, 0x12FFF),
    (0x16A70, 0x16ACF),
    (0x1AFF0, 0x1AFFF),
    (0x1CF00, 0x1CFCF),
    (0x1DF00, 0x1DFFF),
    (0x1E290, 0x1E2BF),
    (0x1E7E0, 0x1E7FF),
)
# MidLetter, MidNumLet and Single_Quote.
_MID = frozenset(
    ":\u00b7\u0387\u055f\u05f4\u2027\ufe13\ufe55\uff1a.\u2018\u2019\u2024\ufe52\uff07\uff0e'"
)
# Letters that are not ALetter: scripts written without spaces (Line_Break SA), and
# ideographs and kana.
_NOT_ALETTER = (
    "THAI ",
    "LAO ",
    "MYANMAR ",
    "KHMER ",
    "TAI THAM ",
    "TAI VIET ",
    "NEW TAI LUE ",
    "TAI LE ",
    "AHOM ",
    "CJK ",
    "HIRAGANA",
    "KATAKANA",
    "HALFWIDTH KATAKANA",
    "TANGUT",
    "NUSHU",
    "KHITAN",
    "IDEOGRAPHIC",
    "HANGZHOU NUMERAL",
    "VERTICAL KANA",
    "HENTAIGANA",
)


def is_cased(c: str) -> bool:
    """Unicode's Cased property (Python's islower/isupper use Other_Lowercase too)."""
    return (c.islower() or c.isupper() or c.istitle()) and ord(c) not in UNICODE_14_CASED


@functools.lru_cache(maxsize=4096)
def _breaks(c: str) -> bool:
    """Whether uncased ``c`` ends a word (its word-break class is not letter-like)."""
    o = ord(c)
    if any(lo <= o <= hi for lo, hi in _UNICODE_14_BLOCKS):
        return True
    cat = unicodedata.category(c)
    if cat in ("Mn", "Me", "Mc", "Cf", "Nd", "Pc"):
        return c == "\u200b"
    name = unicodedata.name(c, "")
    if cat == "Sk":
        return not name.startswith(("MODIFIER LETTER", "EMOJI MODIFIER"))
    if cat in ("Lo", "Lm", "Nl", "Ll", "Lu", "Lt"):
        # Ideographic, Tangut and Nushu iteration marks are ALetter; the half-width
        # (semi-)voiced sound marks are Extend.
        if o in (0x3005, 0xFF9E, 0xFF9F, 0x16FE0, 0x16FE1):
            return False
        return not name or name.startswith(_NOT_ALETTER)
    return True


def _is_case_ignorable(c: str) -> bool:
    return unicodedata.category(c) in ("Mn", "Me", "Cf", "Lm", "Sk") or c in _MID


def _final_sigma(s: str, i: int) -> bool:
    """Unicode's Final_Sigma condition for the capital sigma at ``s[i]``."""
    j = i - 1
    while j >= 0 and _is_case_ignorable(s[j]):
        j -= 1
    if j < 0 or not is_cased(s[j]):
        return False
    j = i + 1
    while j < len(s) and _is_case_ignorable(s[j]):
        j += 1
    return j >= len(s) or not is_cased(s[j])


def title(s: str) -> str:
    """``s`` title-cased as x/text's ``cases.Title`` does (see the module docstring)."""
    out = []
    mid_word = False
    n = len(s)
    for i, c in enumerate(s):
        if is_cased(c):
            if not mid_word:
                out.append(c.title())
                mid_word = True
            elif c == "\u03a3":
                out.append("\u03c2" if _final_sigma(s, i) else "\u03c3")
            else:
                out.append(c.lower())
        else:
            out.append(c)
            if c not in _MID and _breaks(c):
                mid_word = False
        if c in _MID and i + 1 < n and s[i + 1] in _MID:
            mid_word = False
    return "".join(out)
