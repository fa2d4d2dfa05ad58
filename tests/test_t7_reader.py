"""graphc.t7: the Torch7 serialization reader, on real files Torch wrote (tests/data/t7, from
the torchfile project, BSD-3-Clause, see LICENSE-torchfile there) and on files made by the
test-only writer (tests/t7_writer.py) for the cases those do not cover."""
from pathlib import Path

import numpy as np
import pytest

from graphc import t7
from t7_writer import Storage, Tensor, dumps, tensor

DATA = Path(__file__).parent / "data" / "t7"


# ---- real files written by Torch7 ------------------------------------------------------

def test_real_scalars_and_tables():
    assert dict(t7.load(DATA / "hello=123.t7")) == {"hello": 123}
    lst = t7.load(DATA / "list_table.t7")
    assert lst.array() == ["hello", "world", "third item", 123]
    m1 = t7.load(DATA / "map_table1.t7")
    assert m1[0] == "zero" and m1.array() == ["hello", "world", "third item", 123]
    m2 = t7.load(DATA / "map_table2.t7")
    assert m2["a"] == "non number key" and len(m2) == 5


def test_real_tensors():
    d = t7.load(DATA / "doubletensor.t7")
    assert d.dtype == np.float64 and d.tolist() == [[1, 2, 3], [4, 5, 6.9]]
    f = t7.load(DATA / "floattensor.t7")
    assert f.dtype == np.float32 and f.shape == (2, 3, 4)
    assert abs(float(f.sum()) - 12.97241666913) < 1e-5  # the value torchfile's tests use


def test_real_cycles_and_classes():
    r = t7.load(DATA / "recursive_class.t7")
    assert r.typename == "A" and r.a is r
    t = t7.load(DATA / "recursive_kv_table.t7")
    (k, v), = t.items()
    assert k is t and v is t
    assert t7.load(DATA / "custom_class.t7").typename == "Blah"


def test_real_functions_are_skipped_with_a_note():
    f = t7.load(DATA / "function.t7")
    assert isinstance(f, t7.LuaFunction) and f.bytecode_size == 218
    assert "skipped" in repr(f)
    g = t7.load(DATA / "function_upvals.t7")
    assert isinstance(g, t7.LuaFunction) and isinstance(g.upvalues, t7.Table)


def test_real_gmodule_and_node():
    g = t7.load(DATA / "gmodule_with_linear_identity.t7")
    assert g.typename == "nn.gModule" and g.nInputs == 2
    kinds = [m.typename for m in g.modules.array()]
    assert kinds == ["nn.Identity", "nn.Identity", "nn.Linear", "nn.CAddTable"]
    lin = g.modules[3]
    assert lin.weight.shape == lin.gradWeight.shape and lin.bias.ndim == 1
    nodes = g.forwardnodes.array()
    assert len(nodes) == 9 and all(n.typename == "nngraph.Node" for n in nodes)
    assert sum("nSplitOutputs" in n.data for n in nodes) == 1
    assert sorted(n.data["selectindex"] for n in nodes if "selectindex" in n.data) == [1, 2]
    node = t7.load(DATA / "nngraph_node.t7")
    assert node.typename == "nngraph.Node" and node.children.array() == []


def test_tds_is_refused_clearly():
    with pytest.raises(t7.T7Error, match=r"offset \d+: tds.Hash: .*own serialization"):
        t7.load(DATA / "tds_hash.t7")


# ---- written by the test writer ----------------------------------------------------------

