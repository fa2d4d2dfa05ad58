"""graphc_runtime.optim: adam, adagrad, adadelta, rmsprop, nag, lbfgs (+ lswolfe,
polyinterp) against straight transcriptions of the Torch7 optim .lua files and
against PyTorch where the semantics match (noted where they differ)."""

import numpy as np
import pytest

from graphc_runtime import optim

import torch  # noqa: E402  (the test oracle; installed by .[test])

# ==========================================================================
# problems

_A = np.array([[4.0, 1.0, 0.5, 0.0, 0.2],
               [1.0, 3.0, 0.2, 0.1, 0.0],
               [0.5, 0.2, 2.0, 0.3, 0.1],
               [0.0, 0.1, 0.3, 1.5, 0.4],
               [0.2, 0.0, 0.1, 0.4, 2.5]])
_B = np.array([1.0, -2.0, 0.5, 3.0, -1.0])
_X0 = np.array([0.3, -0.7, 1.2, 0.1, -1.5])


def _quad(x):
    return 0.5 * x @ _A @ x - _B @ x, _A @ x - _B


def _rosen(x):
    f = np.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)
    g = np.zeros_like(x)
    g[:-1] += -400 * x[:-1] * (x[1:] - x[:-1] ** 2) - 2 * (1 - x[:-1])
    g[1:] += 200 * (x[1:] - x[:-1] ** 2)
    return f, g


_R0 = np.array([-1.2, 1.0, -0.5, 0.8, 1.5])


def _t(a):
    return torch.tensor(np.asarray(a), dtype=torch.float64)


# ==========================================================================
# reference transcriptions of optim/*.lua (plain numpy, no in-place tricks)


def _ref_adam(x, cfg, st, f=_quad):
    lr, lrd = cfg.get("learningRate", 1e-3), cfg.get("learningRateDecay", 0)
    b1, b2 = cfg.get("beta1", 0.9), cfg.get("beta2", 0.999)
    eps, wd = cfg.get("epsilon", 1e-8), cfg.get("weightDecay", 0)
    fx, g = f(x)
    if wd != 0:
        g = g + wd * x
    st.setdefault("t", 0)
    st.setdefault("m", np.zeros_like(x))
    st.setdefault("v", np.zeros_like(x))
    clr = lr / (1 + st["t"] * lrd)
    st["t"] += 1
    st["m"] = b1 * st["m"] + (1 - b1) * g
    st["v"] = b2 * st["v"] + (1 - b2) * g * g
    denom = np.sqrt(st["v"]) + eps
    step = clr * np.sqrt(1 - b2 ** st["t"]) / (1 - b1 ** st["t"])
    return x - step * st["m"] / denom, fx


def _ref_adagrad(x, cfg, st, f=_quad):
    lr, lrd = cfg.get("learningRate", 1e-3), cfg.get("learningRateDecay", 0)
    wd = cfg.get("weightDecay", 0)
    n = st.setdefault("evalCounter", 0)
    fx, g = f(x)
    if wd != 0:
        g = g + wd * x
    clr = lr / (1 + n * lrd)
    st["paramVariance"] = st.get("paramVariance", np.zeros_like(x)) + g * g
    std = np.sqrt(st["paramVariance"]) + 1e-10
    st["evalCounter"] = n + 1
    return x - clr * g / std, fx


def _ref_adadelta(x, cfg, st, f=_quad):
    rho, eps, wd = cfg.get("rho", 0.9), cfg.get("eps", 1e-6), cfg.get("weightDecay", 0)
    lr = cfg.get("learningRate", 1)
    fx, g = f(x)
    if wd != 0:
        g = g + wd * x
    var = rho * st.get("paramVariance", np.zeros_like(x)) + (1 - rho) * g * g
    acc = st.get("accDelta", np.zeros_like(x))
    delta = np.sqrt(acc + eps) / np.sqrt(var + eps) * g
    st["paramVariance"] = var
    st["accDelta"] = rho * acc + (1 - rho) * delta * delta
    return x - lr * delta, fx


def _ref_rmsprop(x, cfg, st, f=_quad):
    lr, alpha = cfg.get("learningRate", 1e-2), cfg.get("alpha", 0.99)
    eps, wd = cfg.get("epsilon", 1e-8), cfg.get("weightDecay", 0)
    fx, g = f(x)
    if wd != 0:
        g = g + wd * x
    m = st.get("m", np.full_like(x, cfg.get("initialMean", 0)))
    st["m"] = alpha * m + (1 - alpha) * g * g
    return x - lr * g / (np.sqrt(st["m"]) + eps), fx


