"""The Lua standard library a spec sees: the base functions (print, error, pairs, require,
pcall, ...), table, math and string, a few torch functions, and the libraries a spec may not
touch (io, os, ...). `install(interp)` puts them into an interpreter's globals."""
from __future__ import annotations

import math
import re
import sys
from pathlib import Path

import numpy as np

from ..errors import SpecError
from .lua import (MAX_STRING, MAX_VALUES, Builtin, LimitError, LuaTable, Scope, _Return, _isnum,
                  _norm, _tonumber, describe, lua_type, torch_type, tostring, truthy)
from .parse import parse
from .tensor import TensorObj


def install(interp):
    """Fill interp.globals with the standard library; sets interp.forbidden_libs and
    interp.string_lib (the `("x"):method()` table)."""
    g = interp.globals.vars
    b = lambda name, fn: Builtin(name, fn)  # noqa: E731

    def lua_print(args, loc):
        print("\t".join(tostring(a) for a in args), file=sys.stderr)
        return []

    def lua_error(args, loc):
        # error(msg [, level]): level 1 (default) is the error() call, level 2 the call
        # of the function that called error(), and so on.
        msg = args[0] if args else None
        level = args[1] if len(args) > 1 and _isnum(args[1]) else 1
        where = loc
        if level >= 2 and len(interp.call_stack) >= level - 1:
            where = interp.call_stack[-(int(level) - 1)][0]
        raise SpecError(tostring(msg) if msg is not None else "error() called with no message",
                        where)

    def lua_assert(args, loc):
        if not args or not truthy(args[0]):
            msg = args[1] if len(args) > 1 else "assertion failed!"
            raise SpecError(tostring(msg), loc)
        return list(args)

    def ipairs(args, loc):
        t = args[0] if args else None
        if not isinstance(t, LuaTable):
            raise SpecError(f"bad argument #1 to 'ipairs' (table expected, got {describe(t)})", loc)

        def step(a, l):
            i = a[1] + 1
            v = t[i]
            return [None] if v is None else [i, v]
        return [Builtin("ipairs_iter", step), t, 0]

    def pairs(args, loc):
        t = args[0] if args else None
        if not isinstance(t, LuaTable):
            raise SpecError(f"bad argument #1 to 'pairs' (table expected, got {describe(t)})", loc)
        # Deterministic order: the array part first, then other keys in insertion order.
        n = t.length()
        keys = list(range(1, n + 1)) + [k for k in t.d if not (isinstance(k, int) and 1 <= k <= n)]
        it = iter(keys)

        def step(a, l):
            for k in it:
                if k in t.d:
                    return [k, t.d[k]]
            return [None]
        return [Builtin("pairs_iter", step), t, None]

    def unpack(args, loc):
        t = args[0] if args else None
        if not isinstance(t, LuaTable):
            raise SpecError(f"bad argument #1 to 'unpack' (table expected, got {describe(t)})", loc)
        i = int(args[1]) if len(args) > 1 and args[1] is not None else 1
        j = int(args[2]) if len(args) > 2 and args[2] is not None else t.length()
        if j - i + 1 > MAX_VALUES:
            raise LimitError(f"too many results to unpack ({j - i + 1}; at most {MAX_VALUES})", loc)
        return [t[k] for k in range(i, j + 1)]

    def select(args, loc):
        n = args[0] if args else None
        if n == "#":
            return len(args) - 1
        if not _isnum(n):
            raise SpecError("bad argument #1 to 'select' (number expected)", loc)
        n = int(n)
        return list(args[n:]) if n > 0 else list(args[len(args) + n:])

    def lua_tonumber(args, loc):
        v = args[0] if args else None
        if _isnum(v):
            return v
        if isinstance(v, str):
            if len(args) > 1 and args[1] is not None:
                try:
                    return int(v.strip(), int(args[1]))
                except ValueError:
                    return None
            return _tonumber(v)
        return None

    def require(args, loc):
        name = args[0] if args else None
        if not isinstance(name, str):
            raise SpecError("require expects a module name string", loc)
        if name in ("nn", "nngraph", "torch", "optim"):
            return {"nn": interp.nn, "nngraph": interp.nngraph}.get(name, LuaTable())
        if name == "cudnn":  # its modules are nn's; like the real package it sets a global
            g["cudnn"] = interp.cudnn
            return interp.cudnn
        if name in ("cunn", "cutorch"):  # CUDA is graphc's --target, not the spec's business
            return LuaTable()
        if name == "image":  # the kernels models take from it (image.gaussian1D)
            g["image"] = g.get("image") or _image_lib()
            return g["image"]
        if name in interp.loaded:
            return interp.loaded[name]
        # beside the spec, or beside a folder above it: `require 's2sa.memory'` in
        # s2sa/models.lua finds s2sa/memory.lua, as Lua does run from the repository root
        base = Path(interp.path).parent
        rel = name.replace(".", "/") + ".lua"
        path = next((d / rel for d in [base, *base.parents][:4] if (d / rel).is_file()), base / rel)
        if not path.is_file():
            raise SpecError(f"require '{name}': no file {path} next to the spec (graphc loads "
                            "only .lua files beside the spec, and nn, nngraph, torch, optim, "
                            "cudnn, cunn, cutorch, image)", loc)
        text = path.read_text(encoding="utf-8")
        p = str(path)
        interp.sources[p] = text
        if p not in interp.files:
            interp.files.append(p)
        interp.loaded[name] = True  # guards against require cycles
        chunk = parse(text, p)
        try:
            interp.exec_block(chunk, Scope(interp.globals))
            res = None
        except _Return as r:
            res = r.values[0] if r.values else None
        interp.loaded[name] = True if res is None else res
        return interp.loaded[name]

    g.update({
        "print": b("print", lua_print), "error": b("error", lua_error),
        "assert": b("assert", lua_assert), "type": b("type", lambda a, l: lua_type(a[0] if a else None)),
        "tostring": b("tostring", lambda a, l: tostring(a[0] if a else None)),
        "tonumber": b("tonumber", lua_tonumber), "ipairs": b("ipairs", ipairs),
        "pairs": b("pairs", pairs), "unpack": b("unpack", unpack), "select": b("select", select),
        "pcall": b("pcall", interp.pcall),
        "require": b("require", require),
        "rawget": b("rawget", lambda a, l: a[0][a[1]]),
        "rawequal": b("rawequal", lambda a, l: a[0] is a[1] or (_isnum(a[0]) and a[0] == a[1])),
    })
    for name in ("setmetatable", "getmetatable", "loadstring", "dofile", "loadfile", "load",
                 "module", "setfenv", "getfenv", "collectgarbage"):
        g[name] = Builtin(name, _unsupported(name))
    interp.forbidden_libs = {}  # id -> name: libraries a spec may not touch
    for name in ("io", "os", "debug", "coroutine", "package"):
        g[name] = LuaTable()
        interp.forbidden_libs[id(g[name])] = name
    g["table"] = _table_lib()
    g["math"] = _math_lib()
    interp.string_lib = _string_lib()
    g["string"] = interp.string_lib
    g["table"]["unpack"] = g["unpack"]
    g["torch"] = LuaTable({"manualSeed": Builtin("manualSeed", lambda a, l: []),
                           "type": Builtin("type", lambda a, l: torch_type(a[0] if a else None)),
                           "typename": Builtin("typename", lambda a, l: torch_type(a[0] if a else None)),
                           "setdefaulttensortype": Builtin("setdefaulttensortype", lambda a, l: [])})


