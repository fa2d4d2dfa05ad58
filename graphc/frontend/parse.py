"""Lua 5.1 source -> AST (graphc.frontend.ast), through lark and grammar/lua.lark.

`parse(text, filename)` is the only public entry. Every lark exception is turned into
a located SpecError with a message a Lua programmer can act on."""
from __future__ import annotations

import re
import sys
from typing import Optional

# lark imports the third-party `regex` module when it is installed, but uses it only with
# Lark(regex=True); our grammar needs `re`. Hiding it while lark loads saves ~40 ms of every
# `graphc compile` (an import of `regex` elsewhere later is unaffected).
_hide_regex = "regex" not in sys.modules
if _hide_regex:
    sys.modules["regex"] = None  # type: ignore[assignment]
try:
    from lark import Lark, Token, Transformer_NonRecursive, v_args
    from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken, VisitError
finally:
    if _hide_regex:
        del sys.modules["regex"]

from ..errors import Loc, SpecError
from ..paths import cache_dir, resource_dir
from . import ast

__all__ = ["parse"]


def parse(text: str, filename: str) -> ast.Block:
    """Parse a Lua 5.1 chunk; raise SpecError (located) on any syntax error."""
    if text.startswith("#"):  # Lua skips a first '#!...' line; keep its newline for line numbers
        newline = text.find("\n")
        text = "" if newline < 0 else text[newline:]
    try:
        tree = _parser().parse(text)
        return _ToAst(filename).transform(tree)
    except _Unfinished as e:
        raise SpecError(f"unfinished {e.what}", _tok_loc(filename, e.token)) from None
    except VisitError as e:  # lark wraps what the transformer raises (our SpecErrors)
        raise e.orig_exc from None
    except UnexpectedInput as e:
        raise _syntax_error(e, text, filename) from None


# ---- the lark parser (built once per process) ----------------------------------

_PARSER: Optional[Lark] = None


def _parser() -> Lark:
    global _PARSER
    if _PARSER is None:
        grammar = (resource_dir("grammar") / "lua.lark").read_text(encoding="utf-8")
        _PARSER = Lark(
            grammar,
            parser="lalr",
            lexer="basic",  # one scanner; the contextual lexer built ~30 per process
            propagate_positions=True,
            lexer_callbacks={"LONGSTRING": _check_long, "COMMENT": _check_long},
            cache=_table_cache(grammar),
        )
    return _PARSER


def _table_cache(grammar: str):
    """Where lark keeps the built LALR tables (building them is most of a compile's time):
    the user's graphc cache dir, keyed by grammar and lark version; False if unwritable.
    A damaged cache file only makes lark rebuild it."""
    import hashlib
    import lark
    try:
        d = cache_dir()
        d.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    key = hashlib.sha256(f"{lark.__version__}\n{grammar}".encode()).hexdigest()[:20]
    return str(d / f"lua-grammar-{key}.lark-cache")


class _Unfinished(Exception):
    def __init__(self, what: str, token: Token):
        super().__init__(what)
        self.what = what
        self.token = token


_CLOSED_LONG = re.compile(r"(?:--)?\[(=*)\[.*\]\1\]\Z", re.S)
_OPEN_LONG = re.compile(r"(?:--)?\[=*\[")


def _check_long(token: Token) -> Token:
    # The grammar lets an unclosed long string/comment run to the end of the file,
    # so that we can name the problem here instead of failing somewhere later.
    if _OPEN_LONG.match(token) and not _CLOSED_LONG.match(token):
        kind = "long comment" if token.startswith("--") else "long string"
        raise _Unfinished(kind, token)
    return token


# ---- parse tree -> AST -----------------------------------------------------------


def _tok_loc(filename: str, token: Token) -> Loc:
    return Loc(filename, token.line, token.column)


def _decode_short_string(body: str) -> str:
    """Decode the escapes of a '...' / "..." literal body (Lua 5.1 rules)."""
    out = []
    i = 0
    while i < len(body):
        c = body[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        nxt = body[i + 1]
        if nxt in "0123456789":  # \ddd: up to three decimal digits
            digits = re.match(r"[0-9]{1,3}", body[i + 1:]).group()
            if int(digits) > 255:
                raise ValueError("escape sequence too large")
            out.append(chr(int(digits)))
            i += 1 + len(digits)
        elif nxt == "\r" and body[i + 2:i + 3] == "\n":  # backslash + CRLF
            out.append("\n")
            i += 3
        else:
            out.append(_ESCAPES.get(nxt, nxt))  # unknown escapes stand for the char (5.1)
            i += 2
    return "".join(out)


_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
            "\r": "\n"}  # backslash-newline is a newline (any other char: itself)


