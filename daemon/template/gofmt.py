"""Go's ``fmt`` printing of template values: ``Sprint``, ``Sprintln``, ``Sprintf`` and ``%q``.

Python values stand for Go values: ``str`` is ``string``, ``int`` is ``int``, ``float`` is
``float64``, ``None`` is ``nil``, lists and tuples are slices, dicts are maps, attrs
classes are structs. An object with a ``String()`` method is a ``fmt.Stringer`` and prints
through it, as in Go.
"""

from __future__ import annotations

import decimal
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from daemon.gocompat.strconv import go_quote


def go_type_name(v: object) -> str:
    """A Go-like type name for error messages (``GO_TYPE`` on a class names its Go type)."""
    go_type = getattr(type(v), "GO_TYPE", None)
    if isinstance(go_type, str):
        return go_type
    if v is None:
        return "<nil>"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float64"
    if isinstance(v, str):
        return "string"
    if isinstance(v, Mapping):
        return "map[string]interface {}" if type(v) is dict else type(v).__name__
    if isinstance(v, list | tuple):
        return "[]interface {}" if type(v) in (list, tuple) else type(v).__name__
    return type(v).__name__


def format_float(f: float, fmt: str = "g", prec: int = -1) -> str:
    """Go's ``strconv.FormatFloat`` for the ``g``/``e``/``f`` formats (``%v`` is g, -1)."""
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "+Inf" if f > 0 else "-Inf"
    if prec < 0:
        # repr() is the shortest round-tripping decimal, as Go's shortest mode.
        sign, digit_tuple, exponent = decimal.Decimal(repr(f)).as_tuple()
        assert isinstance(exponent, int)
        raw = "".join(map(str, digit_tuple))
        # value = 0.<digits> * 10**dp, Go's decimal-point convention.
        dp = len(raw) + exponent
        stripped = raw.rstrip("0")
        lead = len(stripped) - len(stripped.lstrip("0"))
        stripped = stripped.lstrip("0")
        dp -= lead
        neg = "-" if sign else ""
        if not stripped:
            stripped, dp = "0", 1
        if fmt == "e":
            return neg + _exp_form(stripped, dp - 1)
        if fmt == "f":
            return neg + _fixed_form(stripped, dp)
        exp = dp - 1
        if exp < -4 or exp >= 6:
            return neg + _exp_form(stripped, exp)
        return neg + _fixed_form(stripped, dp)
    if fmt == "f":
        return f"{f:.{prec}f}"
    if fmt == "e":
        return f"{f:.{prec}e}"
    return f"{f:.{max(prec, 1)}g}"


def _exp_form(digits: str, exp: int) -> str:
    mant = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    return f"{mant}e{'+' if exp >= 0 else '-'}{abs(exp):02d}"


def _fixed_form(digits: str, dp: int) -> str:
    if dp <= 0:
        return "0." + "0" * (-dp) + digits
    if dp >= len(digits):
        return digits + "0" * (dp - len(digits))
    return digits[:dp] + "." + digits[dp:]


def _is_stringer(v: object) -> Callable[[], object] | None:
    if isinstance(v, str | int | float | bool) or v is None:
        return None
    method = getattr(v, "String", None)
    if callable(method):
        return method  # type: ignore[no-any-return]
    return None


def sprint_value(v: object, depth: int = 0) -> str:
    """One operand printed like Go's ``%v``."""
    if v is None:
        return "<nil>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return v
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return format_float(v)
    stringer = _is_stringer(v)
    if stringer is not None:
        return str(stringer())
    if isinstance(v, Mapping):
        keys = sort_keys(list(v.keys()))
        return (
            "map["
            + " ".join(
                f"{sprint_value(k, depth + 1)}:{sprint_value(v[k], depth + 1)}" for k in keys
            )
            + "]"
        )
    if isinstance(v, bytes):
        return "[" + " ".join(str(b) for b in v) + "]"
    if isinstance(v, list | tuple):
        return "[" + " ".join(sprint_value(x, depth + 1) for x in v) + "]"
    if attrs.has(type(v)):
        fields = attrs.fields(type(v))  # type: ignore[arg-type]
        return "{" + " ".join(sprint_value(getattr(v, a.name), depth + 1) for a in fields) + "}"
    return str(v)


