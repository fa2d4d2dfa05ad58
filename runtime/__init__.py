"""graphc_runtime: what graphc-generated modules import. numpy only (CuPy lazily, for CUDA
targets). Also the Torch-style training pieces: criteria and optim."""
from . import criteria, kernels, optim  # noqa: F401
from .criteria import (  # noqa: F401
    AbsCriterion,
    BCECriterion,
    ClassNLLCriterion,
    CosineEmbeddingCriterion,
    Criterion,
    CrossEntropyCriterion,
    DistKLDivCriterion,
    MarginCriterion,
    MSECriterion,
    MultiMarginCriterion,
    SequencerCriterion,
    SmoothL1Criterion,
)
from .module import Module  # noqa: F401
from .sequence import Sequence, clone_many_times  # noqa: F401

__all__ = ["Module", "Sequence", "clone_many_times", "criteria", "kernels", "optim",
           *criteria.__all__]