def _ref_nag(x, cfg, st, f=_quad):
    lr, lrd = cfg.get("learningRate", 1e-3), cfg.get("learningRateDecay", 0)
    wd, mom = cfg.get("weightDecay", 0), cfg.get("momentum", 0.9)
    lrs = cfg.get("learningRates")
    n = st.setdefault("evalCounter", 0)
    if "dfdx" in st:
        x = x + mom * st["dfdx"]
    fx, g = f(x)
    if wd != 0:
        g = g + wd * x
    clr = lr / (1 + n * lrd)
    v = st["dfdx"] * mom if "dfdx" in st else np.zeros_like(x)
    step = lrs * g if lrs is not None else g
    st["dfdx"] = v - clr * step
    st["evalCounter"] = n + 1
    return x - clr * step, fx


_OPTS = {
    "adam": (optim.adam, _ref_adam, [
        {},
        {"learningRate": 0.1},
        {"learningRate": 0.05, "beta1": 0.8, "beta2": 0.9, "epsilon": 1e-3,
         "weightDecay": 0.1, "learningRateDecay": 0.2},
    ]),
    "adagrad": (optim.adagrad, _ref_adagrad, [
        {},
        {"learningRate": 0.3, "learningRateDecay": 0.1, "weightDecay": 0.05},
    ]),
    "adadelta": (optim.adadelta, _ref_adadelta, [
        {},
        {"rho": 0.8, "eps": 1e-4, "weightDecay": 0.1},
        {"learningRate": 0.5},
    ]),
    "rmsprop": (optim.rmsprop, _ref_rmsprop, [
        {},
        {"learningRate": 0.05, "alpha": 0.9, "epsilon": 1e-3, "weightDecay": 0.1},
        {"initialMean": 1.0},
    ]),
    "nag": (optim.nag, _ref_nag, [
        {},
        {"learningRate": 0.05, "momentum": 0.7, "weightDecay": 0.1, "learningRateDecay": 0.3},
        {"learningRate": 0.05, "learningRates": np.array([1.0, 0.5, 2.0, 0.0, 1.5])},
    ]),
}
_OPT_CASES = [(name, i) for name in sorted(_OPTS) for i in range(len(_OPTS[name][2]))]


@pytest.mark.parametrize("name,i", _OPT_CASES)
@pytest.mark.parametrize("problem", ["quad", "rosen"])
def test_vs_lua_transcription(name, i, problem):
    fn, ref, configs = _OPTS[name]
    f, x0 = (_quad, _X0) if problem == "quad" else (_rosen, _R0)
    config = dict(configs[i])
    if problem == "rosen" and name == "nag":                # plain momentum blows up there
        config["learningRate"] = 2e-4
    ref_config = dict(config)
    x = x0.copy()
    ptr = x.__array_interface__["data"][0]
    ref_x, ref_state = x0.copy(), {}
    for _ in range(10):
        x_out, fxs = fn(f, x, config)
        assert x_out is x and isinstance(fxs, list) and len(fxs) == 1
        ref_x, ref_f = ref(ref_x, ref_config, ref_state, f)
        assert fxs[0] == pytest.approx(ref_f, rel=1e-12)
    assert x.__array_interface__["data"][0] == ptr          # updated in place
    assert np.all(np.isfinite(x))
    np.testing.assert_allclose(x, ref_x, rtol=1e-12, atol=1e-14)
    # state defaults to config and carries the optimizer's buffers
    for key, value in ref_state.items():
        np.testing.assert_allclose(config[key], value, rtol=1e-12, atol=1e-14)


