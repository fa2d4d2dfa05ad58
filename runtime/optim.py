"""Torch ``optim``'s closure API on numpy arrays (only numpy is imported).

Optimizers: ``sgd``, ``nag``, ``adam``, ``adagrad``, ``adadelta``, ``rmsprop``
and ``lbfgs`` (with the ``lswolfe`` line search and its ``polyinterp``
helper), each a transcription of the Torch7 ``optim`` package's ``.lua`` file.

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
too.  Unknown keys are ignored, as in Torch.
"""

import numpy as np

__all__ = ["sgd", "nag", "adam", "adagrad", "adadelta", "rmsprop", "lbfgs",
           "lswolfe", "polyinterp"]


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


def _check_x(x):
    if not isinstance(x, np.ndarray):
        raise TypeError(f"x must be a numpy array (updated in place), got {type(x).__name__}")
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"x must have a floating dtype, got {x.dtype}")


def _grad_array(dfdx, x):
    """The gradient returned by ``opfunc`` as an array of ``x``'s shape and dtype:
    the very array when it is writable and already fits (so that weight decay
    is added to it in place, as Torch does), otherwise a copy."""
    g = dfdx
    if not (isinstance(g, np.ndarray) and g.dtype == x.dtype and g.shape == x.shape
            and g.flags.writeable and not np.shares_memory(g, x)):
        g = np.array(g, dtype=x.dtype)
        if g.size != x.size:
            raise ValueError(f"opfunc returned a gradient of {g.size} element(s) for "
                             f"{x.size} parameter(s)")
        g = g.reshape(x.shape)
    return g


def _state_array(state, key, x, fill=0.0):
    a = state.get(key)
    if a is None:
        a = np.full(x.shape, fill, dtype=x.dtype)
        state[key] = a
    elif a.shape != x.shape:
        raise ValueError(f"state[{key!r}] has shape {a.shape} but x has shape {x.shape}")
    return a


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
    _check_x(x)
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
    g = _grad_array(dfdx, x)

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


def nag(opfunc, x, config=None, state=None):
    """Nesterov's accelerated gradient with Torch7 ``optim.nag`` semantics
    (Sutskever et al. 2013).

    The closure is evaluated at the **look-ahead point**: when a velocity
    ``v = state['dfdx']`` exists, ``x`` first moves to ``x + momentum * v`` and
    ``opfunc`` runs there (so the returned loss is the look-ahead loss).  Then,
    with ``g`` the gradient there (plus ``weightDecay * x``, added in place),
    ``v <- momentum * v - clr * g`` (``v`` starts at 0) and ``x <- x - clr * g``,
    which leaves ``x`` at ``x_old + v_new``.

    ``learningRate`` (1e-3), ``learningRateDecay`` (0; ``clr = lr / (1 +
    evalCounter * lrd)``), ``weightDecay`` (0), ``momentum`` (0.9, must be > 0),
    ``learningRates`` (per-parameter scales of the step).  ``dampening`` is read
    but unused, as in Torch.
    """
    _check_x(x)
    config = {} if config is None else config
    state = config if state is None else state
    lr = _get(config, "learningRate", "learning_rate", 1e-3)
    lrd = _get(config, "learningRateDecay", "learning_rate_decay", 0)
    wd = _get(config, "weightDecay", "weight_decay", 0)
    mom = _get(config, "momentum", "momentum", 0.9)
    lrs = _get(config, "learningRates", "learning_rates")
    if state.get("evalCounter") is None:
        state["evalCounter"] = 0
    nevals = state["evalCounter"]
    if mom <= 0:
        raise ValueError("Momentum must be positive for Nesterov Accelerated Gradient")

    # (1) step along the momentum, then evaluate there
    v = state.get("dfdx")
    if v is not None:
        x += x.dtype.type(mom) * v
    fx, dfdx = opfunc(x)
    g = _grad_array(dfdx, x)

    # (2) weight decay
    if wd != 0:
        g += x.dtype.type(wd) * x

    # (3) learning rate decay
    clr = lr / (1 + nevals * lrd)

    # (4) momentum
    if v is None:
        state["dfdx"] = v = np.zeros(x.shape, dtype=x.dtype)
    else:
        v *= x.dtype.type(mom)

    # (5) parameter update
    step = _per_param(lrs, x, "learningRates") * g if lrs is not None else g
    x -= x.dtype.type(clr) * step
    v -= x.dtype.type(clr) * step

    state["evalCounter"] = nevals + 1
    return x, [fx]