def sort_keys(keys: list[Any]) -> list[Any]:
    """Map keys in Go's ``fmtsort`` order: numbers numerically, strings bytewise."""
    try:
        if all(isinstance(k, str) for k in keys):
            return sorted(keys, key=lambda k: k.encode("utf-8", "surrogatepass"))
        return sorted(keys)
    except TypeError:
        return sorted(keys, key=lambda k: (type(k).__name__, str(k)))


def sprint(args: Sequence[object]) -> str:
    """Go's ``fmt.Sprint``: a space between operands when neither is a string."""
    out: list[str] = []
    prev_string = True
    for i, a in enumerate(args):
        is_string = isinstance(a, str)
        if i > 0 and not is_string and not prev_string:
            out.append(" ")
        out.append(sprint_value(a))
        prev_string = is_string
    return "".join(out)


def sprintln(args: Sequence[object]) -> str:
    """Go's ``fmt.Sprintln``: spaces between all operands and a final newline."""
    return " ".join(sprint_value(a) for a in args) + "\n"


_VERB = re.compile(r"%([-+# 0]*)(\*|\d+)?(?:\.(\*|\d*))?(\[\d+\])?([a-zA-Z%])?")


def _bad_verb(verb: str, arg: object) -> str:
    if arg is None:
        return f"%!{verb}(<nil>)"
    return f"%!{verb}({go_type_name(arg)}={sprint_value(arg)})"


def _pad(s: str, width: int | None, flags: str, numeric: bool = False) -> str:
    if width is None or len(s) >= width:
        return s
    if "-" in flags:
        return s + " " * (width - len(s))
    if "0" in flags and numeric:
        sign = s[0] if s[:1] in ("-", "+", " ") else ""
        body = s[len(sign) :]
        return sign + "0" * (width - len(s)) + body
    return " " * (width - len(s)) + s


def _fmt_int(n: int, verb: str, flags: str, prec: int | None) -> str:
    base = {"d": 10, "b": 2, "o": 8, "O": 8, "x": 16, "X": 16}[verb]
    neg = n < 0
    digits = {
        10: str(abs(n)),
        2: format(abs(n), "b"),
        8: format(abs(n), "o"),
        16: format(abs(n), "x" if verb == "x" else "X"),
    }[base]
    if prec is not None:
        digits = digits.zfill(prec) if not (prec == 0 and n == 0) else ""
    if "#" in flags:
        digits = {2: "0b", 8: "0", 16: "0x" if verb == "x" else "0X", 10: ""}[base] + digits
    if verb == "O":
        digits = "0o" + digits
    sign = "-" if neg else ("+" if "+" in flags else (" " if " " in flags else ""))
    return sign + digits


def _fmt_float(f: float, verb: str, flags: str, prec: int | None) -> str:
    if verb in ("v", "g", "G"):
        s = format_float(f, "g", -1 if prec is None else prec)
        if verb == "G":
            s = s.upper()
    elif verb in ("e", "E"):
        s = format_float(f, "e", 6 if prec is None else prec)
        if verb == "E":
            s = s.upper()
    else:
        s = format_float(f, "f", 6 if prec is None else prec)
    if "+" in flags and not s.startswith("-") and not s.startswith("+"):
        s = "+" + s
    elif " " in flags and not s.startswith("-"):
        s = " " + s
    return s


def _fmt_string_x(b: bytes, upper: bool, flags: str) -> str:
    h = b.hex()
    if upper:
        h = h.upper()
    if " " in flags:
        parts = [h[i : i + 2] for i in range(0, len(h), 2)]
        if "#" in flags:
            parts = [("0X" if upper else "0x") + p for p in parts]
        return " ".join(parts)
    if "#" in flags and h:
        return ("0X" if upper else "0x") + h
    return h


