"""A reader of Torch7's serialization format (`torch.save`, binary and ascii).

It lives in graphc_runtime so that a generated Model can read trained weights
(`Model.load_t7`) with numpy alone; `graphc.t7` re-exports it.

What a file becomes in Python:
  nil -> None; boolean -> bool; number -> int when it is a whole number below 2**53, else
  float; string -> str when it is valid UTF-8, else bytes (Lua strings are bytes: char-rnn
  vocabularies hold single bytes of multi-byte characters); table -> Table (a dict compared
  and hashed by identity, as Lua tables are, so tables can be keys and cycles are kept);
  Tensor -> a numpy array viewing its storage (tensors sharing a storage share memory);
  Storage -> a 1-D numpy array (Cuda* ones are read as CPU arrays); any other torch class
  (nn modules, nngraph nodes, ...) -> TorchObject(typename, fields); a Lua function ->
  LuaFunction, which keeps only the size of its bytecode: it is never run.

The reader is iterative (no recursion, so deep graphs cannot exhaust Python's stack) and
checks every count it reads against the bytes left in the file before allocating anything,
so a truncated, damaged or hostile file fails with T7Error naming the byte offset.

(Why not the `torchfile` package: its last release is from 2017; it reads binary files
only, recurses per nesting level, trusts sizes and strides from the file (a short read
passes silently and a bad stride views memory outside the storage), and would be a
dependency of every generated model.)
"""
from __future__ import annotations

import struct

import numpy as np

TYPE_NIL, TYPE_NUMBER, TYPE_STRING, TYPE_TABLE, TYPE_TORCH, TYPE_BOOLEAN = 0, 1, 2, 3, 4, 5
TYPE_FUNCTION, TYPE_LEGACY_RECUR_FUNCTION, TYPE_RECUR_FUNCTION = 6, 7, 8
_TYPE_NAMES = {0: "nil", 1: "number", 2: "string", 3: "table", 4: "torch object", 5: "boolean",
               6: "function", 7: "function", 8: "function"}

_ELEMENT = {"Byte": np.uint8, "Char": np.int8, "Short": np.int16, "Int": np.int32,
            "Long": np.int64, "Float": np.float32, "Double": np.float64, "Half": np.float16}
_CUDA = {"Cuda": "Float", "CudaByte": "Byte", "CudaChar": "Char", "CudaShort": "Short",
         "CudaInt": "Int", "CudaLong": "Long", "CudaDouble": "Double", "CudaHalf": "Half"}


def _array_class(typename: str):
    """'torch.CudaTensor' -> ('Tensor', float32); None for other classes."""
    if not typename.startswith("torch."):
        return None
    name = typename[len("torch."):]
    for what in ("Tensor", "Storage"):
        if name.endswith(what):
            elem = name[: -len(what)]
            elem = _CUDA.get(elem, elem)
            if elem in _ELEMENT:
                return what, np.dtype(_ELEMENT[elem]).newbyteorder("<")
    return None


MAX_DIMS = 64  # numpy's limit; Torch files never come close
MAX_EXPANDED = 2 ** 28  # elements a tensor may view beyond its storage's size (stride 0)


class T7Error(ValueError):
    """A file that is not a well-formed Torch7 serialization; the message names the offset."""


class Table(dict):
    """A Lua table: a dict whose equality and hash are by identity (as in Lua)."""

    __hash__ = object.__hash__

    def __eq__(self, other):
        return self is other

    def __ne__(self, other):
        return self is not other

    def array(self) -> list:
        """The values at keys 1, 2, ... up to the first missing one (Lua's ipairs)."""
        out, k = [], 1
        while k in self:
            out.append(self[k])
            k += 1
        return out

    def __repr__(self):
        return f"<Lua table of {len(self)} entries>"


