"""graphc_runtime: what graphc-generated modules import. numpy only (CuPy lazily, for CUDA
targets). Also the Torch-style training pieces: criteria and optim."""
from . import criteria, kernels, optim  # noqa: F401
from .criteria import ClassNLLCriterion, MSECriterion  # noqa: F401
from .module import Module  # noqa: F401

__all__ = ["Module", "ClassNLLCriterion", "MSECriterion", "criteria", "kernels", "optim"]
