"""Torch7 files: `graphc.t7.load(path)` reads any `torch.save` file into Python objects
(the reader itself is graphc_runtime.t7, so generated Models can read weights with numpy
alone)."""
from graphc_runtime.t7 import LuaFunction, T7Error, Table, TorchObject, field_path, load, loads

__all__ = ["load", "loads", "field_path", "Table", "TorchObject", "LuaFunction", "T7Error"]