def _format_one(verb: str, flags: str, width: int | None, prec: int | None, arg: object) -> str:
    numeric = False
    if verb in ("v", "s") and _is_stringer(arg) is not None:
        arg = str(_is_stringer(arg)())  # type: ignore[misc]
    if isinstance(arg, bool):
        if verb in ("v", "t"):
            s = "true" if arg else "false"
        else:
            return _bad_verb(verb, arg)
    elif isinstance(arg, int):
        numeric = True
        if verb in ("v", "d"):
            s = _fmt_int(arg, "d", flags, prec)
        elif verb in ("b", "o", "O", "x", "X"):
            s = _fmt_int(arg, verb, flags, prec)
        elif verb == "c":
            s = chr(arg)
        elif verb == "q":
            s = "'" + go_quote(chr(arg))[1:-1].replace("'", "\\'").replace('\\"', '"') + "'"
        elif verb == "U":
            s = f"U+{arg:04X}"
        elif verb in ("e", "E", "f", "F", "g", "G"):
            return _bad_verb(verb, arg)
        else:
            return _bad_verb(verb, arg)
    elif isinstance(arg, float):
        numeric = True
        if verb in ("v", "e", "E", "f", "F", "g", "G"):
            s = _fmt_float(arg, verb, flags, prec)
        else:
            return _bad_verb(verb, arg)
    elif isinstance(arg, str):
        if verb in ("v", "s"):
            s = arg if prec is None else arg[:prec]
        elif verb == "q":
            s = go_quote(arg if prec is None else arg[:prec])
            if "#" in flags and "`" not in arg and arg.isprintable():
                s = "`" + arg + "`"
        elif verb in ("x", "X"):
            s = _fmt_string_x(arg.encode(), verb == "X", flags)
        else:
            return _bad_verb(verb, arg)
    elif arg is None:
        if verb in ("v", "s"):
            s = "<nil>" if verb == "v" else "%!s(<nil>)"
        else:
            return f"%!{verb}(<nil>)"
    else:
        if verb in ("v", "s"):
            s = sprint_value(arg)
        elif isinstance(arg, list | tuple) and verb in ("d", "q", "x", "X", "f", "t"):
            inner = [_format_one(verb, flags, width, prec, x) for x in arg]
            return "[" + " ".join(inner) + "]"
        else:
            return _bad_verb(verb, arg)
    return _pad(s, width, flags, numeric)


def sprintf(fmt: str, args: Sequence[object]) -> str:
    """Go's ``fmt.Sprintf`` for the verbs templates use; bad verbs print Go's ``%!`` forms."""
    out: list[str] = []
    argi = 0
    pos = 0
    n = len(fmt)
    while pos < n:
        i = fmt.find("%", pos)
        if i < 0:
            out.append(fmt[pos:])
            break
        out.append(fmt[pos:i])
        m = _VERB.match(fmt, i)
        assert m is not None
        flags, width_s, prec_s, _index, verb = m.groups()
        pos = m.end()
        if verb is None:
            out.append("%!(NOVERB)")
            continue
        if verb == "%":
            out.append("%")
            continue
        width: int | None = None
        prec: int | None = None
        if width_s == "*":
            if argi < len(args) and isinstance(args[argi], int):
                width = int(args[argi])  # type: ignore[call-overload]
                if width < 0:
                    flags += "-"
                    width = -width
            else:
                out.append("%!(BADWIDTH)")
            argi += 1
        elif width_s:
            width = int(width_s)
        if prec_s == "*":
            if argi < len(args) and isinstance(args[argi], int):
                prec = int(args[argi])  # type: ignore[call-overload]
            else:
                out.append("%!(BADPREC)")
            argi += 1
        elif prec_s is not None:
            prec = int(prec_s) if prec_s else 0
        if argi >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        arg = args[argi]
        argi += 1
        if verb == "v" and "+" in flags:
            flags = flags.replace("+", "")
        out.append(_format_one(verb, flags, width, prec, arg))
    if argi < len(args):
        extra = ", ".join(
            "<nil>" if a is None else f"{go_type_name(a)}={sprint_value(a)}" for a in args[argi:]
        )
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)
