"""The Lua-subset AST: plain frozen dataclasses, each with the Loc of its first token
(binary operators: the operator's token). Built by parse.py, walked by evaluate.py."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

from ..errors import Loc

# ---- expressions -------------------------------------------------------------


@dataclass(frozen=True)
class Nil:
    loc: Loc


@dataclass(frozen=True)
class Bool:
    loc: Loc
    value: bool


@dataclass(frozen=True)
class Number:
    loc: Loc
    value: float  # int when the literal is integral (1, 0x10, 1e3), else float


@dataclass(frozen=True)
class String:
    loc: Loc
    value: str  # escapes already decoded


@dataclass(frozen=True)
class Vararg:
    loc: Loc


@dataclass(frozen=True)
class Function:
    loc: Loc
    params: tuple[str, ...]
    is_vararg: bool
    body: "Block"
    name: Optional[str] = None  # for messages: "function 'fib'"


@dataclass(frozen=True)
class Positional:  # table item `v`
    value: "Expr"


@dataclass(frozen=True)
class Named:  # table item `k = v`
    key: str
    value: "Expr"


@dataclass(frozen=True)
class Keyed:  # table item `[k] = v`
    key: "Expr"
    value: "Expr"


@dataclass(frozen=True)
class Table:
    loc: Loc
    items: tuple[Union[Positional, Named, Keyed], ...]


@dataclass(frozen=True)
class BinOp:
    loc: Loc  # of the operator
    op: str  # + - * / % ^ .. == ~= < <= > >= and or
    left: "Expr"
    right: "Expr"


@dataclass(frozen=True)
class UnOp:
    loc: Loc
    op: str  # not - #
    operand: "Expr"


@dataclass(frozen=True)
class Name:
    loc: Loc
    name: str


@dataclass(frozen=True)
class Index:
    loc: Loc
    obj: "Expr"
    key: "Expr"  # a.b gives String('b')


@dataclass(frozen=True)
class Call:
    loc: Loc  # start of the whole call expression
    func: "Expr"
    args: tuple["Expr", ...]


@dataclass(frozen=True)
class MethodCall:
    loc: Loc
    obj: "Expr"
    method: str
    args: tuple["Expr", ...]


@dataclass(frozen=True)
class Paren:  # (e): truncates several results to one
    loc: Loc
    expr: "Expr"


Expr = Union[Nil, Bool, Number, String, Vararg, Function, Table, BinOp, UnOp, Name,
             Index, Call, MethodCall, Paren]

# ---- statements --------------------------------------------------------------


@dataclass(frozen=True)
class Local:
    loc: Loc
    names: tuple[str, ...]
    values: tuple[Expr, ...]


@dataclass(frozen=True)
class Assign:
    loc: Loc
    targets: tuple[Union[Name, Index], ...]
    values: tuple[Expr, ...]


@dataclass(frozen=True)
class CallStat:
    loc: Loc
    call: Union[Call, MethodCall]


@dataclass(frozen=True)
class Do:
    loc: Loc
    body: "Block"


@dataclass(frozen=True)
class While:
    loc: Loc
    cond: Expr
    body: "Block"


@dataclass(frozen=True)
class Repeat:
    loc: Loc
    body: "Block"
    cond: Expr  # sees the body's locals, as in Lua


@dataclass(frozen=True)
class If:
    loc: Loc
    branches: tuple[tuple[Expr, "Block"], ...]  # if + elseifs
    orelse: Optional["Block"]


@dataclass(frozen=True)
class NumFor:
    loc: Loc
    var: str
    start: Expr
    stop: Expr
    step: Optional[Expr]
    body: "Block"


@dataclass(frozen=True)
class GenFor:
    loc: Loc
    names: tuple[str, ...]
    exprs: tuple[Expr, ...]
    body: "Block"


@dataclass(frozen=True)
class FunctionStat:
    """`function a.b.c()` / `function a.b:m()`: target is Name or Index chain;
    with a method name, func.params already starts with 'self'."""
    loc: Loc
    target: Union[Name, Index]
    func: Function


@dataclass(frozen=True)
class LocalFunction:
    loc: Loc
    name: str
    func: Function


@dataclass(frozen=True)
class Return:
    loc: Loc
    values: tuple[Expr, ...]


@dataclass(frozen=True)
class Break:
    loc: Loc


Stat = Union[Local, Assign, CallStat, Do, While, Repeat, If, NumFor, GenFor, FunctionStat,
             LocalFunction, Return, Break]


@dataclass(frozen=True)
class Block:
    loc: Loc
    stats: tuple[Stat, ...]