def test_state_keys_and_counters():
    cfg = {"learningRate": 0.1}
    for _ in range(3):
        optim.adam(_quad, _X0.copy(), cfg)
    assert cfg["t"] == 3 and {"m", "v", "denom"} <= set(cfg)
    np.testing.assert_allclose(cfg["denom"], np.sqrt(cfg["v"]) + 1e-8)
    cfg = {}
    optim.adagrad(_quad, _X0.copy(), cfg)
    assert cfg["evalCounter"] == 1 and {"paramVariance", "paramStd"} <= set(cfg)
    np.testing.assert_allclose(cfg["paramStd"], np.sqrt(cfg["paramVariance"]) + 1e-10)
    cfg = {}
    optim.adadelta(_quad, _X0.copy(), cfg)
    assert {"paramVariance", "paramStd", "delta", "accDelta", "evalCounter"} <= set(cfg)
    cfg = {}
    optim.rmsprop(_quad, _X0.copy(), cfg)
    assert {"m", "tmp"} <= set(cfg)
    cfg = {}
    optim.nag(_quad, _X0.copy(), cfg)
    assert cfg["evalCounter"] == 1 and "dfdx" in cfg


@pytest.mark.parametrize("name", sorted(_OPTS))
def test_separate_state_float32_flat_view_snake_case(name):
    fn, ref, _ = _OPTS[name]
    storage = np.zeros(7, dtype=np.float32)
    x = storage[1:6]
    x[:] = _X0
    config, state = {"learning_rate": 0.05}, {}
    for _ in range(4):
        xo, (fx,) = fn(lambda v: _quad(v.astype(np.float64)), x, config, state)
        assert xo is x
    assert x.dtype == np.float32 and storage[0] == 0 and storage[6] == 0
    assert set(config) == {"learning_rate"}               # state went to `state`
    for v in state.values():
        if isinstance(v, np.ndarray):
            assert v.dtype == np.float32
    rx, rs = _X0.copy(), {}
    for _ in range(4):
        rx, _ = ref(rx, {"learningRate": 0.05}, rs)
    np.testing.assert_allclose(x, rx, rtol=2e-5, atol=1e-6)


def test_weight_decay_is_added_to_the_closure_gradient_in_place_like_torch():
    grad = np.zeros(5)

    def feval(v):
        grad[...] = _quad(v)[1]
        return 0.0, grad

    for fn in (optim.adam, optim.adagrad, optim.adadelta, optim.rmsprop, optim.nag):
        x = _X0.copy()
        fn(feval, x, {"weightDecay": 0.5})
        np.testing.assert_allclose(grad, _quad(_X0)[1] + 0.5 * _X0)


def test_errors():
    with pytest.raises(ValueError, match="Momentum must be positive"):
        optim.nag(_quad, _X0.copy(), {"momentum": 0})
    with pytest.raises(TypeError):
        optim.adam(_quad, list(_X0))
    with pytest.raises(TypeError):
        optim.rmsprop(_quad, np.arange(5))
    with pytest.raises(ValueError, match="gradient of 3"):
        optim.adagrad(lambda v: (0.0, np.zeros(3)), _X0.copy())
    with pytest.raises(ValueError, match="shape"):
        optim.adam(_quad, _X0.copy(), {"m": np.zeros(3), "v": np.zeros(3), "t": 1})


# ==========================================================================
# vs PyTorch's functional optimizers (torch.optim.<name>.<name>; the same code
# as Optimizer.step without importing torch._dynamo)


def _torch_steps(kind, x0, steps, f=_quad, **kw):
    from torch.optim.adadelta import adadelta
    from torch.optim.adagrad import adagrad
    from torch.optim.adam import adam
    from torch.optim.rmsprop import rmsprop

    p = _t(x0)
    z = lambda: torch.zeros_like(p)                      # noqa: E731
    step = torch.tensor(0.0, dtype=torch.float64)
    bufs = [z(), z()]
    for k in range(steps):
        g = _t(f(p.numpy())[1])
        if kind == "adam":
            eps = kw["eps"](k + 1) if callable(kw["eps"]) else kw["eps"]
            adam([p], [g], [bufs[0]], [bufs[1]], [], [step], foreach=False, amsgrad=False,
                 beta1=kw["beta1"], beta2=kw["beta2"], lr=kw["lr"],
                 weight_decay=kw["weight_decay"], eps=eps, maximize=False)
        elif kind == "adagrad":
            adagrad([p], [g], [bufs[0]], [step], foreach=False, lr=kw["lr"],
                    weight_decay=kw["weight_decay"], lr_decay=kw["lr_decay"], eps=1e-10,
                    maximize=False)
        elif kind == "adadelta":
            adadelta([p], [g], [bufs[0]], [bufs[1]], [step], foreach=False, lr=kw["lr"],
                     rho=kw["rho"], eps=kw["eps"], weight_decay=kw["weight_decay"],
                     maximize=False)
        elif kind == "rmsprop":
            rmsprop([p], [g], [bufs[0]], [], [], [step], foreach=False, lr=kw["lr"],
                    alpha=kw["alpha"], eps=kw["eps"], weight_decay=kw["weight_decay"],
                    momentum=0.0, centered=False)
    return p.numpy()


