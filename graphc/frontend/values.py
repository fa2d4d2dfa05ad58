"""The Python classes of Lua values (tables, Lua functions, builtins). Below both the
evaluator and the nn objects, which both use them."""
from __future__ import annotations

from . import ast as A


class LuaTable:
    __slots__ = ("d",)

    def __init__(self, items=None):
        self.d = {}
        for k, v in (items or {}).items():
            self[k] = v

    def __getitem__(self, k):
        return self.d.get(_key(k))

    def __setitem__(self, k, v):
        k = _key(k)
        if v is None:
            self.d.pop(k, None)
        else:
            self.d[k] = v

    def length(self):
        n = 0
        while (n + 1) in self.d:
            n += 1
        return n

    def array(self):
        return [self.d[i] for i in range(1, self.length() + 1)]

    @classmethod
    def of(cls, values):
        t = cls()
        for i, v in enumerate(values, 1):
            t[i] = v
        return t


def _key(k):
    if isinstance(k, float) and k.is_integer():
        return int(k)
    return k


class LuaFunction:
    def __init__(self, node: A.Function, scope):
        self.node, self.scope = node, scope


class Builtin:
    """A Python-side function: fn(args, loc) -> list of results (or one value)."""

    def __init__(self, name, fn):
        self.name, self.fn = name, fn