def _string_value(token: Token) -> str:
    if token.type == "LONGSTRING":
        level = token.index("[", 1) + 1  # length of the opening bracket
        body = token[level:len(token) - level]
        if body.startswith("\r\n"):  # Lua drops a newline right after the opener
            body = body[2:]
        elif body.startswith("\n"):
            body = body[1:]
        return body
    return _decode_short_string(token[1:-1])


def _number_value(text: str):
    if text[:2] in ("0x", "0X"):
        return int(text, 16)
    if any(c in text for c in ".eE"):
        return float(text)
    return int(text)


class _MethodName:
    """Marks the `:m` part of a funcname (so funcname can tell it from `.m`)."""

    def __init__(self, token: Token):
        self.token = token


@v_args(meta=True)
class _ToAst(Transformer_NonRecursive):
    """One method per grammar rule/alias. Rules are small, so are these."""

    def __init__(self, filename: str):
        super().__init__()
        self.filename = filename

    def _loc(self, meta) -> Loc:
        return Loc(self.filename, meta.line, meta.column)

    def _tloc(self, token: Token) -> Loc:
        return _tok_loc(self.filename, token)

    @staticmethod
    def _own(block: ast.Block, loc: Loc) -> ast.Block:
        # an empty block has no token of its own: it takes its owner's loc
        return block if block.loc is not None else block.replace(loc=loc)

    # -- blocks and statements

    def start(self, meta, children):
        (block,) = children
        return self._own(block, Loc(self.filename, 1, 1))

    def block(self, meta, children):
        return ast.Block(None if meta.empty else self._loc(meta), tuple(children))

    def do_stat(self, meta, children):
        loc = self._loc(meta)
        return ast.Do(loc, self._own(children[0], loc))

    def while_stat(self, meta, children):
        loc = self._loc(meta)
        cond, body = children
        return ast.While(loc, cond, self._own(body, loc))

    def repeat_stat(self, meta, children):
        loc = self._loc(meta)
        body, cond = children
        return ast.Repeat(loc, self._own(body, loc), cond)

    def if_stat(self, meta, children):
        loc = self._loc(meta)
        cond, body, *rest = children
        branches = [(cond, self._own(body, loc))]
        orelse = None
        for part in rest:
            if isinstance(part, ast.Block):
                orelse = part
            else:
                branches.append(part)
        return ast.If(loc, tuple(branches), orelse)

    def elseif_part(self, meta, children):
        cond, body = children
        return (cond, self._own(body, self._loc(meta)))

    def else_part(self, meta, children):
        return self._own(children[0], self._loc(meta))

    def numfor(self, meta, children):
        loc = self._loc(meta)
        var, start, stop, *step, body = children
        return ast.NumFor(loc, str(var), start, stop, step[0] if step else None,
                          self._own(body, loc))

    def genfor(self, meta, children):
        loc = self._loc(meta)
        names, exprs, body = children
        return ast.GenFor(loc, names, exprs, self._own(body, loc))

    def function_stat(self, meta, children):
        loc = self._loc(meta)
        (target, name, is_method), (params, is_vararg, body) = children
        if is_method:
            params = ("self",) + params
        func = ast.Function(loc, params, is_vararg, self._own(body, loc), name)
        return ast.FunctionStat(loc, target, func)

    def local_function(self, meta, children):
        (func,) = children
        return ast.LocalFunction(self._loc(meta), func.name, func)

    def named_function(self, meta, children):
        loc = self._loc(meta)
        name, (params, is_vararg, body) = children
        return ast.Function(loc, params, is_vararg, self._own(body, loc), str(name))

    def local_stat(self, meta, children):
        names, *values = children
        return ast.Local(self._loc(meta), names, values[0] if values else ())

    def assign(self, meta, children):
        *targets, values = children
        for target in targets:
            if not isinstance(target, (ast.Name, ast.Index)):
                raise SpecError("cannot assign to this expression", target.loc)
        return ast.Assign(self._loc(meta), tuple(targets), values)

    def callstat(self, meta, children):
        (expr,) = children
        if not isinstance(expr, (ast.Call, ast.MethodCall)):
            raise SpecError("syntax error: expression statement must be a function call",
                            expr.loc)
        return ast.CallStat(self._loc(meta), expr)

    def return_stat(self, meta, children):
        return ast.Return(self._loc(meta), children[0] if children else ())

    def break_stat(self, meta, children):
        return ast.Break(self._loc(meta))

    # -- pieces of statements

    def funcname(self, meta, children):
        """-> (target expression, display name, is_method)"""
        first, *rest = children
        target = ast.Name(self._tloc(first), str(first))
        display = str(first)
        is_method = False
        for part in rest:
            if isinstance(part, _MethodName):  # ':' method_name
                part = part.token
                is_method = True
                display += ":" + part
            else:
                display += "." + part
            target = ast.Index(target.loc, target, ast.String(self._tloc(part), str(part)))
        return target, display, is_method

    def method_name(self, meta, children):
        return _MethodName(children[0])

    def funcbody(self, meta, children):
        """-> (params, is_vararg, body)"""
        *params, body = children
        names, is_vararg = params[0] if params else ((), False)
        return names, is_vararg, body

    def parlist(self, meta, children):
        is_vararg = children[-1].type == "VARARG"
        names = children[:-1] if is_vararg else children
        return tuple(str(n) for n in names), is_vararg

    def namelist(self, meta, children):
        return tuple(str(n) for n in children)

    def explist(self, meta, children):
        return tuple(children)

    # -- expressions

    def binop(self, meta, children):
        left, op, right = children
        return ast.BinOp(self._tloc(op), str(op), left, right)

    def unop(self, meta, children):
        op, operand = children
        return ast.UnOp(self._loc(meta), str(op), operand)

    def nil(self, meta, children):
        return ast.Nil(self._loc(meta))

    def true(self, meta, children):
        return ast.Bool(self._loc(meta), True)

    def false(self, meta, children):
        return ast.Bool(self._loc(meta), False)

    def number(self, meta, children):
        (token,) = children
        return ast.Number(self._loc(meta), _number_value(token))

    def string(self, meta, children):
        (token,) = children
        try:
            return ast.String(self._loc(meta), _string_value(token))
        except ValueError as e:  # a bad escape
            raise SpecError(str(e), self._loc(meta)) from None

    def vararg(self, meta, children):
        return ast.Vararg(self._loc(meta))

    def function_exp(self, meta, children):
        loc = self._loc(meta)
        params, is_vararg, body = children[0]
        return ast.Function(loc, params, is_vararg, self._own(body, loc), None)

    def name(self, meta, children):
        return ast.Name(self._loc(meta), str(children[0]))

    def paren(self, meta, children):
        return ast.Paren(self._loc(meta), children[0])

    def dot_index(self, meta, children):
        obj, key = children
        return ast.Index(self._loc(meta), obj, ast.String(self._tloc(key), str(key)))

    def index(self, meta, children):
        obj, key = children
        return ast.Index(self._loc(meta), obj, key)

    def method_call(self, meta, children):
        obj, method, args = children
        return ast.MethodCall(self._loc(meta), obj, str(method), args)

    def call(self, meta, children):
        func, args = children
        return ast.Call(self._loc(meta), func, args)

    def call_args(self, meta, children):
        if not children:  # f()
            return ()
        (arg,) = children
        return arg if isinstance(arg, tuple) else (arg,)  # explist, or f{...} / f"..."

    def table(self, meta, children):
        return ast.Table(self._loc(meta), tuple(children))

    def keyed(self, meta, children):
        return ast.Keyed(*children)

    def named(self, meta, children):
        key, value = children
        return ast.Named(str(key), value)

    def positional(self, meta, children):
        return ast.Positional(children[0])