def _run(fn, x0, config, steps=10, f=_quad):
    x = x0.copy()
    for _ in range(steps):
        fn(f, x, config)
    return x


@pytest.mark.parametrize("problem", ["quad", "rosen"])
def test_adam_vs_torch(problem):
    f, x0 = (_quad, _X0) if problem == "quad" else (_rosen, _R0)
    b1, b2, lr, wd = 0.8, 0.95, 0.05, 0.1
    cfg = {"learningRate": lr, "beta1": b1, "beta2": b2, "weightDecay": wd}
    kw = dict(lr=lr, beta1=b1, beta2=b2, weight_decay=wd)
    # epsilon = 0: the two bias-correction formulas are the same update
    ours = _run(optim.adam, x0, dict(cfg, epsilon=0.0), f=f)
    np.testing.assert_allclose(ours, _torch_steps("adam", x0, 10, f, eps=0.0, **kw),
                               rtol=1e-12, atol=1e-14)
    # epsilon > 0: Torch7 adds eps to sqrt(v) and then scales by sqrt(1 - beta2^t);
    # PyTorch scales sqrt(v) first, so Torch7's eps is PyTorch's eps / sqrt(1 - beta2^t)
    eps = 0.05
    ours = _run(optim.adam, x0, dict(cfg, epsilon=eps), f=f)
    same = _torch_steps("adam", x0, 10, f, eps=lambda t: eps / np.sqrt(1 - b2 ** t), **kw)
    np.testing.assert_allclose(ours, same, rtol=1e-12, atol=1e-14)
    plain = _torch_steps("adam", x0, 10, f, eps=eps, **kw)
    assert np.abs(ours - plain).max() > 1e-4


def test_adagrad_vs_torch():
    cfg = {"learningRate": 0.3, "learningRateDecay": 0.1, "weightDecay": 0.05}
    for f, x0 in ((_quad, _X0), (_rosen, _R0)):
        ours = _run(optim.adagrad, x0, dict(cfg), f=f)
        ref = _torch_steps("adagrad", x0, 10, f, lr=0.3, lr_decay=0.1, weight_decay=0.05)
        np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-14)


def test_adadelta_vs_torch():
    for cfg, kw in (({}, dict(lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0)),
                    ({"rho": 0.8, "eps": 1e-4, "weightDecay": 0.1, "learningRate": 0.5},
                     dict(lr=0.5, rho=0.8, eps=1e-4, weight_decay=0.1))):
        for f, x0 in ((_quad, _X0), (_rosen, _R0)):
            ours = _run(optim.adadelta, x0, dict(cfg), f=f)
            np.testing.assert_allclose(ours, _torch_steps("adadelta", x0, 10, f, **kw),
                                       rtol=1e-12, atol=1e-14)


def test_rmsprop_vs_torch():
    # both put epsilon outside the square root: x -= lr g / (sqrt(m) + eps)
    cfg = {"learningRate": 0.05, "alpha": 0.9, "epsilon": 1e-3, "weightDecay": 0.1}
    for f, x0 in ((_quad, _X0), (_rosen, _R0)):
        ours = _run(optim.rmsprop, x0, dict(cfg), f=f)
        ref = _torch_steps("rmsprop", x0, 10, f, lr=0.05, alpha=0.9, eps=1e-3,
                           weight_decay=0.1)
        np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-14)


