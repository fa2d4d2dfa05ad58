"""CUDA target vs PyTorch CUDA eager, measured in the same run (tests/gpu/run.sh).

One training step = forward, then backward with fixed output gradients (parameter gradients
accumulate, nothing zeroed), float32, inputs already on the GPU. Workloads: the LSTM cell of
samples/lstm.lua at 128 -> 128, batch 32, and samples/lenet.lua at batch 64. Prints medians
and torch/graphc ratios (> 1: graphc is faster), plus the kernel launches per step; also the
same step replayed as a CUDA graph (Model.step(graph=True)). The tutorial cell (3 -> 2, batch 1)
is the launch-bound case graph mode is for.
"""
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))

import cupy  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import graphc_runtime.cuda as rt  # noqa: E402
from graphc.compiler import Options, compile_spec, parse_shape  # noqa: E402


def build(spec, **opts):
    import types
    res = compile_spec(str(ROOT / "samples" / spec), Options(target="cuda", dtype="float32", **opts))
    mod = types.ModuleType("bench_" + spec.replace(".", "_"))
    exec(compile(res.source, spec, "exec"), mod.__dict__)
    return mod


def torch_params(model, layers):
    flat = torch.as_tensor(cupy.asnumpy(model.getParameters()[0]), device="cuda")
    out, offset = {}, 0
    for (name, shape, _), layer in zip(model.PARAMETERS, layers):
        n = int(np.prod(shape))
        t = flat[offset:offset + n].reshape(shape).clone().requires_grad_(True)
        out.setdefault(layer, []).append(t)
        offset += n
    return out


def lstm_torch(p, n):
    def f(x, c, h):
        pre = F.linear(x, *p["i2h"]) + F.linear(h, *p["h2h"])
        gates = torch.sigmoid(pre[:, :3 * n])
        g = torch.tanh(pre[:, 3 * n:])
        next_c = gates[:, n:2 * n] * c + gates[:, :n] * g
        return next_c, gates[:, 2 * n:] * torch.tanh(next_c)
    return f


def lenet_torch(p):
    def f(x):
        y = F.max_pool2d(F.relu(F.conv2d(x, *p["conv1"])), 2, 2)
        y = F.max_pool2d(F.relu(F.conv2d(y, *p["conv2"])), 2, 2)
        y = F.relu(F.linear(y.reshape(y.shape[0], -1), *p["fc1"]))
        y = F.relu(F.linear(y, *p["fc2"]))
        return (F.log_softmax(F.linear(y, *p["fc3"]), dim=1),)
    return f


def timeit(step, sync, reps=7, min_time=0.2):
    for _ in range(10):
        step()
    sync()
    n = 1
    while True:
        t = time.perf_counter()
        for _ in range(n):
            step()
        sync()
        if time.perf_counter() - t > min_time / reps:
            break
        n *= 2
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        for _ in range(n):
            step()
        sync()
        times.append((time.perf_counter() - t) / n)
    return statistics.median(times)


def workload(label, model, tfun, layers, shapes):
    rng = np.random.default_rng(0)
    xs_np = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    xs = [cupy.asarray(x) for x in xs_np]
    outs = model.forward(*xs)
    outs = outs if isinstance(outs, tuple) else (outs,)
    gys = [cupy.asarray(rng.standard_normal(o.shape).astype(np.float32)) for o in outs]
    g = tuple(gys) if len(gys) > 1 else gys[0]
    p = torch_params(model, layers)
    f = tfun(p)
    txs = [torch.as_tensor(x, device="cuda").requires_grad_(True) for x in xs_np]
    tgys = [torch.as_tensor(cupy.asnumpy(gy), device="cuda") for gy in gys]
    tout = f(*txs)
    err = max(float(np.abs(cupy.asnumpy(a) - b.detach().cpu().numpy()).max()) for a, b in zip(outs, tout))

    counter = {"n": 0}
    launch = rt.CupyBackend.launch

    def counting(self, *a, **k):
        counter["n"] += 1
        return launch(self, *a, **k)

    rt.CupyBackend.launch = counting
    model.forward(*xs)
    model.backward(tuple(xs), g)
    rt.CupyBackend.launch = launch
    kernels = counter["n"]

    def g_step():
        model.forward(*xs)
        model.backward(tuple(xs), g)

    def t_step():
        out = f(*txs)
        torch.autograd.backward(out, tgys)

    def g_fwd():
        model.forward(*xs)

    def t_fwd():
        with torch.no_grad():
            f(*txs)

    sync_g = cupy.cuda.Device().synchronize
    sync_t = torch.cuda.synchronize
    def graph_step():
        model.step(xs, g, graph=True)

    tg, tt = timeit(g_step, sync_g), timeit(t_step, sync_t)
    fg, ft = timeit(g_fwd, sync_g), timeit(t_fwd, sync_t)
    tgraph = timeit(graph_step, sync_g)
    print(f"{label:28s} step: graphc {tg * 1e6:8.1f} us  torch {tt * 1e6:8.1f} us  ratio {tt / tg:5.2f} | "
          f"CUDA-graph step {tgraph * 1e6:8.1f} us  ratio {tt / tgraph:5.2f} | "
          f"forward: graphc {fg * 1e6:8.1f} us  torch {ft * 1e6:8.1f} us  ratio {ft / fg:5.2f} | "
          f"{kernels} graphc kernels/step, max |out diff| {err:.1e}")


def main():
    print(f"device: {cupy.cuda.runtime.getDeviceProperties(0)['name'].decode()}, CuPy {cupy.__version__}, "
          f"torch {torch.__version__}")
    tiny = build("lstm.lua")
    workload("tutorial LSTM cell, B=1", tiny.Model(), lambda p: lstm_torch(p, 2), ["i2h"] * 2 + ["h2h"] * 2,
             [(1, 3), (1, 2), (1, 2)])
    lstm = build("lstm.lua", defines={"input_size": 128, "rnn_size": 128})
    workload("LSTM cell 128->128, B=32", lstm.Model(), lambda p: lstm_torch(p, 128), ["i2h"] * 2 + ["h2h"] * 2,
             [(32, 128), (32, 128), (32, 128)])
    lenet = build("lenet.lua", shapes={"input1": parse_shape("Bx1x32x32")})
    layers = [x for name in ("conv1", "conv2", "fc1", "fc2", "fc3") for x in (name, name)]
    workload("LeNet, B=64", lenet.Model(), lenet_torch, layers, [(64, 1, 32, 32)])


if __name__ == "__main__":
    main()