def _image_lib():
    def gaussian1d(args, loc):
        """image.gaussian1D(size=3, sigma=0.25, amplitude=1, normalize=false, mean=0.5): a
        Gaussian bump sampled at 1..size around mean * size + 0.5, its width sigma * size."""
        names = ("size", "sigma", "amplitude", "normalize", "mean")
        if len(args) == 1 and isinstance(args[0], LuaTable):  # image.gaussian1D{size = 7}
            args = [args[0][k] for k in names]
        size, sigma, amplitude, normalize, mean = (list(args) + [None] * 5)[:5]
        size = 3 if size is None else size
        sigma = 0.25 if sigma is None else sigma
        amplitude = 1 if amplitude is None else amplitude
        mean = 0.5 if mean is None else mean
        if not all(_isnum(v) for v in (size, sigma, amplitude, mean)) or size != int(size) or size < 1:
            raise SpecError("image.gaussian1D(size, sigma, amplitude, normalize, mean) takes "
                            "numbers, size a whole number >= 1", loc)
        center = mean * size + 0.5
        g = [amplitude * math.exp(-(((i - center) / (sigma * size)) ** 2) / 2)
             for i in range(1, int(size) + 1)]
        if normalize:
            total = sum(g)
            g = [v / total for v in g]
        return TensorObj(np.array(g, dtype=np.float64))  # a tensor, as Torch's

    return LuaTable({"gaussian1D": Builtin("image.gaussian1D", gaussian1d)})


