"""Torch ``optim``'s closure API on numpy arrays (only numpy is imported).

An optimizer is called with a closure ``opfunc(x) -> (fx, dfdx)`` that
evaluates the loss and its gradient at ``x``; it updates ``x`` **in place** and
returns ``(x, [fx])`` where ``fx`` is the loss *before* the update.  ``x`` is
normally the flat parameter view returned by a model's ``getParameters()``, so
updating it in place updates the model.  ``state`` (which defaults to
``config``, the very same dict) carries ``evalCounter`` and the momentum buffer
``dfdx`` from one call to the next.  Example::

    params, grads = model.getParameters()
    config = {"learningRate": 0.1, "momentum": 0.9}
    def feval(x):
        grads[...] = 0
        loss = crit.forward(model.forward(inp), tgt)
        model.backward(inp, crit.backward(model.output, tgt))
        return loss, grads
    for _ in range(100):
        _, (loss,) = optim.sgd(feval, params, config)

Config keys use Torch's camelCase names (``learningRate``, ``learningRateDecay``,
``weightDecay``, ``weightDecays``, ``momentum``, ``dampening``, ``nesterov``,
``learningRates``); snake_case spellings (``learning_rate`` ...) are accepted
too.
"""

import numpy as np

__all__ = ["sgd"]


def _get(config, camel, snake, default=None):
    value = config.get(camel)
    if value is None:
        value = config.get(snake)
    return default if value is None else value


def _per_param(values, x, name):
    a = np.asarray(values, dtype=x.dtype)
    if a.size != x.size:
        raise ValueError(f"{name} has {a.size} element(s) but x has {x.size}")
    return a.reshape(x.shape)


def sgd(opfunc, x, config=None, state=None):
    """Stochastic gradient descent with Torch7 ``optim.sgd`` semantics.

    * ``learningRate`` (1e-3), ``learningRateDecay`` (0): the step size is
      ``lr / (1 + evalCounter * lrd)`` with ``evalCounter`` counted before
      this call;
    * ``weightDecay`` (0) adds ``wd * x`` to the gradient, or ``weightDecays``
      (an array like ``x``) adds ``wds * x`` (only one of them may be given);
    * ``momentum`` (0), ``dampening`` (default: ``momentum``): the buffer
      ``state['dfdx']`` starts as a copy of the gradient and then becomes
      ``momentum * buf + (1 - dampening) * dfdx``;
    * ``nesterov`` (False, needs ``momentum > 0`` and ``dampening == 0``):
      the step uses ``dfdx + momentum * buf`` instead of ``buf``;
    * ``learningRates`` (an array like ``x``) scales the step per parameter.

    Like Torch, weight decay and the Nesterov term are added to the gradient
    array returned by ``opfunc`` in place when it is a writable array of ``x``'s
    shape and dtype (otherwise to a copy).
    """
    if not isinstance(x, np.ndarray):
        raise TypeError(f"x must be a numpy array (updated in place), got {type(x).__name__}")
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"x must have a floating dtype, got {x.dtype}")
    config = {} if config is None else config
    state = config if state is None else state

    lr = _get(config, "learningRate", "learning_rate", 1e-3)
    lrd = _get(config, "learningRateDecay", "learning_rate_decay", 0)
    wd = _get(config, "weightDecay", "weight_decay", 0)
    mom = _get(config, "momentum", "momentum", 0)
    damp = _get(config, "dampening", "dampening", mom)
    nesterov = bool(_get(config, "nesterov", "nesterov", False))
    lrs = _get(config, "learningRates", "learning_rates")
    wds = _get(config, "weightDecays", "weight_decays")

    if state.get("evalCounter") is None:
        state["evalCounter"] = 0
    nevals = state["evalCounter"]
    if nesterov and not (mom > 0 and damp == 0):
        raise ValueError("Nesterov momentum requires a momentum and zero dampening")
    if wd != 0 and wds is not None:
        raise ValueError("Only one of wd and wds can be specified")

    # (1) evaluate f(x) and df/dx
    fx, dfdx = opfunc(x)
    g = dfdx
    if not (isinstance(g, np.ndarray) and g.dtype == x.dtype and g.shape == x.shape
            and g.flags.writeable and not np.shares_memory(g, x)):
        g = np.array(g, dtype=x.dtype)
        if g.size != x.size:
            raise ValueError(f"opfunc returned a gradient of {g.size} element(s) for "
                             f"{x.size} parameter(s)")
        g = g.reshape(x.shape)

    # (2) weight decay, single or per parameter
    if wd != 0:
        g += x.dtype.type(wd) * x
    elif wds is not None:
        g += _per_param(wds, x, "weightDecays") * x

    # (3) momentum
    if mom != 0:
        buf = state.get("dfdx")
        if buf is None:
            state["dfdx"] = buf = g.copy()
        else:
            buf *= x.dtype.type(mom)
            buf += x.dtype.type(1 - damp) * g
        if nesterov:
            g += x.dtype.type(mom) * buf
        else:
            g = buf

    # (4) learning rate decay (annealing)
    clr = lr / (1 + nevals * lrd)

    # (5) parameter update, single or per-parameter learning rates
    if lrs is not None:
        x -= x.dtype.type(clr) * (_per_param(lrs, x, "learningRates") * g)
    else:
        x -= x.dtype.type(clr) * g

    # (6) evaluation counter
    state["evalCounter"] = nevals + 1
    return x, [fx]