class TorchObject:
    """An instance of a torch class: `typename` ('nn.Linear'), `version` and its `fields`
    (a Table). Fields read as attributes too: `obj.weight`, `obj['weight']`."""

    __slots__ = ("typename", "version", "fields")

    def __init__(self, typename: str, version: int, fields: Table | None = None):
        self.typename, self.version = typename, version
        self.fields = fields if fields is not None else Table()

    def __getattr__(self, key):
        try:
            return self.fields[key]
        except KeyError:
            raise AttributeError(f"{self.typename} object has no field {key!r}") from None

    def __getitem__(self, key):
        return self.fields[key]

    def get(self, key, default=None):
        return self.fields.get(key, default)

    def __contains__(self, key):
        return key in self.fields

    def __repr__(self):
        return f"<{self.typename}>"


class LuaFunction:
    """A serialized Lua function. Its bytecode is skipped (never run); its upvalues are read."""

    __slots__ = ("bytecode_size", "upvalues")

    def __init__(self, bytecode_size: int, upvalues=None):
        self.bytecode_size, self.upvalues = bytecode_size, upvalues

    def __repr__(self):
        return f"<Lua function: {self.bytecode_size} bytes of bytecode, skipped>"


# ---- the two encodings -------------------------------------------------------------

class _Binary:
    """Torch's binary DiskFile: little-endian ints (4 bytes), longs (8 bytes by default;
    4 for files written on Windows), doubles."""

    min_item = 4  # the fewest bytes one value takes: its type tag (for the size checks)

    def __init__(self, data: bytes, long_size: int = 8):
        self.data, self.pos = data, 0
        self.long_fmt = {8: "q", 4: "i"}[long_size]
        self.long_size = long_size

    def need(self, n: int, what: str):
        if n < 0 or n > len(self.data) - self.pos:
            raise T7Error(f"offset {self.pos}: {what} needs {n} bytes but only "
                          f"{len(self.data) - self.pos} remain (truncated or damaged file)")

    def _unpack(self, fmt: str, size: int, what: str):
        self.need(size, what)
        v = struct.unpack_from("<" + fmt, self.data, self.pos)[0]
        self.pos += size
        return v

    def int(self, what="an int"):
        return self._unpack("i", 4, what)

    def long(self, what="a long"):
        return self._unpack(self.long_fmt, self.long_size, what)

    def longs(self, n: int, what: str):
        self.need(n * self.long_size, what)
        out = struct.unpack_from(f"<{n}{self.long_fmt}", self.data, self.pos)
        self.pos += n * self.long_size
        return list(out)

    def double(self, what="a number"):
        return self._unpack("d", 8, what)

    def raw(self, n: int, what: str) -> bytes:
        self.need(n, what)
        out = bytes(self.data[self.pos:self.pos + n])
        self.pos += n
        return out

    def array(self, dtype: np.dtype, n: int, what: str) -> np.ndarray:
        self.need(n * dtype.itemsize, what)
        out = np.frombuffer(self.data, dtype, n, self.pos).astype(dtype.newbyteorder("="))
        self.pos += n * dtype.itemsize
        return out