def adam(opfunc, x, config=None, state=None):
    """Adam (Kingma & Ba) with Torch7 ``optim.adam`` semantics.

    ``learningRate`` (1e-3), ``learningRateDecay`` (0), ``beta1`` (0.9),
    ``beta2`` (0.999), ``epsilon`` (1e-8), ``weightDecay`` (0, added to the
    gradient in place).  State: the step count ``t`` and the arrays ``m``,
    ``v``, ``denom``.  One call::

        clr = lr / (1 + t * lrd);  t += 1
        m = beta1 m + (1 - beta1) g;   v = beta2 v + (1 - beta2) g^2
        denom = sqrt(v) + epsilon
        x -= clr * sqrt(1 - beta2^t) / (1 - beta1^t) * m / denom

    (PyTorch divides ``sqrt(v)`` by ``sqrt(1 - beta2^t)`` *before* adding
    ``eps``, so the two agree exactly only when ``epsilon == 0``.)
    """
    _check_x(x)
    config = {} if config is None else config
    state = config if state is None else state
    lr = _get(config, "learningRate", "learning_rate", 1e-3)
    lrd = _get(config, "learningRateDecay", "learning_rate_decay", 0)
    beta1 = _get(config, "beta1", "beta1", 0.9)
    beta2 = _get(config, "beta2", "beta2", 0.999)
    eps = _get(config, "epsilon", "epsilon", 1e-8)
    wd = _get(config, "weightDecay", "weight_decay", 0)

    fx, dfdx = opfunc(x)
    g = _grad_array(dfdx, x)
    if wd != 0:
        g += x.dtype.type(wd) * x

    if state.get("t") is None:
        state["t"] = 0
    m = _state_array(state, "m", x)
    v = _state_array(state, "v", x)
    denom = _state_array(state, "denom", x)

    clr = lr / (1 + state["t"] * lrd)
    state["t"] = t = state["t"] + 1

    m *= x.dtype.type(beta1)
    m += x.dtype.type(1 - beta1) * g
    v *= x.dtype.type(beta2)
    v += x.dtype.type(1 - beta2) * g * g
    np.sqrt(v, out=denom)
    denom += x.dtype.type(eps)

    bias1 = 1 - beta1 ** t
    bias2 = 1 - beta2 ** t
    step = clr * np.sqrt(bias2) / bias1
    x -= x.dtype.type(step) * m / denom
    return x, [fx]


def adagrad(opfunc, x, config=None, state=None):
    """AdaGrad with Torch7 ``optim.adagrad`` semantics.

    ``learningRate`` (1e-3), ``learningRateDecay`` (0; ``clr = lr / (1 +
    evalCounter * lrd)``), ``weightDecay`` (0, added to the gradient in place).
    State: ``evalCounter``, ``paramVariance`` (the running sum of ``g^2``) and
    ``paramStd = sqrt(paramVariance) + 1e-10``; ``x -= clr * g / paramStd``.
    """
    _check_x(x)
    config = {} if config is None else config
    state = config if state is None else state
    lr = _get(config, "learningRate", "learning_rate", 1e-3)
    lrd = _get(config, "learningRateDecay", "learning_rate_decay", 0)
    wd = _get(config, "weightDecay", "weight_decay", 0)
    if state.get("evalCounter") is None:
        state["evalCounter"] = 0
    nevals = state["evalCounter"]

    fx, dfdx = opfunc(x)
    g = _grad_array(dfdx, x)
    if wd != 0:
        g += x.dtype.type(wd) * x

    clr = lr / (1 + nevals * lrd)
    var = _state_array(state, "paramVariance", x)
    std = _state_array(state, "paramStd", x)
    var += g * g
    np.sqrt(var, out=std)
    std += x.dtype.type(1e-10)
    x -= x.dtype.type(clr) * g / std

    state["evalCounter"] = nevals + 1
    return x, [fx]