@pytest.mark.parametrize("ascii", [False, True])
def test_every_value_kind(ascii):
    shared = Storage(np.arange(12, dtype=np.float64))
    a = Tensor(shared, (3, 4))
    col = Tensor(shared, (3,), (4,), 2)  # column 2 of a, sharing its storage
    top = {"n": 3, "x": 0.25, "big": 2.0 ** 60, "neg": -7, "t": True, "f": False,
           "s": "héllo", "raw": b"\xff\xfe", "a": a, "col": col,
           "types": [tensor(np.array([1, 2], dt)) for dt in
                     (np.uint8, np.int8, np.int16, np.int32, np.int64, np.float32, np.float16)],
           "cuda": tensor(np.ones((2, 2), np.float32), cuda=True),
           "cudad": tensor(np.ones(3), cuda=True),
           "storage": Storage(np.array([5, 6], np.int64)),
           "empty": Tensor(None, ()),
           "mod": t7.TorchObject("nn.Linear", 1, t7.Table(weight=np.eye(2), train=True)),
           "fn": t7.LuaFunction(10, t7.Table({1: "up"}))}
    top["self"] = top
    o = t7.loads(dumps(top, ascii))
    assert o["self"] is o
    assert (o["n"], o["x"], o["neg"], o["t"], o["f"]) == (3, 0.25, -7, True, False)
    assert o["big"] == 2.0 ** 60 and o["s"] == "héllo" and o["raw"] == b"\xff\xfe"
    np.testing.assert_array_equal(o["a"], np.arange(12.0).reshape(3, 4))
    np.testing.assert_array_equal(o["col"], [1, 5, 9])
    assert np.shares_memory(o["a"], o["col"])
    types = o["types"].array()
    assert [x.dtype for x in types] == [np.dtype(t) for t in ("u1", "i1", "i2", "i4", "i8",
                                                                   "f4", "f2")]
    assert all(x.tolist() == [1, 2] for x in types)
    assert o["cuda"].dtype == np.float32 and o["cudad"].dtype == np.float64
    assert o["storage"].tolist() == [5, 6] and o["empty"].size == 0
    assert o["mod"].typename == "nn.Linear" and o["mod"].train is True
    np.testing.assert_array_equal(o["mod"].weight, np.eye(2))
    assert o["fn"].upvalues[1] == "up"


def test_ascii_matches_binary_on_doubles():
    vals = np.array([0.1, -1e-300, 1e300, np.inf, -np.inf, 123456789.125])
    for ascii in (False, True):
        np.testing.assert_array_equal(t7.loads(dumps(vals, ascii)), vals)
    assert np.isnan(t7.loads(dumps(np.array([np.nan]), True))[0])


def test_field_path():
    o = t7.loads(dumps({"protos": {"rnn": t7.TorchObject("nn.Tanh", 1, t7.Table())}}))
    assert t7.field_path(o, "protos.rnn").typename == "nn.Tanh"
    with pytest.raises(KeyError, match="protos has no field 'cnn'.*its fields: rnn"):
        t7.field_path(o, "protos.cnn")


# ---- damaged and hostile files -------------------------------------------------------------

def test_every_truncation_is_a_located_error():
    data = dumps({"w": np.arange(6.0).reshape(2, 3), "s": "text", "m":
                  t7.TorchObject("nn.Tanh", 1, t7.Table(train=True))})
    for n in range(len(data)):
        with pytest.raises(t7.T7Error, match=r"offset \d+"):
            t7.loads(data[:n], mode="binary")


def test_every_ascii_truncation_is_a_located_error():
    data = dumps({"w": np.arange(3.0), "s": "text"}, ascii=True)
    for n in range(1, len(data) - 1):
        try:
            t7.loads(data[:n], mode="ascii")
        except t7.T7Error as e:
            assert "offset" in str(e)
        else:  # a cut inside the last number's digits can still parse; never a crash
            pass


def _i(*v):
    return b"".join(int(x).to_bytes(4, "little", signed=True) for x in v)


def _q(*v):
    return b"".join(int(x).to_bytes(8, "little", signed=True) for x in v)


def _s(text):
    return _i(len(text)) + text.encode()