class _Ascii:
    """Torch's ascii DiskFile: numbers as text separated by spaces, each write call ending
    in a newline; characters raw (then a newline)."""

    min_item = 2  # a type tag: a digit and a separator

    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def need(self, n: int, what: str):
        if n < 0 or n > len(self.data) - self.pos:
            raise T7Error(f"offset {self.pos}: {what} needs at least {n} bytes but only "
                          f"{len(self.data) - self.pos} remain (truncated or damaged file)")

    def _end_of_call(self):
        if self.pos < len(self.data) and self.data[self.pos:self.pos + 1] == b"\n":
            self.pos += 1

    def _tokens(self, n: int, what: str) -> list[bytes]:
        self.need(n, what)
        out = []
        data, pos, end = self.data, self.pos, len(self.data)
        for _ in range(n):
            while pos < end and data[pos:pos + 1].isspace():
                pos += 1
            start = pos
            while pos < end and not data[pos:pos + 1].isspace():
                pos += 1
            if start == pos:
                self.pos = pos
                raise T7Error(f"offset {pos}: {what}: the file ends where a number should be")
            out.append(bytes(data[start:pos]))
        self.pos = pos
        self._end_of_call()
        return out

    def _number(self, tok: bytes, kind, what: str):
        try:
            return kind(tok.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            raise T7Error(f"offset {self.pos}: {what}: {tok[:20]!r} is not a number") from None

    def int(self, what="an int"):
        return self._number(self._tokens(1, what)[0], int, what)

    long = int

    def longs(self, n: int, what: str):
        return [self._number(t, int, what) for t in self._tokens(n, what)] if n else []

    def double(self, what="a number"):
        return self._number(self._tokens(1, what)[0], float, what)

    def raw(self, n: int, what: str) -> bytes:
        self.need(n, what)
        out = bytes(self.data[self.pos:self.pos + n])
        self.pos += n
        self._end_of_call()
        return out

    def array(self, dtype: np.dtype, n: int, what: str) -> np.ndarray:
        if n == 0:
            return np.zeros(0, dtype.newbyteorder("="))
        if dtype.itemsize == 1:  # Byte/Char storages are written raw
            return np.frombuffer(self.raw(n, what), dtype).copy()
        kind = float if dtype.kind == "f" else int
        vals = [self._number(t, kind, what) for t in self._tokens(n, what)]
        try:
            return np.array(vals, dtype.newbyteorder("="))
        except OverflowError:
            raise T7Error(f"offset {self.pos}: {what}: a value does not fit {dtype}") from None


# ---- the reader ----------------------------------------------------------------------

class _Frame:
    """An object whose contents are still being read: `wants` more values, then `done`."""

    def __init__(self, obj, wants: int):
        self.obj, self.wants, self.got = obj, wants, []


def _number(x: float):
    if x.is_integer() and abs(x) < 2 ** 53:
        return int(x)
    return x


def _string(b: bytes):
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return b


class _Reader:
    def __init__(self, stream):
        self.s = stream
        self.objects: dict[int, object] = {}

    def read(self):
        stack: list[_Frame] = []
        value = self.begin(stack)
        while True:
            if value is _OPEN:  # a frame was pushed: read its first value, unless it wants none
                frame = stack[-1]
                if frame.wants > 0:
                    value = self.begin(stack)
                    continue
                value = self.finish(stack.pop())
            if not stack:
                return value
            frame = stack[-1]
            frame.got.append(value)
            if len(frame.got) < frame.wants:
                value = self.begin(stack)
            else:
                value = self.finish(stack.pop())

    def begin(self, stack):
        """Read one value's start: a finished value, or _OPEN after pushing a frame."""
        s = self.s
        at = s.pos
        t = s.int("a type tag")
        if t == TYPE_NIL:
            return None
        if t == TYPE_NUMBER:
            return _number(s.double())
        if t == TYPE_BOOLEAN:
            b = s.int("a boolean")
            if b not in (0, 1):
                raise T7Error(f"offset {at}: a boolean must be 0 or 1, got {b}")
            return b == 1
        if t == TYPE_STRING:
            n = s.int("a string length")
            return _string(s.raw(n, f"a string of {n} bytes"))
        if t not in (TYPE_TABLE, TYPE_TORCH, TYPE_FUNCTION, TYPE_LEGACY_RECUR_FUNCTION,
                     TYPE_RECUR_FUNCTION):
            raise T7Error(f"offset {at}: unknown type tag {t} (not a Torch7 file, or damaged)")
        index = s.int("an object index")
        if index in self.objects:  # a reference to an object read before (or being read)
            return self.objects[index]
        if t == TYPE_TABLE:
            n = s.int("a table size")
            s.need(n * 2 * s.min_item, f"a table of {n} entries")
            obj = self.objects[index] = Table()
            stack.append(_Frame(obj, 2 * n))
            return _OPEN
        if t == TYPE_TORCH:
            version_text = _text(s.raw(s.int("a class version length"), "a class version"), at)
            if version_text.startswith("V "):
                try:
                    version = int(float(version_text[2:]))
                except ValueError:
                    raise T7Error(f"offset {at}: bad class version {version_text[:40]!r}") from None
                typename = _text(s.raw(s.int("a class name length"), "a class name"), at)
            else:  # files older than class versions: the name comes first
                version, typename = 0, version_text
            return self.torch_object(index, typename, version, stack, at)
        # a function: bytecode, then a table of upvalues
        n = s.int("a function's bytecode size")
        s.raw(n, f"a function's bytecode ({n} bytes)")
        obj = self.objects[index] = LuaFunction(n)
        stack.append(_Frame(obj, 1))
        return _OPEN

    def torch_object(self, index, typename, version, stack, at):
        s = self.s
        arr = _array_class(typename)
        if arr is None:  # a Lua class (nn module, nngraph node...): a table of fields follows
            tag = s.pos
            if typename.startswith("tds.") or s.int(f"{typename}'s fields") != TYPE_TABLE:
                raise T7Error(f"offset {tag}: {typename}: expected its table of fields (a class "
                              "with its own serialization format, such as tds.Hash, is not "
                              "supported)")
            s.pos = tag
            obj = self.objects[index] = TorchObject(typename, version)
            stack.append(_Frame(obj, 1))
            return _OPEN
        what, dtype = arr
        if what == "Storage":
            n = s.long("a storage size")
            if n < 0:
                raise T7Error(f"offset {at}: {typename} has a negative size {n}")
            s.need(n * (dtype.itemsize if isinstance(s, _Binary) else min(dtype.itemsize, 2)),
                   f"{typename} of {n} elements")
            obj = self.objects[index] = s.array(dtype, n, f"{typename} of {n} elements")
            return obj
        ndim = s.int("a tensor's dimension count")
        if not 0 <= ndim <= MAX_DIMS:
            raise T7Error(f"offset {at}: {typename} with {ndim} dimensions (at most {MAX_DIMS})")
        size = s.longs(ndim, "a tensor's sizes")
        stride = s.longs(ndim, "a tensor's strides")
        offset = s.long("a tensor's storage offset")
        if any(d < 0 for d in size) or any(d < 0 for d in stride):
            raise T7Error(f"offset {at}: {typename} with a negative size or stride "
                          f"(size {size}, stride {stride})")
        # registered before its storage is read, as Torch does; replaced when done
        self.objects[index] = _UNFINISHED
        frame = _Frame((index, typename, dtype, size, stride, offset, at), 1)
        frame.tensor = True
        stack.append(frame)
        return _OPEN

    def finish(self, frame: _Frame):
        if getattr(frame, "tensor", False):
            return self.make_tensor(*frame.obj, storage=frame.got[0])
        obj = frame.obj
        if isinstance(obj, Table):
            got = frame.got
            for k, v in zip(got[0::2], got[1::2]):
                if k is None or (isinstance(k, float) and k != k):
                    raise T7Error(f"offset {self.s.pos}: a table key is nil or NaN")
                if isinstance(k, np.ndarray):  # legal in Lua, but arrays are not hashable
                    raise T7Error(f"offset {self.s.pos}: a table whose key is a tensor or "
                                  "storage is not supported")
                obj[k] = v
            return obj
        if isinstance(obj, TorchObject):
            fields = frame.got[0]
            if not isinstance(fields, Table):
                raise T7Error(f"offset {self.s.pos}: {obj.typename}: expected its table of "
                              f"fields, got {_kind(fields)} (a class with its own serialization "
                              "format is not supported)")
            obj.fields = fields
            return obj
        obj.upvalues = frame.got[0]  # LuaFunction
        return obj

    def make_tensor(self, index, typename, dtype, size, stride, offset, at, storage):
        if not size:
            arr = np.zeros(0, dtype.newbyteorder("="))
        elif storage is None:
            if 0 not in size:
                raise T7Error(f"offset {at}: {typename} of size {size} has no storage")
            arr = np.zeros(size, dtype.newbyteorder("="))
        else:
            if not isinstance(storage, np.ndarray) or storage.ndim != 1 or \
                    storage.dtype != dtype.newbyteorder("="):
                raise T7Error(f"offset {at}: {typename} must have a {dtype} storage, got "
                              f"{_kind(storage)}")
            if 0 in size:
                arr = np.zeros(size, storage.dtype)
            else:
                last = offset - 1 + sum((n - 1) * st for n, st in zip(size, stride))
                if offset < 1 or last >= storage.size:
                    raise T7Error(f"offset {at}: {typename} of size {size}, stride {stride}, "
                                  f"storage offset {offset} reaches past its storage of "
                                  f"{storage.size} elements")
                numel = int(np.prod(size, dtype=object))
                if numel > max(storage.size, MAX_EXPANDED):
                    raise T7Error(f"offset {at}: {typename} of size {size} views {numel} "
                                  f"elements over a storage of {storage.size} (an expanded view "
                                  f"larger than {MAX_EXPANDED} elements is refused)")
                arr = np.lib.stride_tricks.as_strided(  # (a size-1 dim's stride is moot)
                    storage[offset - 1:], shape=size,
                    strides=[st * storage.itemsize if n > 1 else 0 for n, st in zip(size, stride)])
        self.objects[index] = arr
        return arr


_OPEN = object()
_UNFINISHED = TorchObject("an unfinished tensor", 0)  # a tensor that refers to itself


def _text(b: bytes, at: int) -> str:
    try:
        return b.decode("ascii")
    except UnicodeDecodeError:
        raise T7Error(f"offset {at}: a class name or version is not ASCII text: {b[:40]!r}") from None


def _kind(v) -> str:
    if isinstance(v, np.ndarray):
        return f"a {v.dtype} array"
    if isinstance(v, TorchObject):
        return v.typename
    return {type(None): "nil", bool: "a boolean", int: "a number", float: "a number",
            str: "a string", bytes: "a string", Table: "a table"}.get(type(v), type(v).__name__)


def loads(data: bytes, mode: str = "auto", long_size: int = 8):
    """Read one object from the bytes of a Torch7 file. `mode`: 'binary', 'ascii' or 'auto'
    (an ascii file starts with a digit, a binary one with a small little-endian int);
    `long_size`: 8, or 4 for binary files written by Torch on Windows."""
    if mode == "auto":
        mode = "ascii" if data[:1].isdigit() else "binary"
    if mode == "binary":
        if long_size not in (4, 8):
            raise ValueError(f"long_size must be 4 or 8, got {long_size!r}")
        stream = _Binary(memoryview(data), long_size)
    elif mode == "ascii":
        stream = _Ascii(bytes(data))
    else:
        raise ValueError(f"mode must be 'auto', 'binary' or 'ascii', got {mode!r}")
    reader = _Reader(stream)
    obj = reader.read()
    if stream.pos != len(data) and bytes(data[stream.pos:]).strip():
        raise T7Error(f"offset {stream.pos}: {len(data) - stream.pos} bytes follow the object "
                      "(not one torch.save file, or damaged)")
    return obj


def load(path, mode: str = "auto", long_size: int = 8):
    """Read a file written by Torch7's torch.save (see the module docstring for what each
    Lua/Torch value becomes). Raises T7Error (a ValueError) naming the offset of a problem."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        return loads(data, mode, long_size)
    except T7Error as e:
        raise T7Error(f"{path}: {e}") from None


def field_path(obj, path: str):
    """Follow a dotted field path (`protos.rnn`) through tables and torch objects; a number
    part is a Lua array index (`modules.2`)."""
    cur = obj
    done = []
    for part in path.split("."):
        key = int(part) if part.isdigit() else part
        fields = cur.fields if isinstance(cur, TorchObject) else cur
        if not isinstance(fields, Table) or key not in fields:
            where = ".".join(done) or "the file's top object"
            keys = sorted(str(k) for k in fields) if isinstance(fields, Table) else []
            hint = f" (its fields: {', '.join(keys[:20])})" if keys else f" ({_kind(cur)})"
            raise KeyError(f"{where} has no field {part!r}{hint}")
        cur = fields[key]
        done.append(part)
    return cur


# ---- weights into a generated Model (Model.load_t7) -------------------------------------

# Torch class names that are another graphc kind; char-rnn's own OneHot class has no "nn."
_KIND_ALIASES = {"SpatialConvolutionMM": "SpatialConvolution"}
_BARE_CLASSES = {"OneHot": "OneHot"}
_CONTAINERS = ("Sequential", "Parallel", "ConcatTable", "ParallelTable", "Concat", "gModule",
               "Bottle")


def _kind_of(obj) -> str | None:
    """The nn module kind of a saved object ('Linear'), or None if it is no module."""
    if not isinstance(obj, TorchObject):
        return None
    if obj.typename.startswith("nn."):
        k = obj.typename[3:]
        return _KIND_ALIASES.get(k, k)
    return _BARE_CLASSES.get(obj.typename)


def _unwrap(obj):
    """A criterion used as an nngraph node is saved inside nn.ModuleFromCriterion."""
    while _kind_of(obj) == "ModuleFromCriterion" and isinstance(obj.get("criterion"), TorchObject):
        obj = obj["criterion"]
    return obj


def shared_key(obj):
    """What makes two saved leaf modules one module: the same kind and settings (scalar
    fields) and weight and bias viewing the same memory, as Torch's clone('weight', 'bias')
    leaves the steps of an unrolled RNN. None for a module without parameters."""
    arrays = [obj.get(f) for f in ("weight", "bias")]
    arrays = [a for a in arrays if isinstance(a, np.ndarray) and a.size]
    if not arrays or _kind_of(obj) in _CONTAINERS:
        return None
    settings = tuple(sorted((k, v) for k, v in obj.fields.items() if isinstance(k, str)
                            and k != "train" and isinstance(v, (bool, int, float, str))))
    return (_kind_of(obj), settings) + tuple(
        (a.__array_interface__["data"][0], a.shape, a.strides) for a in arrays)


def module_tree(top) -> list:
    """[(field path, kind, module object)] of a saved module, depth first, each module once
    (a shared one where it first appears, and modules that share their weights, per
    shared_key, as one): the walk the generated T7_MODULES describes."""
    out, seen = [], set()
    stack = [(_unwrap(top), "")]
    while stack:
        obj, path = stack.pop()
        key = shared_key(obj) if isinstance(obj, TorchObject) else None
        if id(obj) in seen or (key is not None and key in seen):
            continue
        seen.add(id(obj))
        if key is not None:
            seen.add(key)
        kind = _kind_of(obj)
        out.append((path, kind, obj))
        kids = obj.get("modules") if kind in _CONTAINERS else None
        if isinstance(kids, Table):
            kids = kids.array()
            for i in range(len(kids), 0, -1):
                stack.append((_unwrap(kids[i - 1]), f"{path}.modules.{i}" if path else f"modules.{i}"))
    return out


def _where(path: str, kind) -> str:
    return f"{'the top module' if not path else path} (nn.{kind})"


def load_into(model, path, entry: str | None = None, order: str = "structure"):
    """Model.load_t7: copy a saved Torch7 module's weights and running state into `model`.

    order='structure': the file holds the module (or, with `entry`, a table holding it at
    that field path, e.g. 'protos.rnn'); it must have the model's module tree (kinds,
    nesting, gModule node order) and parameter shapes; the first difference is named.
    order='flat': the file holds one flat parameter vector, as Torch's getParameters()
    returns it (nngraph's order: modules as the tree lists them, weight then bias, shared
    ones once); it fills the parameters (not the running statistics).
    Nothing changes unless all of it matches."""
    layout = getattr(model, "T7_MODULES", None)
    if not layout:
        raise ValueError("this Model has no Torch7 module layout (T7_MODULES); compile it "
                         "again with this version of graphc")
    if order not in ("structure", "flat"):
        raise ValueError(f"order must be 'structure' or 'flat', got {order!r}")
    top = load(path)
    obj = top
    if entry:
        try:
            obj = field_path(top, entry)
        except KeyError as e:
            raise ValueError(f"{path}: entry {entry!r}: {e.args[0]}") from None
    weights = model._weights
    buffers = model._buffers
    names = [n for n, _, _ in model.PARAMETERS], [n for n, _, _ in model.BUFFERS]
    new = {}
    if order == "flat":
        if not isinstance(obj, np.ndarray) or obj.dtype.kind != "f":
            raise ValueError(f"{path}: order='flat' needs a file holding one float tensor "
                             f"(a getParameters() vector), found {_kind(obj)}")
        flat = obj.reshape(-1)
        params = [i for _, _, slots in layout for _, what, i in slots if what == "param"]
        total = sum(weights[i].size for i in params)
        if flat.size != total:
            raise ValueError(f"{path}: the flat vector has {flat.size} numbers; this model's "
                             f"parameters have {total}")
        at = 0
        for i in params:
            new[("param", i)] = flat[at:at + weights[i].size].reshape(weights[i].shape)
            at += weights[i].size
    else:
        saved = module_tree(obj)
        for k, (mpath, kind, slots) in enumerate(layout):
            if k >= len(saved):
                raise ValueError(f"{path}: the file's module tree ends before "
                                 f"{_where(mpath, kind)}: it has {len(saved)} modules, the model "
                                 f"{len(layout)}")
            spath, skind, sobj = saved[k]
            if (spath, skind) != (mpath, kind):
                raise ValueError(f"{path}: the first module that differs: the model has "
                                 f"{_where(mpath, kind)} where the file has {_where(spath, skind)}")
            for field, what, i in slots:
                target = (weights if what == "param" else buffers)[i]
                t = sobj.get(field)
                label = f"{_where(mpath, kind)} {field} ({names[what == 'buffer'][i]})"
                if not isinstance(t, np.ndarray) or t.dtype.kind not in "fiu":
                    raise ValueError(f"{path}: {label}: the file has {_kind(t)}, the model wants "
                                     f"a {'x'.join(map(str, target.shape))} tensor")
                if t.shape != target.shape:
                    # Torch's older convolutions keep a 2-D weight: nOut x (nIn*kH*kW)
                    reshaped = kind == "SpatialConvolution" and t.size == target.size \
                        and t.ndim == 2 and t.shape[0] == target.shape[0]
                    if not reshaped:
                        raise ValueError(f"{path}: {label} has shape "
                                         f"{'x'.join(map(str, t.shape))} in the file, the model's "
                                         f"is {'x'.join(map(str, target.shape))}")
                new[(what, i)] = t.reshape(target.shape)
        if len(saved) > len(layout):
            spath, skind, _ = saved[len(layout)]
            raise ValueError(f"{path}: the file has more modules than the model, from "
                             f"{_where(spath, skind)} on")
    for (what, i), t in new.items():
        (weights if what == "param" else buffers)[i][...] = t
    if order == "structure":  # Torch's training()/evaluate() flag (Dropout, BatchNorm):
        flags = [o.get("train") for _, _, o in saved if isinstance(o, TorchObject)
                 and isinstance(o.get("train"), bool)]  # the top module's, else the first
        if flags:
            model.train = flags[0]
    return model