# ---- syntax error messages -----------------------------------------------------

# Terminals shown as words rather than quoted text.
_WORDS = {"NAME": "name", "NUMBER": "number", "STRING": "string", "LONGSTRING": "string",
          "$END": "end of file"}
# Literal texts of the terminals that can start an expression / a statement:
# when all are expected, the message says "expression" / "statement" instead.
_EXPR_START = {"name", "number", "string", "(", "{", "function", "nil", "true", "false",
               "...", "not", "-", "#"}
_STAT_START = {"name", "(", "do", "while", "repeat", "if", "for", "function", "local"}
_STAT_EXTRA = {"return", "break", ";"}
# Shown first: what most often closes or continues a construct.
_RANK = [")", "]", "}", "end", "until", "then", "do", "=", ",", "in", "name",
         "expression", "statement", "else", "elseif", "end of file"]
_MAX_SHOWN = 6

# Openers and the closer each needs; 'while'/'for' also swallow their own 'do'.
_OPENERS = {"function": "end", "do": "end", "if": "end", "while": "end", "for": "end",
            "repeat": "until", "(": ")", "{": "}", "[": "]"}
_CLOSERS = {"end", "until", ")", "}", "]"}


def _text_of(terminal: str) -> str:
    """How the user would write a terminal: 'end', ')', or a word like name."""
    if terminal in _WORDS:
        return _WORDS[terminal]
    try:
        pattern = _parser().get_terminal(terminal).pattern
    except KeyError:
        return terminal.lower()
    return pattern.value if pattern.type == "str" else terminal.lower()


