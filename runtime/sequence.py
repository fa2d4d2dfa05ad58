"""Recurrence over a compiled one-step Model.

`Sequence` runs a step model over a sequence of any length T (graphc's `--unroll T` with a
free T): forward keeps exactly what each step's backward needs (the step's saved
activations), backward is full backpropagation through time, and there is one set of
parameters (the step model's).

When the compiler split the step (STEP's Model = PREFIX, which does not depend on the state,
then REST), the prefix runs once over all steps' rows (T*B: one GEMM for the input
projection instead of T) and only REST runs per step; results are the same.

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
    PREFIX: type | None = None  # the state-independent first part of the step (see above)
    REST: type | None = None
    PREFIX_INPUTS: tuple = ()  # the step input index of each PREFIX input
    REST_INPUTS: tuple = ()  # per REST input: ("prefix", PREFIX output) or ("input", step input)

    def __init__(self, dtype: str | None = None, seed: int | None = 0, step: Module | None = None,
                 every_step: bool = False):
        """every_step: state outputs are returned at every step (T x B x ..., their last row
        the final state), as per-step outputs are, so a loss can read each step's state; the
        gradients given to backward are then T x ... for them too."""
        self.step = step if step is not None else self.STEP(dtype=dtype, seed=seed)
        self.every_step = bool(every_step)
        self._state_in = {i: o for o, i in self.STATE}
        self._state_out = {o: i for o, i in self.STATE}
        self._saved = None
        self._prefix_saved = None
        self.output = None
        self._parts = None

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

    def load_t7(self, path, entry=None, order="structure"):
        """The step module's weights from a Torch7 file (Module.load_t7)."""
        self.step.load_t7(path, entry, order)
        return self

    def _split_parts(self, step):
        """(PREFIX, REST) models sharing the step model's parameters and mode, or None."""
        if self.PREFIX is None or type(step) is not self.STEP:
            return None
        if self._parts is None or self._parts[2] is not step:
            made = []
            for cls in (self.PREFIX, self.REST):
                part = object.__new__(cls)
                part.__dict__.update(step.__dict__)  # the same parameter and gradient arrays
                part._saved, part._scratch = None, {}
                made.append(part)
            self._parts = (made[0], made[1], step)
        prefix, rest, _ = self._parts
        prefix.train = rest.train = step.train
        return prefix, rest

    def forward(self, *inputs):
        """Inputs in the step model's order: a T x ... array for each per-step input, the
        initial value for each state input. Returns per-step outputs stacked (T x ...) and
        the final states, in the step model's output order."""
        step = self.step
        n_in = len(step.INPUTS)
        if len(inputs) != n_in:
            raise ValueError(f"expected {n_in} inputs, got {len(inputs)}")
        xp = _array_module(step)
        arrays = step._int_indices([step._asarray(x) for x in inputs])
        seq = [i for i in range(n_in) if i not in self._state_in]
        lengths = {arrays[i].shape[0] if arrays[i].ndim else 0 for i in seq}
        if len(lengths) != 1 or 0 in lengths:
            raise ValueError(f"the per-step inputs must share one sequence length T >= 1 "
                             f"(first dimension); got {sorted(lengths)}")
        (steps,) = lengths
        state = {i: arrays[i] for i in self._state_in}
        first = [state[i] if i in state else arrays[i][0] for i in range(n_in)]
        _, squeeze = step._check_inputs(first)
        if squeeze:
            raise ValueError("sequence inputs need their batch dimension")
        batch = next((x.shape[0] for x, (_, sh, _) in zip(first, step.INPUTS) if sh and sh[0] == "B"), 1)
        step.check_activation_size(batch, steps)  # every step's values are kept for backward
        per_step, saved = [], []
        parts = self._split_parts(step)
        self._prefix_saved = None
        if parts is None:
            sources, run = [("input", i) for i in range(n_in)], step
        else:
            prefix, run = parts
            sources = self.REST_INPUTS
            rows = [arrays[i].reshape((-1,) + arrays[i].shape[2:]) for i in self.PREFIX_INPUTS]
            projected = [p.reshape((steps, -1) + p.shape[1:]) for p in prefix._forward(*rows)]
            self._projected_shapes = [p.shape for p in projected]
            self._prefix_saved = (rows, prefix._saved)
        for t in range(steps):
            xs = [projected[k][t] if kind == "prefix" else state[k] if k in state else arrays[k][t]
                  for kind, k in sources]
            outs = run._forward(*xs)
            if run is not step:  # keep no views of the projection that backward never reads
                xs = [x if keep or kind != "prefix" else None
                      for x, keep, (kind, _) in zip(xs, run.BACKWARD_READS, sources)]
            saved.append((xs, run._saved))
            per_step.append(outs)
            for o, i in self.STATE:
                state[i] = outs[o]
        self._saved = saved
        result = tuple(per_step[-1][o] if o in self._state_out and not self.every_step
                       else xp.stack([p[o] for p in per_step]) for o in range(len(step.OUTPUTS)))
        self._output_shapes = [r.shape for r in result]  # what backward's gradients must match
        self.output = result[0] if len(result) == 1 else result
        return self.output

    def _check_grads(self, grads):
        """Each output gradient as an array shaped exactly like the output forward() gave
        (T x B x ... per step, B x ... for a final state) in the model's dtype: anything else
        (no T, a B of 1 or a scalar that numpy would broadcast, integers) raises ValueError
        naming the output."""
        step = self.step
        checked = []
        for o, (g, want) in enumerate(zip(grads, self._output_shapes)):
            name = step.OUTPUTS[o][0]
            if g is None:
                raise ValueError(f"gradient of output '{name}': expected an array of shape "
                                 f"{'x'.join(map(str, want))}, got None")
            g = step._asarray(g)
            if tuple(g.shape) != tuple(want):
                what = ("final-state" if o in self._state_out and not self.every_step
                        else "per-step (T x B x ...)")
                raise ValueError(f"gradient of output '{name}' ({what}): expected shape "
                                 f"{'x'.join(map(str, want))} (like forward's output), got "
                                 f"{'x'.join(map(str, g.shape)) or 'scalar'}")
            if g.dtype != step.dtype:
                raise ValueError(f"gradient of output '{name}': expected dtype {step.dtype}, "
                                 f"got {g.dtype}")
            checked.append(g)
        return checked

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
        grads = self._check_grads(grads)
        xp = _array_module(step)
        parts = self._split_parts(step)
        saved = self._saved
        prefix, run = parts if parts is not None else (None, step)
        sources = self.REST_INPUTS if parts is not None else [("input", i) for i in range(len(step.INPUTS))]
        n_projected = len(prefix.OUTPUTS) if prefix is not None else 0
        # step input -> its place in a per-step gradient (after those of PREFIX's outputs)
        where = {k: j - n_projected for j, (kind, k) in enumerate(sources) if kind == "input"}
        steps = len(saved)
        # the gradient reaching each state output from the later steps
        carry = {o: None if self.every_step else grads[o] for o in self._state_out}
        per_step_in = [None] * steps
        g_projected = [None] * n_projected  # REST's first inputs are PREFIX's outputs
        for t in reversed(range(steps)):
            xs, run._saved = saved[t]
            gys = tuple(self._state_grad(carry[o], grads[o], t) if o in self._state_out
                        else grads[o][t] for o in range(len(step.OUTPUTS)))
            gin = run._backward(xs, gys)
            for k in range(n_projected):  # into one T x ... array as we go (no stack at the end)
                if g_projected[k] is None:
                    g_projected[k] = xp.zeros(self._projected_shapes[k], step.dtype)
                if gin[k] is not None:
                    g_projected[k][t] = gin[k]
            per_step_in[t] = gin[n_projected:]
            for o, i in self.STATE:
                carry[o] = per_step_in[t][where[i]]
        from_prefix = {}
        if prefix is not None:  # the prefix's backward over all steps' rows at once
            rows, prefix._saved = self._prefix_saved
            g_rows = [g.reshape((-1,) + g.shape[2:]) for g in g_projected]
            for i, g in zip(self.PREFIX_INPUTS, prefix._backward(rows, g_rows)):
                if g is not None:
                    from_prefix[i] = g.reshape((steps, -1) + g.shape[1:])
        result = []
        for i, (_, _, kind) in enumerate(step.INPUTS):
            if i in self._state_in:
                result.append(carry[self._state_in[i]])
                continue
            g = None
            if i in where and per_step_in[0][where[i]] is not None:
                g = xp.stack([gin[where[i]] for gin in per_step_in])
            if i in from_prefix:
                g = from_prefix[i] if g is None else g + from_prefix[i]
            if g is None and kind == "float" and i not in where and i not in self.PREFIX_INPUTS:
                g = xp.zeros_like(step._asarray(inputs[i]))  # the step model does not read it
            result.append(g)
        return result[0] if len(result) == 1 else tuple(result)

    def _state_grad(self, carried, given, t):
        """A state output's gradient at step t: what the later steps send back, plus (with
        every_step) the gradient given for that step's value."""
        if not self.every_step:
            return carried
        return given[t] if carried is None else carried + given[t]