def test_nag_vs_torch_sgd_nesterov():
    """Torch7 nag keeps the 'true' point x and evaluates at x + mom v; PyTorch's
    SGD(nesterov=True) stores the look-ahead point itself.  After n calls Torch7's
    x + mom * state.dfdx equals PyTorch's parameters after n steps, and the loss
    nag returns on call k+1 is f at PyTorch's parameters after k steps."""
    from torch.optim.sgd import sgd as sgd_fn

    mom, wd = 0.8, 0.1
    for f, x0, lr in ((_quad, _X0, 0.05), (_rosen, _R0, 2e-4)):
        cfg = {"learningRate": lr, "momentum": mom, "weightDecay": wd}
        x = x0.copy()
        losses = [optim.nag(f, x, cfg)[1][0] for _ in range(10)]
        p = _t(x0)
        bufs, torch_losses = [None], []
        for _ in range(10):
            fx, g = f(p.numpy())
            torch_losses.append(fx)
            sgd_fn([p], [_t(g)], bufs, maximize=False, foreach=False, lr=lr, momentum=mom,
                   dampening=0.0, nesterov=True, weight_decay=wd)
        np.testing.assert_allclose(x + mom * cfg["dfdx"], p.numpy(), rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(losses, torch_losses, rtol=1e-12)


# ==========================================================================
# polyinterp and lswolfe


def _cubic(c):
    return (lambda t: ((c[0] * t + c[1]) * t + c[2]) * t + c[3],
            lambda t: (3 * c[0] * t + 2 * c[1]) * t + c[2])


def test_polyinterp_two_points_unbounded_is_the_cubic_minimiser():
    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(200):
        c = rng.normal(size=4)
        f, fp = _cubic(c)
        a, b = np.sort(rng.uniform(-2, 2, size=2))
        t = optim.polyinterp([[b, f(b), fp(b)], [a, f(a), fp(a)]])   # order does not matter
        assert a <= t <= b
        disc = (2 * c[1]) ** 2 - 12 * c[0] * c[2]
        if disc < 0:
            assert t == pytest.approx((a + b) / 2)
            continue
        roots = (-2 * c[1] + np.array([-1, 1]) * np.sqrt(disc)) / (6 * c[0])
        local_min = roots[6 * c[0] * roots + 2 * c[1] > 0][0]
        assert t == pytest.approx(min(max(local_min, a), b), rel=1e-9, abs=1e-9)
        checked += 1
    assert checked > 100


@pytest.mark.parametrize("n_points", [2, 3])
def test_polyinterp_bounded_is_the_global_minimum_on_the_interval(n_points):
    rng = np.random.default_rng(n_points)
    for _ in range(100):
        c = rng.normal(size=2 * n_points)          # degree 2n-1, interpolated exactly
        p, dp = np.poly1d(c), np.poly1d(c).deriv()
        xs = np.sort(rng.uniform(-1, 1, size=n_points))
        lo, hi = xs.min() + rng.uniform(-1, 0.5), xs.max() + rng.uniform(0, 3)
        t = optim.polyinterp([[x, p(x), dp(x)] for x in xs], lo, hi)
        grid = np.linspace(lo, hi, 20001)
        assert lo <= t <= hi
        assert p(t) <= p(grid).min() + 1e-9 * (1 + abs(p(grid)).max())


def test_polyinterp_extrapolation_without_critical_point_takes_the_best_bound():
    # a cubic that keeps decreasing: Torch7 returns the far bound (PyTorch's
    # _cubic_interpolate returns the middle of the bounds here)
    f, fp = _cubic([0.0, 0.0, -1.0, 5.0])         # a line: no critical point
    t = optim.polyinterp([[0.0, f(0.0), fp(0.0)], [1.0, f(1.0), fp(1.0)]], 1.01, 10.0)
    assert t == 10.0


def _wolfe_check(f, x0, d, c1=1e-4, c2=0.9, t0=1.0):
    x = x0.copy()
    f0, g0 = f(x0)
    gtd = g0 @ d
    calls = []

    def counted(v):
        calls.append(v.copy())
        return f(v)

    f_new, g_new, x_out, t, n_evals = optim.lswolfe(counted, x, t0, d, f0, g0, gtd)
    assert x_out is x and n_evals == len(calls)
    np.testing.assert_allclose(x, x0 + t * d, rtol=1e-15, atol=1e-15)
    fx, gx = f(x)
    assert f_new == pytest.approx(fx, rel=1e-14) and np.allclose(g_new, gx, rtol=1e-13)
    assert f_new <= f0 + c1 * t * gtd                       # sufficient decrease
    assert abs(g_new @ d) <= -c2 * gtd                       # strong curvature
    return t, n_evals


def test_lswolfe_satisfies_strong_wolfe():
    rng = np.random.default_rng(11)
    evals = []
    for _ in range(20):
        x0 = rng.normal(size=5) * 1.5
        d = -_rosen(x0)[1]
        for t0 in (1.0, 1e-5, 1e-3):                        # zoom, extrapolate
            evals.append(_wolfe_check(_rosen, x0, d, t0=t0)[1])
    assert max(evals) > 3                                   # both phases exercised
    t, _ = _wolfe_check(_quad, _X0, -_quad(_X0)[1], t0=10.0)
    assert t < 10.0


def test_lswolfe_max_iter_returns_best_of_start_and_last():
    # a direction of ascent cannot satisfy Armijo; after maxIter it falls back
    x0 = _X0.copy()
    f0, g0 = _quad(x0)
    d = g0.copy()
    x = x0.copy()
    f_new, g_new, x, t, n = optim.lswolfe(_quad, x, 1.0, d, f0, g0, -1.0, {"maxIter": 3})
    assert n == 4 and (t == 0.0 or f_new <= f0)


# ==========================================================================
# lbfgs


def _torch_lbfgs(f, x0, **kw):
    p = torch.tensor(x0, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([p], **kw)

    def closure():
        fx, g = f(p.detach().numpy())
        p.grad = _t(g)
        return torch.tensor(fx, dtype=torch.float64)

    opt.step(closure)
    return p.detach().numpy(), opt.state[p]


_NO_TOL = {"tolFun": 0.0, "tolX": 0.0, "maxEval": 10 ** 6}
_TORCH_NO_TOL = dict(tolerance_grad=-1.0, tolerance_change=0.0, max_eval=10 ** 6)


@pytest.mark.parametrize("line_search", [None, "lswolfe"])
def test_lbfgs_quadratic_converges_like_torch(line_search):
    xstar = np.linalg.solve(_A, _B)
    cfg = {"maxIter": 100, "lineSearch": None if line_search is None else optim.lswolfe,
           "tolFun": 1e-12, "tolX": 1e-25}
    x = _X0.copy()
    x_out, f_hist, n = optim.lbfgs(_quad, x, cfg)
    assert x_out is x
    np.testing.assert_allclose(x, xstar, rtol=1e-8, atol=1e-9)
    assert f_hist[0] == pytest.approx(_quad(_X0)[0]) and f_hist[-1] <= f_hist[0]
    assert n == cfg["funcEval"]
    ref, _ = _torch_lbfgs(_quad, _X0, max_iter=100, tolerance_grad=1e-12, tolerance_change=1e-25,
                          line_search_fn=None if line_search is None else "strong_wolfe")
    np.testing.assert_allclose(x, ref, rtol=1e-8, atol=1e-9)


@pytest.mark.parametrize("line_search", [None, "lswolfe"])
def test_lbfgs_rosenbrock_iterates_match_torch(line_search):
    """With the stopping tests disabled (Torch7 uses sum|.|, PyTorch max|.|) and
    learningRate 1 the two implementations take the same steps."""
    x = _R0.copy()
    cfg = dict(_NO_TOL, maxIter=25, lineSearch=line_search)
    _, f_hist, n = optim.lbfgs(_rosen, x, cfg)
    ref, st = _torch_lbfgs(_rosen, _R0, max_iter=25, **_TORCH_NO_TOL,
                           line_search_fn=None if line_search is None else "strong_wolfe")
    np.testing.assert_allclose(x, ref, rtol=1e-10, atol=1e-12)
    assert n == st["func_evals"] and cfg["nIter"] == st["n_iter"] == 25
    if line_search is not None:
        assert n > 25                                       # some searches took >1 step


def _torch7_bounded_cubic(x1, f1, g1, x2, f2, g2, bounds=None):
    """Torch7 polyinterp's rule for an extrapolation step, written independently:
    the smallest value of the Hermite cubic among the bounds and its real critical
    points inside them (PyTorch clamps the cubic's local minimiser instead, and
    takes the middle of the bounds when there is none)."""
    if bounds is None:
        import torch.optim.lbfgs as tl
        return tl.__dict__["_orig_cubic"](x1, f1, g1, x2, f2, g2)
    x1, f1, g1, x2, f2, g2 = (float(v) for v in (x1, f1, g1, x2, f2, g2))
    lo, hi = (float(b) for b in bounds)
    A = np.array([[x ** 3, x ** 2, x, 1.0] for x in (x1, x2)]
                 + [[3 * x ** 2, 2 * x, 1.0, 0.0] for x in (x1, x2)])
    c = np.linalg.solve(A, [f1, f2, g1, g2])
    cands = [lo, hi, x1, x2] + [r.real for r in np.roots([3 * c[0], 2 * c[1], c[2]])
                                if r.imag == 0]
    best, fbest = (lo + hi) / 2, np.inf
    for x in cands:
        if lo <= x <= hi and np.polyval(c, x) < fbest:
            best, fbest = x, np.polyval(c, x)
    return best


def test_lbfgs_line_search_extrapolation_vs_torch_with_torch7_rule(monkeypatch):
    """learningRate 0.05 makes every line search extrapolate.  PyTorch then
    differs (midpoint vs best bound when the cubic has no minimiser in range);
    with its bounded interpolation replaced by Torch7's rule the iterates agree."""
    import torch.optim.lbfgs as tl

    x = _R0.copy()
    cfg = dict(_NO_TOL, maxIter=20, lineSearch=optim.lswolfe, learningRate=0.05)
    optim.lbfgs(_rosen, x, cfg)
    plain, _ = _torch_lbfgs(_rosen, _R0, lr=0.05, max_iter=20, **_TORCH_NO_TOL,
                            line_search_fn="strong_wolfe")
    assert np.abs(plain - x).max() > 1e-3
    monkeypatch.setitem(tl.__dict__, "_orig_cubic", tl._cubic_interpolate)
    monkeypatch.setattr(tl, "_cubic_interpolate", _torch7_bounded_cubic)
    ref, st = _torch_lbfgs(_rosen, _R0, lr=0.05, max_iter=20, **_TORCH_NO_TOL,
                           line_search_fn="strong_wolfe")
    np.testing.assert_allclose(x, ref, rtol=1e-10, atol=1e-12)
    assert cfg["funcEval"] == st["func_evals"]


def _ref_lbfgs(f, x, cfg, max_iter):
    """Straight transcription of optim/lbfgs.lua without a line search, one call
    from a fresh state, default tolerances (sums of absolute values)."""
    tol_fun, tol_x, lr = cfg.get("tolFun", 1e-5), cfg.get("tolX", 1e-9), cfg.get("learningRate", 1)
    max_eval = cfg.get("maxEval", max_iter * 1.25)
    m = cfg.get("nCorrection", 100)
    x = x.copy()
    fx, g = f(x)
    hist, evals = [fx], 1
    if np.abs(g).sum() <= tol_fun:
        return x, hist, evals
    S, Y, H = [], [], 1.0
    d = t = g_old = None
    for it in range(1, max_iter + 1):
        if it == 1:
            d = -g
        else:
            y, s = g - g_old, d * t
            if y @ s > 1e-10:
                if len(S) == m:
                    S.pop(0)
                    Y.pop(0)
                S.append(s)
                Y.append(y)
                H = (y @ s) / (y @ y)
            q, al = -g, []
            for s_i, y_i in zip(reversed(S), reversed(Y)):
                al.append((s_i @ q) / (y_i @ s_i))
                q = q - al[-1] * y_i
            r = H * q
            for (s_i, y_i), a in zip(zip(S, Y), reversed(al)):
                r = r + (a - (y_i @ r) / (y_i @ s_i)) * s_i
            d = r
        g_old, f_old = g.copy(), fx
        gtd = g @ d
        if gtd > -tol_x:
            break
        t = min(1, 1 / np.abs(g).sum()) * lr if it == 1 else lr
        x = x + t * d
        if it != max_iter:
            fx, g = f(x)
            evals += 1
            hist.append(fx)
        if (it == max_iter or evals >= max_eval or np.abs(g).sum() <= tol_fun
                or np.abs(d * t).sum() <= tol_x or abs(fx - f_old) < tol_x):
            break
    return x, hist, evals


@pytest.mark.parametrize("cfg", [
    {},
    {"learningRate": 0.5, "nCorrection": 3},
    {"maxEval": 7},
    {"tolFun": 50.0},
    {"tolX": 1e-2},
])
def test_lbfgs_without_line_search_vs_transcription(cfg):
    for f, x0 in ((_quad, _X0), (_rosen, _R0)):
        x = x0.copy()
        config = dict(cfg, maxIter=15)
        _, hist, n = optim.lbfgs(f, x, config)
        rx, rhist, rn = _ref_lbfgs(f, x0, cfg, 15)
        np.testing.assert_allclose(x, rx, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(hist, rhist, rtol=1e-12)
        assert n == rn
        if "nCorrection" in cfg:
            assert len(config["old_dirs"]) <= 3


@pytest.mark.parametrize("line_search", [None, "lswolfe"])
def test_lbfgs_state_continues_across_calls(line_search):
    """Two calls of 4 iterations continue the same run as one call of 8 (the
    history, Hdiag, d and t are kept in the state)."""
    one = _R0.copy()
    cfg1 = dict(_NO_TOL, maxIter=8, lineSearch=line_search)
    optim.lbfgs(_rosen, one, cfg1)
    two = _R0.copy()
    config, state = dict(_NO_TOL, maxIter=4, line_search=line_search), {}
    optim.lbfgs(_rosen, two, config, state)
    assert state["nIter"] == 4 and len(state["old_dirs"]) == len(state["old_stps"]) == 3
    optim.lbfgs(_rosen, two, config, state)
    np.testing.assert_allclose(two, one, rtol=1e-13, atol=1e-15)
    assert state["nIter"] == 8 and "nIter" not in config
    for key in ("Hdiag", "t", "f_old"):
        assert state[key] == pytest.approx(cfg1[key], rel=1e-12)
    for key in ("d", "g_old"):
        np.testing.assert_allclose(state[key], cfg1[key], rtol=1e-12, atol=1e-14)
    # without a line search a call does not evaluate after its last step, and the
    # next call's first evaluation takes its place; with one, that point is evaluated
    # twice
    assert state["funcEval"] == cfg1["funcEval"] + (line_search is not None)


def test_lbfgs_returns_early_at_an_optimum_and_float32():
    xstar = np.linalg.solve(_A, _B)
    x = xstar.copy()
    cfg = {}
    x_out, hist, n = optim.lbfgs(_quad, x, cfg)
    assert n == 1 and len(hist) == 1 and cfg["funcEval"] == 1 and cfg["nIter"] == 0
    np.testing.assert_array_equal(x, xstar)
    x32 = _X0.astype(np.float32)
    optim.lbfgs(lambda v: _quad(v.astype(np.float64)), x32,
                {"maxIter": 50, "lineSearch": "lswolfe", "tolFun": 1e-4})
    assert x32.dtype == np.float32
    np.testing.assert_allclose(x32, xstar, rtol=1e-4, atol=1e-4)


def test_lbfgs_closure_may_reuse_its_gradient_buffer():
    buf = np.zeros(5)

    def feval(v):
        fx, g = _rosen(v)
        buf[...] = g
        return fx, buf

    x, ref = _R0.copy(), _R0.copy()
    optim.lbfgs(feval, x, dict(_NO_TOL, maxIter=10, lineSearch=optim.lswolfe))
    optim.lbfgs(_rosen, ref, dict(_NO_TOL, maxIter=10, lineSearch=optim.lswolfe))
    np.testing.assert_array_equal(x, ref)


def test_lbfgs_errors():
    with pytest.raises(ValueError, match="lineSearch"):
        optim.lbfgs(_quad, _X0.copy(), {"lineSearch": "armijo"})
    with pytest.raises(TypeError, match="callable"):
        optim.lbfgs(_quad, _X0.copy(), {"lineSearch": 3})
    with pytest.raises(TypeError):
        optim.lbfgs(_quad, list(_X0))


def test_lbfgs_custom_line_search_callable():
    calls = []

    def my_search(opfunc, x, t, d, f, g, gtd, options):
        calls.append(options)
        f_new, g_new, x_new, t, n = optim.lswolfe(opfunc, x.copy(), t, d, f, g, gtd, options)
        return f_new, g_new, x_new, t, n              # a new array, not x itself

    x, ref = _R0.copy(), _R0.copy()
    opts = {"c2": 0.5}
    optim.lbfgs(_rosen, x, dict(_NO_TOL, maxIter=6, lineSearch=my_search,
                                lineSearchOptions=opts))
    optim.lbfgs(_rosen, ref, dict(_NO_TOL, maxIter=6, lineSearch=optim.lswolfe,
                                  lineSearchOptions=opts))
    assert len(calls) == 6 and all(c is opts for c in calls)
    np.testing.assert_array_equal(x, ref)
    assert not np.array_equal(x, _R0)