def adadelta(opfunc, x, config=None, state=None):
    """ADADELTA (Zeiler 2012) with Torch7 ``optim.adadelta`` semantics.

    ``rho`` (0.9), ``eps`` (1e-6), ``weightDecay`` (0, added to the gradient in
    place) and ``learningRate`` (1; Torch7 has no learning rate, i.e. always 1;
    other values scale the step as PyTorch's ``lr`` does).  State:
    ``evalCounter``, ``paramVariance``, ``paramStd``, ``delta``, ``accDelta``::

        paramVariance = rho paramVariance + (1 - rho) g^2
        paramStd = sqrt(paramVariance + eps)
        delta = sqrt(accDelta + eps) / paramStd * g
        x -= learningRate * delta
        accDelta = rho accDelta + (1 - rho) delta^2
    """
    _check_x(x)
    config = {} if config is None else config
    state = config if state is None else state
    rho = _get(config, "rho", "rho", 0.9)
    eps = _get(config, "eps", "epsilon", 1e-6)
    wd = _get(config, "weightDecay", "weight_decay", 0)
    lr = _get(config, "learningRate", "learning_rate", 1)
    if state.get("evalCounter") is None:
        state["evalCounter"] = 0

    fx, dfdx = opfunc(x)
    g = _grad_array(dfdx, x)
    if wd != 0:
        g += x.dtype.type(wd) * x

    var = _state_array(state, "paramVariance", x)
    std = _state_array(state, "paramStd", x)
    delta = _state_array(state, "delta", x)
    acc = _state_array(state, "accDelta", x)
    t = x.dtype.type
    var *= t(rho)
    var += t(1 - rho) * g * g
    np.sqrt(var + t(eps), out=std)
    np.sqrt(acc + t(eps), out=delta)
    delta /= std
    delta *= g
    if lr == 1:
        x -= delta
    else:
        x -= t(lr) * delta
    acc *= t(rho)
    acc += t(1 - rho) * delta * delta

    state["evalCounter"] += 1
    return x, [fx]


def rmsprop(opfunc, x, config=None, state=None):
    """RMSprop with Torch7 ``optim.rmsprop`` semantics.

    ``learningRate`` (1e-2), ``alpha`` (0.99), ``epsilon`` (1e-8),
    ``weightDecay`` (0, added to the gradient in place), ``initialMean`` (0,
    the starting value of ``m``).  State: ``m`` and ``tmp``::

        m = alpha m + (1 - alpha) g^2
        tmp = sqrt(m) + epsilon          # epsilon outside the sqrt, as PyTorch
        x -= lr * g / tmp
    """
    _check_x(x)
    config = {} if config is None else config
    state = config if state is None else state
    lr = _get(config, "learningRate", "learning_rate", 1e-2)
    alpha = _get(config, "alpha", "alpha", 0.99)
    eps = _get(config, "epsilon", "epsilon", 1e-8)
    wd = _get(config, "weightDecay", "weight_decay", 0)
    mfill = _get(config, "initialMean", "initial_mean", 0)

    fx, dfdx = opfunc(x)
    g = _grad_array(dfdx, x)
    if wd != 0:
        g += x.dtype.type(wd) * x

    m = _state_array(state, "m", x, fill=mfill)
    tmp = _state_array(state, "tmp", x)
    m *= x.dtype.type(alpha)
    m += x.dtype.type(1 - alpha) * g * g
    np.sqrt(m, out=tmp)
    tmp += x.dtype.type(eps)
    x -= x.dtype.type(lr) * g / tmp
    return x, [fx]


# --------------------------------------------------------------------------
# L-BFGS with an optional strong-Wolfe line search


def _dot(a, b):
    return float(np.dot(np.ravel(a), np.ravel(b)))