def _table_lib():
    def insert(args, loc):
        t = args[0] if args else None
        if not isinstance(t, LuaTable):
            raise SpecError(f"bad argument #1 to 'insert' (table expected, got {describe(t)})", loc)
        if len(args) == 2:
            t[t.length() + 1] = args[1]
        elif len(args) == 3:
            pos, n = args[1], t.length()
            if not _isnum(pos) or not 1 <= pos <= n + 1:
                raise SpecError("bad argument #2 to 'insert' (position out of bounds)", loc)
            for i in range(n, int(pos) - 1, -1):
                t[i + 1] = t[i]
            t[pos] = args[2]
        else:
            raise SpecError("wrong number of arguments to 'insert'", loc)
        return []

    def remove(args, loc):
        t = args[0] if args else None
        if not isinstance(t, LuaTable):
            raise SpecError(f"bad argument #1 to 'remove' (table expected, got {describe(t)})", loc)
        n = t.length()
        pos = int(args[1]) if len(args) > 1 and args[1] is not None else n
        if not 1 <= pos <= n:  # Lua 5.1: nothing to remove
            return []
        v = t[pos]
        for i in range(pos, n):
            t[i] = t[i + 1]
        t[n] = None
        return [v]

    def concat(args, loc):
        t = args[0]
        sep = args[1] if len(args) > 1 and args[1] is not None else ""
        i = int(args[2]) if len(args) > 2 and args[2] is not None else 1
        j = int(args[3]) if len(args) > 3 and args[3] is not None else t.length()
        parts = []
        for k in range(i, j + 1):
            v = t[k]
            if not isinstance(v, (str, int, float)) or isinstance(v, bool):
                raise SpecError(f"invalid value (at index {k}) in table for 'concat'", loc)
            parts.append(tostring(v))
        return tostring(sep).join(parts)

    def getn(args, loc):
        return args[0].length()

    return LuaTable({"insert": Builtin("insert", insert), "remove": Builtin("remove", remove),
                     "concat": Builtin("concat", concat), "getn": Builtin("getn", getn)})


def _math_lib():
    def num1(name, fn):
        def f(args, loc):
            x = args[0] if args else None
            if not _isnum(x):
                raise SpecError(f"bad argument #1 to '{name}' (number expected, got {describe(x)})", loc)
            try:
                return _norm(fn(x))
            except (ValueError, OverflowError):
                return math.nan
        return Builtin(name, f)

    def minmax(fn):
        def f(args, loc):
            if not args or not all(_isnum(a) for a in args):
                raise SpecError("bad argument to 'math.min/max' (numbers expected)", loc)
            return fn(args)
        return f

    t = LuaTable({
        "pi": math.pi, "huge": math.inf,
        "floor": num1("floor", math.floor), "ceil": num1("ceil", math.ceil),
        "abs": num1("abs", abs), "sqrt": num1("sqrt", math.sqrt), "exp": num1("exp", math.exp),
        "log": Builtin("log", lambda a, l: _log(a[0], a[1] if len(a) > 1 else None)),
        "log10": Builtin("log10", lambda a, l: _log(a[0], 10)), "sin": num1("sin", math.sin),
        "cos": num1("cos", math.cos), "tan": num1("tan", math.tan), "asin": num1("asin", math.asin),
        "acos": num1("acos", math.acos), "atan": num1("atan", math.atan),
        "tanh": num1("tanh", math.tanh), "sinh": num1("sinh", math.sinh), "cosh": num1("cosh", math.cosh),
        "deg": num1("deg", math.degrees), "rad": num1("rad", math.radians),
        "max": Builtin("max", minmax(max)), "min": Builtin("min", minmax(min)),
        "pow": Builtin("pow", lambda a, l: _norm(float(a[0]) ** float(a[1]))),
        "fmod": Builtin("fmod", lambda a, l: _norm(math.fmod(a[0], a[1]))),
        "modf": Builtin("modf", lambda a, l: [_norm(float(math.trunc(a[0]))), a[0] - math.trunc(a[0])]),
        "random": Builtin("random", _unsupported("math.random (specs must be deterministic)")),
    })
    return t


