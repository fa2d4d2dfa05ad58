"""The models and training loops of the data-parallel tests, shared by the MPI worker
(worker.py, one copy per rank under mpiexec) and the one-process references (the tests).

Each case trains a float64 model for a few optimizer steps on fixed random minibatches:
  lstm          samples/lstm.lua unrolled over T=4 steps (a Sequence), MSE on the final h, adam
  lenet         samples/lenet.lua, ClassNLL, sgd with momentum and weight decay; batch 8
  lenet_uneven  the same with batch 7: shards of 4 and 3, gradients weighted by shard size
  lenet_bn      tests/distributed/lenet_bn.lua (LeNet with (Spatial)BatchNormalization), sgd
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import graphc  # noqa: E402
from graphc.compiler import parse_shape  # noqa: E402
from graphc_runtime import ClassNLLCriterion, MSECriterion, optim  # noqa: E402
from graphc_runtime.distributed import shard_bounds  # noqa: E402

STEPS = 3


class LSTMCase:
    batch, seq_len = 6, 4
    weighted = False

    def __init__(self):
        self.mod = graphc.compile_file(ROOT / "samples" / "lstm.lua", dtype="float64", unroll="T",
                                       state=[("output1", "input2"), ("output2", "input3")])
        rng = np.random.default_rng(7)
        self.x = rng.standard_normal((STEPS, self.seq_len, self.batch, 3))
        self.y = rng.standard_normal((STEPS, self.batch, 2))
        self.criterion = MSECriterion()
        self.config = {"learningRate": 0.05}
        self.optimizer = optim.adam

    def new_model(self, seed):
        return self.mod.Sequence(dtype="float64", seed=seed)

    def loss_backward(self, model, step, rows):
        """Forward and backward of minibatch `step`'s rows: accumulates into the model's
        flat gradient; returns the (mean) loss."""
        x, y = self.x[step][:, rows], self.y[step][rows]
        zeros = np.zeros((x.shape[1], 2))
        c, h = model.forward(x, zeros, zeros)
        loss = self.criterion.forward(h, y)
        model.backward((x, zeros, zeros), (np.zeros_like(c), self.criterion.backward(h, y)))
        return loss


class LeNetCase:
    spec = ROOT / "samples" / "lenet.lua"
    batch = 8
    weighted = False

    def __init__(self):
        self.mod = graphc.compile_file(self.spec, shapes={"input1": parse_shape("Bx1x32x32")},
                                       dtype="float64")
        rng = np.random.default_rng(11)
        self.x = rng.standard_normal((STEPS, self.batch, 1, 32, 32))
        self.y = rng.integers(0, 10, (STEPS, self.batch))
        self.criterion = ClassNLLCriterion()
        self.config = {"learningRate": 0.05, "momentum": 0.9, "weightDecay": 1e-3}
        self.optimizer = optim.sgd

    def new_model(self, seed):
        return self.mod.Model(dtype="float64", seed=seed)

    def loss_backward(self, model, step, rows):
        x, y = self.x[step][rows], self.y[step][rows]
        out = model.forward(x)
        loss = self.criterion.forward(out, y)
        model.backward(x, self.criterion.backward(out, y))
        return loss


class LeNetUnevenCase(LeNetCase):
    batch = 7
    weighted = True  # shards of 4 and 3: allreduce_gradients(weight=rows)


class LeNetBNCase(LeNetCase):
    spec = HERE / "lenet_bn.lua"


CASES = {"lstm": LSTMCase, "lenet": LeNetCase, "lenet_uneven": LeNetUnevenCase,
         "lenet_bn": LeNetBNCase}


def train_distributed(name, dist, steps=STEPS):
    """What each rank runs: its own init (a different seed per rank, so the broadcast has
    something to fix), broadcast_parameters, then per step: its shard's forward/backward,
    allreduce_gradients, the unchanged optimizer, and the ranks-identical check."""
    case = CASES[name]()
    model = case.new_model(seed=100 + dist.rank())
    dist.broadcast_parameters(model)
    flat_w, flat_g = model.getParameters()
    state = {}
    for step in range(steps):
        rows = dist.shard(case.batch)

        def feval(w):
            flat_g[...] = 0
            loss = case.loss_backward(model, step, rows)
            if case.weighted:
                dist.allreduce_gradients(flat_g, weight=rows.stop - rows.start)
            else:
                dist.allreduce_gradients(flat_g)
            return loss, flat_g

        case.optimizer(feval, flat_w, case.config, state)
        dist.check_identical(flat_w, step=step + 1)
    dist.average_buffers(model)
    return model


def train_one_process(name, steps=STEPS):
    """The reference: one process, the whole batch per step, seed 100 (rank 0's)."""
    case = CASES[name]()
    model = case.new_model(seed=100)
    flat_w, flat_g = model.getParameters()
    state = {}
    for step in range(steps):
        def feval(w):
            flat_g[...] = 0
            return case.loss_backward(model, step, slice(None)), flat_g

        case.optimizer(feval, flat_w, case.config, state)
    return model


def train_split(name, n, steps=STEPS):
    """The per-rank BatchNorm reference in one process: n models with the same weights, each
    normalizing with its own shard's statistics; their gradients weighted by shard size, one
    optimizer; running statistics averaged at the end (what average_buffers does)."""
    case = CASES[name]()
    models = [case.new_model(seed=100) for _ in range(n)]
    flat_w, flat_g = models[0].getParameters()
    state = {}
    for step in range(steps):
        def feval(w):
            total = np.zeros_like(flat_g)
            loss = 0.0
            for r, m in enumerate(models):
                m_w, m_g = m.getParameters()
                m_w[...] = flat_w
                m_g[...] = 0
                rows = shard_bounds(case.batch, r, n)
                loss += case.loss_backward(m, step, rows) / n
                total += m_g * ((rows.stop - rows.start) / case.batch)
            flat_g[...] = total
            return loss, flat_g

        case.optimizer(feval, flat_w, case.config, state)
    buffers = [np.mean([m._buffers[i] for m in models], axis=0)
               for i in range(len(models[0]._buffers))]
    return flat_w.copy(), buffers