def _eval_copy(opfunc, x):
    """``(f, g)`` with ``g`` a fresh array of ``x``'s shape (closures often
    return the same gradient buffer on every call)."""
    f, g = opfunc(x)
    g = np.array(g, dtype=x.dtype)
    if g.size != x.size:
        raise ValueError(f"opfunc returned a gradient of {g.size} element(s) for "
                         f"{x.size} parameter(s)")
    return float(f), g.reshape(x.shape)


def _polyroots(c):
    """Roots of the polynomial ``c`` (highest power first) as
    ``(real, imag)`` pairs, as optim's ``roots``: coefficients below 1e-12 in
    magnitude are zeroed, leading zeros dropped, trailing zeros become roots at
    0, the rest come from the eigenvalues of the companion matrix."""
    c = np.array(c, dtype=np.float64)
    c[np.abs(c) < 1e-12] = 0
    nonzero = np.flatnonzero(c)
    if nonzero.size == 0:
        return []                       # constant polynomial: no critical points
    c = c[nonzero[0]:]
    nz = len(c) - 1 - int(np.flatnonzero(c)[-1])
    c = c[:len(c) - nz]
    n = len(c) - 1
    roots = []
    if n == 1:
        roots.append((-c[1] / c[0], 0.0))
    elif n > 1:
        companion = np.diag(np.ones(n - 1), -1)
        companion[0] = -c[1:] / c[0]
        for e in np.linalg.eigvals(companion):
            roots.append((float(np.real(e)), float(np.imag(e))))
    roots.extend((0.0, 0.0) for _ in range(nz))
    return roots


def _polyval(p, x):
    pwr = len(p)
    val = 0.0
    for pc in p:
        pwr -= 1
        val = val + pc * x ** pwr
    return val


def polyinterp(points, xminBound=None, xmaxBound=None):
    """Minimum of the polynomial interpolating ``points`` (Torch7
    ``optim.polyinterp``).

    ``points`` is an ``(N, 3)`` array of ``(x, f(x), f'(x))`` triplets.  With 2
    points and no bounds this is the closed-form minimiser of the cubic, clamped
    to the two abscissae (their mean when the cubic has no real critical
    point).  Otherwise the degree ``2N-1`` polynomial through the points is
    fitted by least squares and its value is compared at ``xminBound``,
    ``xmaxBound`` (default: the smallest and largest abscissa), the abscissae and
    the real critical points inside the bounds; the best one is returned (the
    middle of the bounds when none qualifies).  Returns the position only.
    """
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 3 or pts.shape[0] < 1:
        raise ValueError(f"points must be an (N, 3) array of (x, f, g), got shape {pts.shape}")
    n_points = pts.shape[0]
    order = n_points * 2 - 1

    if n_points == 2 and xminBound is None and xmaxBound is None:
        lo = int(np.argmin(pts[:, 0]))
        hi = 1 - lo
        x1, f1, g1 = (float(v) for v in pts[lo])
        x2, f2, g2 = (float(v) for v in pts[hi])
        with np.errstate(all="ignore"):
            d1 = np.float64(g1 + g2) - 3 * (np.float64(f1) - f2) / (np.float64(x1) - x2)
            d2 = np.sqrt(d1 * d1 - np.float64(g1) * g2)
            if d2 == d2:                                    # real
                t = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
                return float(min(max(t, x1), x2))
        return float(np.mean(pts[:, 0]))

    xmin, xmax = float(pts[:, 0].min()), float(pts[:, 0].max())
    lo_b = xmin if xminBound is None else float(xminBound)
    hi_b = xmax if xmaxBound is None else float(xmaxBound)

    # constraints on the values, then on the derivatives
    A = np.zeros((n_points * 2, order + 1))
    b = np.zeros(n_points * 2)
    for i in range(n_points):
        xi = pts[i, 0]
        A[i] = [xi ** j for j in range(order, -1, -1)]
        b[i] = pts[i, 1]
        A[n_points + i, :order] = [(order - j) * xi ** (order - j - 1) for j in range(order)]
        b[n_points + i] = pts[i, 2]
    with np.errstate(all="ignore"):
        try:
            params = np.linalg.lstsq(A, b, rcond=None)[0]
        except np.linalg.LinAlgError:
            params = np.full(order + 1, np.nan)
    params[np.abs(params) <= 1e-12] = 0

    dparams = np.array([params[i] * (order - i) for i in range(order)])
    candidates = [(lo_b, 0.0), (hi_b, 0.0)] + [(float(v), 0.0) for v in pts[:, 0]]
    if not (np.isnan(dparams).any() or (dparams == np.inf).any()):
        candidates += _polyroots(dparams)

    fmin = np.inf
    min_pos = (lo_b + hi_b) / 2
    for re, im in candidates:
        if im == 0 and lo_b <= re <= hi_b:
            f_cp = _polyval(params, re)
            if f_cp < fmin:
                min_pos, fmin = re, f_cp
    return float(min_pos)