def _string_lib():
    def fmt(args, loc):
        if not args or not isinstance(args[0], str):
            raise SpecError("bad argument #1 to 'format' (string expected)", loc)
        return _lua_format(args[0], args[1:], loc)

    def s1(name, fn):
        return Builtin(name, lambda a, l: fn(tostring(a[0]), *a[1:]))

    def sub(s, i=1, j=-1):
        n = len(s)
        i = int(i) if i is not None else 1
        j = int(j) if j is not None else -1
        i = n + i + 1 if i < 0 else max(i, 1)
        j = n + j + 1 if j < 0 else min(j, n)
        return s[i - 1:j] if i <= j else ""

    return LuaTable({
        "format": Builtin("format", fmt), "len": s1("len", len), "upper": s1("upper", str.upper),
        "lower": s1("lower", str.lower), "rep": Builtin("rep", _string_rep),
        "sub": s1("sub", sub), "reverse": s1("reverse", lambda s: s[::-1]),
        "byte": s1("byte", lambda s, i=1: ord(s[int(i) - 1]) if s else None),
        "char": Builtin("char", lambda a, l: "".join(chr(int(c)) for c in a)),
        "find": Builtin("find", _string_find), "match": Builtin("match", _string_match),
        "gsub": Builtin("gsub", _string_gsub),
    })


# ---- Lua patterns (string.find / match / gsub), as Python regular expressions ----------------

_CLASSES = {"a": "A-Za-z", "d": "0-9", "l": "a-z", "s": r" \t\n\r\f\v", "u": "A-Z",
            "w": "A-Za-z0-9", "x": "0-9A-Fa-f", "c": r"\x00-\x1f\x7f",
            "p": re.escape("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")}


def _lua_class(c: str, loc) -> tuple:
    """(inside-a-set text, whole regex) for `%c`."""
    if c.lower() in _CLASSES:
        body = _CLASSES[c.lower()]
        return (None, f"[^{body}]") if c.isupper() else (body, f"[{body}]")
    if c.isalnum():
        raise SpecError(f"Lua pattern class '%{c}' is not supported in graphc specs", loc)
    return re.escape(c), re.escape(c)


def _lua_pattern(pat: str, loc) -> str:
    out, i, n = [], 0, len(pat)
    while i < n:
        c = pat[i]
        if c == "%":
            if i + 1 >= n:
                raise SpecError("malformed Lua pattern (ends with '%')", loc)
            if pat[i + 1] in "bf":
                raise SpecError(f"Lua pattern item '%{pat[i + 1]}' is not supported in graphc specs", loc)
            out.append(_lua_class(pat[i + 1], loc)[1])
            i += 2
        elif c == "[":
            j, body = i + 1, []
            if j < n and pat[j] == "^":
                body.append("^")
                j += 1
            while j < n and (pat[j] != "]" or j == i + 1 + (body[:1] == ["^"])):
                if pat[j] == "%" and j + 1 < n:
                    inside = _lua_class(pat[j + 1], loc)[0]
                    if inside is None:
                        raise SpecError(f"Lua pattern '%{pat[j + 1]}' inside [...] is not "
                                        "supported in graphc specs", loc)
                    body.append(inside)
                    j += 2
                else:
                    body.append("\\" + pat[j] if pat[j] in "\\[]^" else pat[j])
                    j += 1
            if j >= n:
                raise SpecError("malformed Lua pattern (missing ']')", loc)
            out.append("[" + "".join(body) + "]")
            i = j + 1
        elif c == "-":
            out.append("*?")
            i += 1
        elif c in "*+?.()":
            if c == "(" and pat[i + 1:i + 2] == ")":
                raise SpecError("Lua position captures '()' are not supported in graphc specs", loc)
            out.append(c)
            i += 1
        elif c == "^" and i == 0:
            out.append("^")
            i += 1
        elif c == "$" and i == n - 1:
            out.append(r"\Z")
            i += 1
        else:
            out.append(re.escape(c))
            i += 1
    return "".join(out)


def _pattern_args(name, args, loc):
    s, pat = (list(args) + [None, None])[:2]
    if not isinstance(s, (str, int, float)) or isinstance(s, bool) or not isinstance(pat, str):
        raise SpecError(f"bad arguments to '{name}' (a string and a pattern expected)", loc)
    return tostring(s), pat


