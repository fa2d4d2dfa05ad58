"""The Lua-subset AST: immutable records, each with the Loc of its first token (binary
operators: the operator's token). Built by parse.py, walked by lua.py."""
from __future__ import annotations

from typing import Optional, Union

from ..errors import Loc


class Node:
    """An immutable record whose fields are its class annotations (a class value is the
    default). One generic __init__/__eq__/__hash__/__repr__ serves every class: dataclasses
    would generate and exec() them per class, which was a third of graphc's import time."""

    _fields: tuple = ()
    _defaults: dict = {}

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        cls._fields = tuple(cls.__dict__.get("__annotations__", {}))
        cls._defaults = {n: cls.__dict__[n] for n in cls._fields if n in cls.__dict__}

    def __init__(self, *args, **kw):
        if len(args) > len(self._fields):
            raise TypeError(f"{type(self).__name__} takes {len(self._fields)} fields")
        values = dict(zip(self._fields, args))
        for k, v in kw.items():
            if k not in self._fields or k in values:
                raise TypeError(f"{type(self).__name__}: bad or repeated field {k!r}")
            values[k] = v
        for n in self._fields:
            if n not in values:
                if n not in self._defaults:
                    raise TypeError(f"{type(self).__name__}: missing field {n!r}")
                values[n] = self._defaults[n]
        self.__dict__.update(values)

    def __setattr__(self, name, value):
        raise AttributeError(f"{type(self).__name__} is immutable")

    def _values(self) -> tuple:
        return tuple(self.__dict__[n] for n in self._fields)

    def __eq__(self, other):
        return type(self) is type(other) and self._values() == other._values()

    def __hash__(self):
        return hash((type(self),) + self._values())

    def __repr__(self):
        return f"{type(self).__name__}({', '.join(f'{n}={v!r}' for n, v in zip(self._fields, self._values()))})"

    def replace(self, **changes):
        return type(self)(**{**dict(zip(self._fields, self._values())), **changes})

# ---- expressions -------------------------------------------------------------


class Nil(Node):
    loc: Loc


class Bool(Node):
    loc: Loc
    value: bool


class Number(Node):
    loc: Loc
    value: float  # int when the literal is integral (1, 0x10, 1e3), else float


class String(Node):
    loc: Loc
    value: str  # escapes already decoded


class Vararg(Node):
    loc: Loc


class Function(Node):
    loc: Loc
    params: tuple[str, ...]
    is_vararg: bool
    body: "Block"
    name: Optional[str] = None  # for messages: "function 'fib'"


class Positional(Node):  # table item `v`
    value: "Expr"


class Named(Node):  # table item `k = v`
    key: str
    value: "Expr"


class Keyed(Node):  # table item `[k] = v`
    key: "Expr"
    value: "Expr"


class Table(Node):
    loc: Loc
    items: tuple[Union[Positional, Named, Keyed], ...]


class BinOp(Node):
    loc: Loc  # of the operator
    op: str  # + - * / % ^ .. == ~= < <= > >= and or
    left: "Expr"
    right: "Expr"


class UnOp(Node):
    loc: Loc
    op: str  # not - #
    operand: "Expr"


class Name(Node):
    loc: Loc
    name: str


class Index(Node):
    loc: Loc
    obj: "Expr"
    key: "Expr"  # a.b gives String('b')


class Call(Node):
    loc: Loc  # start of the whole call expression
    func: "Expr"
    args: tuple["Expr", ...]


class MethodCall(Node):
    loc: Loc
    obj: "Expr"
    method: str
    args: tuple["Expr", ...]


class Paren(Node):  # (e): truncates several results to one
    loc: Loc
    expr: "Expr"


Expr = Union[Nil, Bool, Number, String, Vararg, Function, Table, BinOp, UnOp, Name,
             Index, Call, MethodCall, Paren]

# ---- statements --------------------------------------------------------------


class Local(Node):
    loc: Loc
    names: tuple[str, ...]
    values: tuple[Expr, ...]


class Assign(Node):
    loc: Loc
    targets: tuple[Union[Name, Index], ...]
    values: tuple[Expr, ...]


class CallStat(Node):
    loc: Loc
    call: Union[Call, MethodCall]


class Do(Node):
    loc: Loc
    body: "Block"


class While(Node):
    loc: Loc
    cond: Expr
    body: "Block"


class Repeat(Node):
    loc: Loc
    body: "Block"
    cond: Expr  # sees the body's locals, as in Lua


class If(Node):
    loc: Loc
    branches: tuple[tuple[Expr, "Block"], ...]  # if + elseifs
    orelse: Optional["Block"]


class NumFor(Node):
    loc: Loc
    var: str
    start: Expr
    stop: Expr
    step: Optional[Expr]
    body: "Block"


class GenFor(Node):
    loc: Loc
    names: tuple[str, ...]
    exprs: tuple[Expr, ...]
    body: "Block"


class FunctionStat(Node):
    """`function a.b.c()` / `function a.b:m()`: target is Name or Index chain;
    with a method name, func.params already starts with 'self'."""
    loc: Loc
    target: Union[Name, Index]
    func: Function


class LocalFunction(Node):
    loc: Loc
    name: str
    func: Function


class Return(Node):
    loc: Loc
    values: tuple[Expr, ...]


class Break(Node):
    loc: Loc


Stat = Union[Local, Assign, CallStat, Do, While, Repeat, If, NumFor, GenFor, FunctionStat,
             LocalFunction, Return, Break]


class Block(Node):
    loc: Loc
    stats: tuple[Stat, ...]