def lswolfe(opfunc, x, t, d, f, g, gtd, options=None):
    """Line search for the strong Wolfe conditions (Torch7 ``optim.lswolfe``,
    after minFunc): bracket a step, then zoom with cubic interpolation.

    ``x`` (updated in place to ``x + t d``), initial step ``t``, direction
    ``d``, and ``f``, ``g``, ``gtd = g.d`` at ``x``.  ``options``: ``c1``
    (1e-4, sufficient decrease), ``c2`` (0.9, curvature), ``tolX`` (1e-9,
    minimum progress), ``maxIter`` (20).  Returns ``(f_new, g_new, x, t,
    lsFuncEval)``.
    """
    options = {} if options is None else options
    c1 = _get(options, "c1", "c1", 1e-4)
    c2 = _get(options, "c2", "c2", 0.9)
    tol_x = _get(options, "tolX", "tol_x", 1e-9)
    max_iter = _get(options, "maxIter", "max_iter", 20)
    d = np.asarray(d, dtype=x.dtype).reshape(x.shape)
    g = np.asarray(g, dtype=x.dtype).reshape(x.shape)
    f, t, gtd = float(f), float(t), float(gtd)

    # evaluate objective and gradient using the initial step
    x_init = x.copy()
    x += t * d
    f_new, g_new = _eval_copy(opfunc, x)
    ls_func_eval = 1
    gtd_new = _dot(g_new, d)

    # bracket an interval containing a point satisfying the Wolfe criteria
    ls_iter, t_prev, done = 0, 0.0, False
    f_prev, g_prev, gtd_prev = f, g.copy(), gtd
    bracket = bracket_f = bracket_g = None
    while ls_iter < max_iter:
        if f_new > f + c1 * t * gtd or (ls_iter > 1 and f_new >= f_prev):
            bracket, bracket_f, bracket_g = [t_prev, t], [f_prev, f_new], [g_prev, g_new]
            break
        elif abs(gtd_new) <= -c2 * gtd:
            bracket, bracket_f, bracket_g = [t], [f_new], [g_new]
            done = True
            break
        elif gtd_new >= 0:
            bracket, bracket_f, bracket_g = [t_prev, t], [f_prev, f_new], [g_prev, g_new]
            break

        # interpolate (extrapolation allowed up to 10 t)
        tmp = t_prev
        t_prev = t
        min_step = t + 0.01 * (t - tmp)
        max_step = t * 10
        t = polyinterp([[tmp, f_prev, gtd_prev], [t, f_new, gtd_new]], min_step, max_step)

        # next step
        f_prev, g_prev, gtd_prev = f_new, g_new, gtd_new
        x[...] = x_init
        x += t * d
        f_new, g_new = _eval_copy(opfunc, x)
        ls_func_eval += 1
        gtd_new = _dot(g_new, d)
        ls_iter += 1

    # reached the maximum number of iterations?
    if ls_iter == max_iter:
        bracket, bracket_f, bracket_g = [0.0, t], [f, f_new], [g, g_new]

    # zoom phase: refine the bracket until a point satisfies the criteria
    insuf_progress = False
    while not done and ls_iter < max_iter:
        lo_pos = int(np.argmin(bracket_f))
        f_lo = bracket_f[lo_pos]
        hi_pos = 1 - lo_pos

        t = polyinterp([[bracket[0], bracket_f[0], _dot(bracket_g[0], d)],
                        [bracket[1], bracket_f[1], _dot(bracket_g[1], d)]])

        # make sure we are making sufficient progress
        b_max, b_min = max(bracket), min(bracket)
        if min(b_max - t, t - b_min) / (b_max - b_min) < 0.1:
            if insuf_progress or t >= b_max or t <= b_min:
                if abs(t - b_max) < abs(t - b_min):
                    t = b_max - 0.1 * (b_max - b_min)
                else:
                    t = b_min + 0.1 * (b_max - b_min)
                insuf_progress = False
            else:
                insuf_progress = True
        else:
            insuf_progress = False

        # evaluate the new point
        x[...] = x_init
        x += t * d
        f_new, g_new = _eval_copy(opfunc, x)
        ls_func_eval += 1
        gtd_new = _dot(g_new, d)
        ls_iter += 1
        if f_new > f + c1 * t * gtd or f_new >= f_lo:
            # Armijo condition not satisfied or not lower than the lowest point
            bracket[hi_pos], bracket_f[hi_pos], bracket_g[hi_pos] = t, f_new, g_new
        else:
            if abs(gtd_new) <= -c2 * gtd:
                done = True                     # Wolfe conditions satisfied
            elif gtd_new * (bracket[hi_pos] - bracket[lo_pos]) >= 0:
                # old HI becomes new LO
                bracket[hi_pos] = bracket[lo_pos]
                bracket_f[hi_pos] = bracket_f[lo_pos]
                bracket_g[hi_pos] = bracket_g[lo_pos]
            # new point becomes new LO
            bracket[lo_pos], bracket_f[lo_pos], bracket_g[lo_pos] = t, f_new, g_new

        if not done and abs((bracket[0] - bracket[1]) * gtd_new) < tol_x:
            break

    lo_pos = int(np.argmin(bracket_f))
    t = bracket[lo_pos]
    f_new = bracket_f[lo_pos]
    g_new = bracket_g[lo_pos].copy()
    x[...] = x_init
    x += t * d
    return f_new, g_new, x, t, ls_func_eval


