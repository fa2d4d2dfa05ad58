"""Importing this package registers every op (see registry.py)."""
from . import activation, linear, shape, spatial, table  # noqa: F401
from . import lookup, matrix, pointwise, reduce, regularize  # noqa: F401
from . import criterion, distance, avgpool_fullconv_temporal  # noqa: F401
from . import padding_upsampling, norm_dilated_lp  # noqa: F401
from .registry import REGISTRY, OpDef, ShapeError  # noqa: F401