@pytest.mark.parametrize("data, message", [
    (_i(2, 2 ** 31 - 1) + b"abc", r"offset 8: a string of 2147483647 bytes needs"),
    (_i(3, 1, 2 ** 30), r"a table of 1073741824 entries needs"),
    (_i(4, 1) + _s("V 1") + _s("torch.DoubleStorage") + _q(2 ** 60), r"DoubleStorage of"),
    (_i(4, 1) + _s("V 1") + _s("torch.FloatTensor") + _i(1) + _q(10 ** 9, 1, 1) + _i(4, 2)
     + _s("V 1") + _s("torch.FloatStorage") + _q(2) + b"\0" * 8, r"reaches past its storage"),
    (_i(4, 1) + _s("V 1") + _s("torch.FloatTensor") + _i(1) + _q(2, -1, 1) + _i(0),
     r"negative size or stride"),
    (_i(4, 1) + _s("V 1") + _s("torch.FloatTensor") + _i(10 ** 6), r"1000000 dimensions"),
    (_i(4, 1) + _s("V 1") + _s("torch.FloatTensor") + _i(1) + _q(2, 1, 1) + _i(4, 1),
     r"must have a float32 storage"),  # its storage is a reference to the tensor itself
    (_i(4, 1) + _s("V 1") + _s("torch.FloatTensor") + _i(2) + _q(2 ** 40, 2 ** 40, 0, 0, 1)
     + _i(4, 2) + _s("V 1") + _s("torch.FloatStorage") + _q(1) + b"\0" * 4,
     r"an expanded view larger than"),  # stride 0: a view of 2**80 elements over one float
    (_i(4, 1) + _s("V 1") + _s("torch.FloatTensor") + _i(1) + _q(2 ** 40, 1, 1) + _i(0),
     r"has no storage"),  # found by the mutation test: np.zeros of the size was attempted
    (_i(3, 1, 1) + _i(4, 2) + _s("V 1") + _s("torch.ByteStorage") + _q(1) + b"\0" + _i(0),
     r"key is a tensor or storage"),
    (_i(9), r"offset 0: unknown type tag 9"),
    (_i(5, 7), r"a boolean must be 0 or 1"),
    (_i(3, 1, 1, 0, 1) + b"\0" * 8, r"a table key is nil"),
    (_i(1) + b"\0" * 8 + b"junk", r"bytes follow the object"),
])
def test_hostile_files_are_refused(data, message):
    with pytest.raises(t7.T7Error, match=message):
        t7.loads(data, mode="binary")


def test_size_one_dims_may_have_any_stride():
    # found by the mutation test: a huge stride on a size-1 dim overflowed numpy's strides
    data = (_i(4, 1) + _s("V 1") + _s("torch.FloatTensor") + _i(2) + _q(1, 3, 2 ** 62, 1, 1)
            + _i(4, 2) + _s("V 1") + _s("torch.FloatStorage") + _q(3) + b"\0" * 12)
    assert t7.loads(data, mode="binary").shape == (1, 3)


def test_deep_nesting_needs_no_recursion():
    depth = 100_000
    data = b"".join(_i(3, i + 1, 1, 1) + b"\0" * 8 for i in range(depth)) + _i(0)
    o = t7.loads(data, mode="binary")
    for _ in range(depth):
        o = o[0]
    assert o is None


def test_load_names_the_file(tmp_path):
    p = tmp_path / "bad.t7"
    p.write_bytes(_i(3, 1))
    with pytest.raises(t7.T7Error, match=r"bad.t7: offset 8: a table size"):
        t7.load(p)


@pytest.mark.parametrize("name", ["gmodule_with_linear_identity.t7", "floattensor.t7",
                                  "function_upvals.t7", "ascii"])
def test_mutated_files_fail_cleanly(name):
    """Random byte changes, cuts and insertions: a value or a T7Error, nothing else, quickly."""
    if name == "ascii":
        data = dumps({"w": np.arange(6.0).reshape(2, 3), "s": "x", "t": {1: True}}, ascii=True)
    else:
        data = (DATA / name).read_bytes()
    rng = np.random.default_rng(0)
    for _ in range(400):
        b = bytearray(data)
        for _ in range(int(rng.integers(1, 4))):
            i = int(rng.integers(0, len(b)))
            kind = rng.integers(0, 3)
            if kind == 0:
                b[i] = int(rng.integers(0, 256))
            elif kind == 1:
                del b[i:i + int(rng.integers(1, 9))]
            else:
                b[i:i] = bytes(rng.integers(0, 256, int(rng.integers(1, 9)), dtype=np.uint8))
        try:
            t7.loads(bytes(b))
        except t7.T7Error:
            pass
