"""The Python classes of Lua values (tables, Lua functions, builtins, Torch classes). Below
the evaluator, the nn objects and spec-time tensors, which all use them."""
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


class ClassObj(Builtin):
    """A Torch class: one made by torch.class('pkg.Name', 'pkg.Parent'), or an nn module class
    such as nn.Linear or nn.Module. Calling it makes an instance; `members` are the methods
    and fields a spec sets on it (`function nn.Module:reuseMem() ... end`), which its
    instances and subclasses see. `kind`: the nn module kind of a built-in class."""

    def __init__(self, typename, fn, parent=None, kind=None):
        super().__init__(typename, fn)
        self.typename, self.parent, self.kind = typename, parent, kind
        self.members: dict = {}

    def lookup(self, key):
        """(found, value) of a member here or in a parent class."""
        c = self
        while c is not None:
            if key in c.members:
                return True, c.members[key]
            c = c.parent
        return False, None

    def __repr__(self):
        return self.typename