def _expected_list(texts: set[str]) -> list[str]:
    if _EXPR_START <= texts:
        texts = (texts - _EXPR_START) | {"expression"}
    if _STAT_START <= texts:
        texts = (texts - _STAT_START - _STAT_EXTRA) | {"statement"}
    rank = {t: i for i, t in enumerate(_RANK)}
    ordered = sorted(texts, key=lambda t: (rank.get(t, len(rank)), t))
    words = set(_WORDS.values()) | {"expression", "statement"}
    return [t if t in words else f"'{t}'" for t in ordered]


def _open_brackets(text: str, upto: int) -> list[tuple[str, Token]]:
    """The constructs still open before offset `upto`: (closer, opener token), innermost
    last. The prefix parsed fine, so a plain token scan is enough."""
    stack: list[tuple[str, Token, bool]] = []  # (closer, opener, still awaiting its 'do')
    try:
        for tok in _parser().lex(text):
            if tok.start_pos >= upto:
                break
            value = str(tok)  # names, numbers and strings never equal these texts
            if value == "do" and stack and stack[-1][2]:  # the 'do' of a while/for
                stack[-1] = (stack[-1][0], stack[-1][1], False)
            elif value in _OPENERS:
                stack.append((_OPENERS[value], tok, value in ("while", "for")))
            elif value in _CLOSERS and stack:
                stack.pop()
    except Exception:  # the scan only improves the message; never fail because of it
        pass
    return [(closer, opener) for closer, opener, _ in stack]


def _shown(token: Token) -> str:
    text = str(token).split("\n")[0]
    return text if len(text) <= 30 else text[:27] + "..."


def _syntax_error(e: UnexpectedInput, text: str, filename: str) -> SpecError:
    if isinstance(e, UnexpectedCharacters):
        loc = Loc(filename, e.line, e.column)
        ch = text[e.pos_in_stream]
        if ch in "'\"":
            return SpecError("unfinished string", loc)
        numeral = re.match(r"\.?[0-9][0-9A-Za-z_.]*", text[e.pos_in_stream:])
        if numeral:
            return SpecError(f"malformed number near '{numeral.group()}'", loc)
        return SpecError(f"unexpected character '{ch}'", loc)

    if not isinstance(e, UnexpectedToken):  # other lark input errors: be generic
        return SpecError("syntax error", Loc(filename, getattr(e, "line", 1) or 1,
                                             getattr(e, "column", 1) or 1))
    token = e.token
    if token.type == "$END":
        what = "end of file"
        # just past the last token (the $END token borrows its position)
        line = getattr(token, "end_line", None) or token.line or 1
        col = getattr(token, "end_column", None) or token.column or 1
        loc = Loc(filename, line, col)
        upto = len(text)
    else:
        what = f"'{_shown(token)}'"
        loc = Loc(filename, token.line, token.column)
        upto = token.start_pos

    expected = e.accepts if e.interactive_parser is not None else e.expected
    texts = {_text_of(t) for t in expected or ()}

    stack = _open_brackets(text, upto)
    if stack and stack[-1][0] in texts:
        closer, opener = stack[-1]
        return SpecError(f"unexpected {what}, expected '{closer}' (to close '{opener}' at "
                         f"{opener.line}:{opener.column})", loc)

    items = _expected_list(texts)
    if not items:
        return SpecError(f"unexpected {what}", loc)
    if len(items) == 1:
        return SpecError(f"unexpected {what}, expected {items[0]}", loc)
    shown = items[:_MAX_SHOWN] + (["..."] if len(items) > _MAX_SHOWN else [])
    return SpecError(f"unexpected {what}, expected one of: {', '.join(shown)}", loc)