def _start(init, n):
    init = 1 if init is None else int(init)
    return max(n + init, 0) if init < 0 else max(init - 1, 0)


def _string_find(args, loc):
    s, pat = _pattern_args("find", args, loc)
    start = _start(args[2] if len(args) > 2 else None, len(s))
    if len(args) > 3 and truthy(args[3]):  # plain find
        k = s.find(pat, start)
        return [None] if k < 0 else [k + 1, k + len(pat)]
    m = re.compile(_lua_pattern(pat, loc), re.S).search(s, start)
    if m is None:
        return [None]
    return [m.start() + 1, m.end()] + list(m.groups())


def _string_match(args, loc):
    s, pat = _pattern_args("match", args, loc)
    start = _start(args[2] if len(args) > 2 else None, len(s))
    m = re.compile(_lua_pattern(pat, loc), re.S).search(s, start)
    if m is None:
        return [None]
    return list(m.groups()) or [m.group(0)]


def _string_gsub(args, loc):
    s, pat = _pattern_args("gsub", args, loc)
    repl = args[2] if len(args) > 2 else None
    limit = int(args[3]) if len(args) > 3 and _isnum(args[3]) else -1
    if not isinstance(repl, (str, int, float)) or isinstance(repl, bool):
        raise SpecError("string.gsub: graphc takes a string replacement (%1 for a capture)", loc)
    repl = tostring(repl)
    count = 0

    def sub(m):
        nonlocal count
        count += 1
        groups = (m.group(0),) + m.groups()
        return re.sub(r"%([0-9%])", lambda r: "%" if r.group(1) == "%" else
                      (groups[int(r.group(1))] or "") if int(r.group(1)) < len(groups) else "", repl)
    out = re.compile(_lua_pattern(pat, loc), re.S).sub(sub, s, count=max(limit, 0))
    return [out, count]


def _string_rep(args, loc):
    s, n = tostring(args[0] if args else None), args[1] if len(args) > 1 else None
    if not _isnum(n):
        raise SpecError("bad argument #2 to 'rep' (number expected)", loc)
    if len(s) * max(int(n), 0) > MAX_STRING:
        raise LimitError(f"string.rep: string too long (more than {MAX_STRING} characters)", loc)
    return s * max(int(n), 0)


def _unsupported(name):
    def f(args, loc):
        raise SpecError(f"{name} is not available in graphc specs", loc)
    return f


def _log(x, base=None):
    if not _isnum(x) or (base is not None and not _isnum(base)):
        raise TypeError("number expected")
    if x == 0:
        return -math.inf
    if x < 0:
        return math.nan
    return _norm(math.log(x) if base is None else math.log(x) / math.log(base))


def _lua_quote(s: str) -> str:
    """string.format('%q', s): a Lua string literal that reads back as s."""
    out = ['"']
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\0":
            out.append("\\000")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _lua_format(fmt: str, args, loc):
    out, i, ai = [], 0, 0
    while i < len(fmt):
        c = fmt[i]
        if c != "%":
            out.append(c)
            i += 1
            continue
        j = i + 1
        while j < len(fmt) and fmt[j] in "-+ #0123456789.":
            j += 1
        if j >= len(fmt):
            raise SpecError("invalid format string to 'format'", loc)
        conv = fmt[j]
        spec = fmt[i:j + 1]
        if conv == "%":
            out.append("%")
        else:
            if ai >= len(args):
                raise SpecError(f"bad argument #{ai + 2} to 'format' (no value)", loc)
            v = args[ai]
            ai += 1
            if conv in "diouxXeEfgGc":
                n = v if _isnum(v) else (_tonumber(v) if isinstance(v, str) else None)
                if n is None:
                    raise SpecError(f"bad argument #{ai + 1} to 'format' (number expected, got "
                                    f"{describe(v)})", loc)
                v = n
            if conv in "di":
                out.append((spec[:-1] + "d") % int(v))
            elif conv in "feEgGxXoc":
                out.append(spec % (int(v) if conv in "xXoc" else float(v)))
            elif conv == "q":
                out.append(_lua_quote(tostring(v)))
            elif conv == "s":
                out.append(spec % tostring(v))
            else:
                raise SpecError(f"invalid option '%{conv}' to 'format'", loc)
        i = j + 1
    return "".join(out)