def lbfgs(opfunc, x, config=None, state=None):
    """Limited-memory BFGS with Torch7 ``optim.lbfgs`` semantics (after
    minFunc).  Returns ``(x, f_hist, currentFuncEval)``: ``f_hist[0]`` is the
    loss before optimising and ``f_hist[-1]`` the last one evaluated.

    Config: ``maxIter`` (20 iterations per call), ``maxEval`` (1.25 maxIter
    closure evaluations), ``tolFun`` (1e-5, stop when ``sum|g| <= tolFun``),
    ``tolX`` (1e-9: stop when ``sum|t d| <= tolX``, when ``|f - f_old| <
    tolX``, or when ``g.d > -tolX``), ``nCorrection`` (100 stored pairs),
    ``learningRate`` (1; the step is ``learningRate``, or ``min(1, 1/sum|g|)
    learningRate`` on the very first iteration), ``lineSearch`` (None: fixed
    steps, and the closure is not re-evaluated after the last step of a call;
    or a callable with ``lswolfe``'s signature, or the string ``"lswolfe"``),
    ``lineSearchOptions`` (passed to it).

    State (``config`` by default) carries ``funcEval``, ``nIter`` and the
    history across calls: ``old_dirs`` (the steps ``s``), ``old_stps`` (the
    gradient changes ``y``; Torch's names), ``Hdiag``, ``d``, ``t``, ``g_old``,
    ``f_old``.  A later call continues the same L-BFGS run.
    """
    _check_x(x)
    config = {} if config is None else config
    state = config if state is None else state
    max_iter = int(_get(config, "maxIter", "max_iter", 20))
    max_eval = _get(config, "maxEval", "max_eval", max_iter * 1.25)
    tol_fun = _get(config, "tolFun", "tol_fun", 1e-5)
    tol_x = _get(config, "tolX", "tol_x", 1e-9)
    n_correction = int(_get(config, "nCorrection", "n_correction", 100))
    line_search = _get(config, "lineSearch", "line_search")
    ls_options = _get(config, "lineSearchOptions", "line_search_options")
    learning_rate = _get(config, "learningRate", "learning_rate", 1)
    if isinstance(line_search, str):
        if line_search not in ("lswolfe", "strong_wolfe"):
            raise ValueError(f"unknown lineSearch {line_search!r} (use 'lswolfe' or a callable)")
        line_search = lswolfe
    elif line_search is not None and not callable(line_search):
        raise TypeError(f"lineSearch must be callable, got {type(line_search).__name__}")

    state["funcEval"] = state.get("funcEval") or 0
    state["nIter"] = state.get("nIter") or 0

    # evaluate the initial f(x) and df/dx
    f, g = _eval_copy(opfunc, x)
    f_hist = [f]
    current_func_eval = 1
    state["funcEval"] += 1

    # optimality of the initial point
    if np.abs(g).sum() <= tol_fun:
        return x, f_hist, current_func_eval

    d = state.get("d")
    t = state.get("t")
    old_dirs = state.get("old_dirs")
    old_stps = state.get("old_stps")
    h_diag = state.get("Hdiag")
    g_old = state.get("g_old")
    f_old = state.get("f_old")

    n_iter = 0
    while n_iter < max_iter:
        n_iter += 1
        state["nIter"] += 1

        # compute the descent direction
        if state["nIter"] == 1:
            d = -g
            old_dirs, old_stps, h_diag = [], [], 1.0
        else:
            y = g - g_old
            s = d * (0.0 if t is None else t)   # t is unset if the last call never stepped
            ys = _dot(y, s)
            if ys > 1e-10:
                if len(old_dirs) == n_correction:
                    old_dirs.pop(0)         # limited memory: drop the oldest pair
                    old_stps.pop(0)
                old_dirs.append(s)
                old_stps.append(y)
                h_diag = ys / _dot(y, y)
            # the approximate inverse Hessian times the gradient (two loops)
            k = len(old_dirs)
            ro = [1 / _dot(old_stps[i], old_dirs[i]) for i in range(k)]
            al = [0.0] * k
            q = -g
            for i in range(k - 1, -1, -1):
                al[i] = _dot(old_dirs[i], q) * ro[i]
                q -= al[i] * old_stps[i]
            r = q * h_diag
            for i in range(k):
                be_i = _dot(old_stps[i], r) * ro[i]
                r += (al[i] - be_i) * old_dirs[i]
            d = r
        g_old = g.copy()
        f_old = f

        # directional derivative: can progress be made along d?
        gtd = _dot(g, d)
        if gtd > -tol_x:
            break

        # initial guess for the step size
        if state["nIter"] == 1:
            t = min(1.0, 1.0 / float(np.abs(g).sum())) * learning_rate
        else:
            t = learning_rate

        ls_func_eval = 0
        if line_search is not None:
            f, g, x_new, t, ls_func_eval = line_search(opfunc, x, t, d, f, g, gtd, ls_options)
            if x_new is not x:                  # a line search that returns a new array
                x[...] = np.reshape(x_new, x.shape)
            g = np.array(g, dtype=x.dtype).reshape(x.shape)
            f = float(f)
            f_hist.append(f)
        else:
            x += x.dtype.type(t) * d
            if n_iter != max_iter:
                # re-evaluate only when not in the last iteration: in a stochastic
                # setting there is no use evaluating the function here
                f, g = _eval_copy(opfunc, x)
                ls_func_eval = 1
                f_hist.append(f)

        current_func_eval += ls_func_eval
        state["funcEval"] += ls_func_eval

        # stopping conditions
        if n_iter == max_iter:
            break
        if current_func_eval >= max_eval:
            break
        if np.abs(g).sum() <= tol_fun:
            break
        if np.abs(d * t).sum() <= tol_x:
            break
        if abs(f - f_old) < tol_x:
            break

    state["old_dirs"] = old_dirs
    state["old_stps"] = old_stps
    state["Hdiag"] = h_diag
    state["g_old"] = g_old
    state["f_old"] = f_old
    state["t"] = t
    state["d"] = d
    return x, f_hist, current_func_eval
