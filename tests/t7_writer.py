"""Test-only writer of Torch7's serialization format (the inverse of graphc_runtime.t7),
following torch7's File.lua/DiskFile.c: used to make the .t7 files the real ones do not
cover. Not part of graphc."""
from __future__ import annotations

import struct

import numpy as np

from graphc_runtime.t7 import LuaFunction, Table, TorchObject

_NAMES = {np.dtype(np.uint8): "Byte", np.dtype(np.int8): "Char", np.dtype(np.int16): "Short",
          np.dtype(np.int32): "Int", np.dtype(np.int64): "Long", np.dtype(np.float32): "Float",
          np.dtype(np.float64): "Double", np.dtype(np.float16): "Half"}


class Storage:
    """A torch Storage to write (a 1-D array); `cuda` writes it as a Cuda* class."""

    def __init__(self, array, cuda=False):
        self.array, self.cuda = np.ascontiguousarray(array).ravel(), cuda


class Tensor:
    """A tensor viewing `storage` (shared between Tensors = shared memory in Torch)."""

    def __init__(self, storage: Storage | None, size, stride=None, offset=1):
        self.storage, self.size, self.offset = storage, tuple(size), offset
        if stride is None:
            stride, n = [], 1
            for d in reversed(self.size):
                stride.insert(0, n)
                n *= d
        self.stride = tuple(stride)


def tensor(a, cuda=False) -> Tensor:
    a = np.asarray(a)
    return Tensor(Storage(a, cuda), a.shape)


class Writer:
    def __init__(self, ascii=False):
        self.ascii = ascii
        self.out = bytearray()
        self.index: dict[int, int] = {}
        self.keep = []  # keeps written objects alive so their ids stay unique

    # DiskFile primitives: each call ends in a newline in ascii mode
    def ints(self, *vals, fmt="i"):
        if self.ascii:
            self.out += (" ".join(str(int(v)) for v in vals) + "\n").encode()
        else:
            self.out += struct.pack(f"<{len(vals)}{fmt}", *vals)

    def longs(self, *vals):
        self.ints(*vals, fmt="q")

    def double(self, v):
        if self.ascii:
            self.out += (repr(float(v)) + "\n").encode()
        else:
            self.out += struct.pack("<d", v)

    def chars(self, b: bytes):
        self.out += b
        if self.ascii:
            self.out += b"\n"

    def string(self, s):
        b = s.encode() if isinstance(s, str) else bytes(s)
        self.ints(len(b))
        self.chars(b)

    def array(self, a: np.ndarray):
        if self.ascii and a.dtype.itemsize > 1:
            if a.size:
                fmt = (lambda v: repr(float(v))) if a.dtype.kind == "f" else (lambda v: str(int(v)))
                self.out += (" ".join(fmt(v) for v in a) + "\n").encode()
        else:
            self.chars(a.astype(a.dtype.newbyteorder("<")).tobytes())

    def obj(self, v):
        if v is None:
            self.ints(0)
        elif isinstance(v, bool):
            self.ints(5)
            self.ints(int(v))
        elif isinstance(v, (int, float)):
            self.ints(1)
            self.double(v)
        elif isinstance(v, (str, bytes)):
            self.ints(2)
            self.string(v)
        elif isinstance(v, np.ndarray):
            self.obj(tensor(v))
        else:
            self.referenced(v)

    def referenced(self, v):
        tag = {LuaFunction: 8}.get(type(v), 4 if isinstance(v, (TorchObject, Tensor, Storage)) else 3)
        self.ints(tag)
        if id(v) in self.index:
            self.ints(self.index[id(v)])
            return
        self.index[id(v)] = len(self.index) + 1
        self.keep.append(v)
        self.ints(self.index[id(v)])
        if isinstance(v, LuaFunction):
            self.string(b"\x1bLJ" + b"\0" * (v.bytecode_size - 3))
            self.obj(v.upvalues if v.upvalues is not None else Table())
        elif isinstance(v, TorchObject):
            self.string(f"V {v.version}")
            self.string(v.typename)
            self.obj(v.fields)
        elif isinstance(v, Storage):
            cuda = "Cuda" + ("" if v.array.dtype == np.float32 else _NAMES[v.array.dtype])
            self.string("V 1")
            self.string(f"torch.{cuda if v.cuda else _NAMES[v.array.dtype]}Storage")
            self.longs(v.array.size)
            self.array(v.array)
        elif isinstance(v, Tensor):
            st = v.storage
            name = _NAMES[st.array.dtype] if st is not None else "Double"
            if st is not None and st.cuda:
                name = "Cuda" + ("" if name == "Float" else name)
            self.string("V 1")
            self.string(f"torch.{name}Tensor")
            self.ints(len(v.size))
            if v.size:
                self.longs(*v.size)
                self.longs(*v.stride)
            self.longs(v.offset)
            self.obj(st)
        else:  # a table: dict, or list (keys 1..n)
            items = list(v.items()) if isinstance(v, dict) else list(enumerate(v, 1))
            self.ints(len(items))
            for k, x in items:
                self.obj(k)
                self.obj(x)


def dumps(v, ascii=False) -> bytes:
    w = Writer(ascii)
    w.obj(v)
    return bytes(w.out)


def save(path, v, ascii=False):
    with open(path, "wb") as f:
        f.write(dumps(v, ascii))
