"""Recurrence over a compiled one-step Model.

`Sequence` runs a step model over a sequence of any length T (graphc's `--unroll T` with a
free T): forward keeps exactly what each step's backward needs (the step's saved
activations), backward is full backpropagation through time, and there is one set of
parameters (the step model's).

`clone_many_times(model, T)` is char-rnn's helper done right: T models that share the
parameter and gradient buffers (no copies, ties cannot break), each with its own
activations, for users who drive the steps themselves.
"""
from __future__ import annotations

import numpy as np

from .module import Module


def clone_many_times(model: Module, steps: int) -> list[Module]:
    return [model] + [model.clone_shared() for _ in range(steps - 1)]


def _array_module(step: Module):
    """numpy, or the CUDA target's CuPy (a CudaModule's backend)."""
    backend = getattr(step, "_rt", None)
    return backend.xp if backend is not None else np


class Sequence:
    STEP: type = Module  # the generated step Model
    STATE: tuple = ()  # ((output index, input index), ...): output feeds the next step's input

    def __init__(self, dtype: str | None = None, seed: int | None = 0, step: Module | None = None):
        self.step = step if step is not None else self.STEP(dtype=dtype, seed=seed)
        self._state_in = {i: o for o, i in self.STATE}
        self._state_out = {o: i for o, i in self.STATE}
        self._saved = None
        self.output = None

    # parameters, modes and persistence are the step model's
    def getParameters(self):
        return self.step.getParameters()

    def parameters(self):
        return self.step.parameters()

    def zeroGradParameters(self):
        self.step.zeroGradParameters()

    def training(self):
        self.step.training()
        return self

    def evaluate(self):
        self.step.evaluate()
        return self

    def save(self, path):
        self.step.save(path)

    def load(self, path):
        self.step.load(path)
        return self

    def forward(self, *inputs):
        """Inputs in the step model's order: a T x ... array for each per-step input, the
        initial value for each state input. Returns per-step outputs stacked (T x ...) and
        the final states, in the step model's output order."""
        step = self.step
        n_in = len(step.INPUTS)
        if len(inputs) != n_in:
            raise ValueError(f"expected {n_in} inputs, got {len(inputs)}")
        xp = _array_module(step)
        arrays = [step._asarray(x) for x in inputs]
        seq = [i for i in range(n_in) if i not in self._state_in]
        lengths = {arrays[i].shape[0] if arrays[i].ndim else 0 for i in seq}
        if len(lengths) != 1 or 0 in lengths:
            raise ValueError(f"the per-step inputs must share one sequence length T >= 1 "
                             f"(first dimension); got {sorted(lengths)}")
        (steps,) = lengths
        state = {i: arrays[i] for i in self._state_in}
        per_step, saved = [], []
        for t in range(steps):
            xs = [state[i] if i in state else arrays[i][t] for i in range(n_in)]
            if t == 0:
                xs, squeeze = step._check_inputs(xs)
                if squeeze:
                    raise ValueError("sequence inputs need their batch dimension")
            outs = step._forward(*xs)
            saved.append((xs, step._saved))
            per_step.append(outs)
            for o, i in self.STATE:
                state[i] = outs[o]
        self._saved = saved
        result = tuple(per_step[-1][o] if o in self._state_out else xp.stack([p[o] for p in per_step])
                       for o in range(len(step.OUTPUTS)))
        self.output = result[0] if len(result) == 1 else result
        return self.output

    def backward(self, inputs, grad_outputs):
        """grad_outputs: T x ... for per-step outputs, the final state's gradient for state
        outputs. Returns gradients shaped like the inputs (None for integer inputs) and
        accumulates the parameter gradients of every step."""
        if self._saved is None:
            raise RuntimeError("backward() needs a forward() first")
        step = self.step
        grads = grad_outputs if isinstance(grad_outputs, (list, tuple)) else (grad_outputs,)
        if len(grads) != len(step.OUTPUTS):
            raise ValueError(f"expected {len(step.OUTPUTS)} output gradients, got {len(grads)}")
        grads = [step._asarray(g) for g in grads]
        xp = _array_module(step)
        steps = len(self._saved)
        carry = {o: grads[o] for o in self._state_out}  # gradient reaching each state output
        per_step_in = [None] * steps
        for t in reversed(range(steps)):
            xs, step._saved = self._saved[t]
            gys = tuple(carry[o] if o in self._state_out else grads[o][t]
                        for o in range(len(step.OUTPUTS)))
            gin = step._backward(xs, gys)
            per_step_in[t] = gin
            for o, i in self.STATE:
                carry[o] = gin[i]
        result = []
        for i in range(len(step.INPUTS)):
            if i in self._state_in:
                result.append(carry[self._state_in[i]])
            elif per_step_in[0][i] is None:
                result.append(None)
            else:
                result.append(xp.stack([g[i] for g in per_step_in]))
        return result[0] if len(result) == 1 else tuple(result)
