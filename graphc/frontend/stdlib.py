"""The Lua standard library a spec sees: the base functions (print, error, pairs, require,
pcall, ...), table, math and string, a few torch functions, and the libraries a spec may not
touch (io, os, ...). `install(interp)` puts them into an interpreter's globals."""
from __future__ import annotations

import math
import sys
from pathlib import Path

from ..errors import SpecError
from .lua import (MAX_STRING, MAX_VALUES, Builtin, LimitError, LuaTable, Scope, _Return, _isnum,
                  _norm, _tonumber, describe, lua_type, torch_type, tostring, truthy)
from .parse import parse


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
        base = Path(interp.path).parent
        path = base / (name.replace(".", "/") + ".lua")
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
    def tensor_of(args, loc):  # torch.Tensor{1, 2, 3}: a table of numbers is all a spec needs
        t = args[0] if args else None
        if not isinstance(t, LuaTable) or not all(_isnum(v) for v in t.array()):
            raise SpecError("graphc supports torch.Tensor{...} with a table of numbers only "
                            "(specs build models, not data)", loc)
        return LuaTable.of(t.array())

    def filled(value):
        def make(args, loc):
            if len(args) != 1 or not _isnum(args[0]) or args[0] != int(args[0]) or args[0] < 0:
                raise SpecError("torch.ones/zeros take one size here: torch.ones(n)", loc)
            return LuaTable.of([value] * int(args[0]))
        return make

    classes: dict = {}

    def torch_class(args, loc):
        """torch.class('nn.X', 'nn.Parent'): plain tables for the class and its parent, so
        files that define builders as class methods (rnn's FastLSTM) load and their
        methods can be called with --entry; nothing is instantiated."""
        name = args[0] if args else None
        if not isinstance(name, str):
            raise SpecError("torch.class expects a class name string", loc)
        parent = args[1] if len(args) > 1 else None
        cls = classes.setdefault(name, LuaTable({"__typename": name}))
        base = classes.setdefault(parent, LuaTable({"__typename": parent})) if isinstance(parent, str) else None
        return [cls, base]

    g["torch"] = LuaTable({"manualSeed": Builtin("manualSeed", lambda a, l: []),
                           "class": Builtin("class", torch_class),
                           "Tensor": Builtin("Tensor", tensor_of),
                           "ones": Builtin("ones", filled(1)), "zeros": Builtin("zeros", filled(0)),
                           "type": Builtin("type", lambda a, l: torch_type(a[0] if a else None)),
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
        return LuaTable.of(g)

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
    })


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
