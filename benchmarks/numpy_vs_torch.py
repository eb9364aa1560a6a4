"""LSTM forward + backward: NumPy reference backend vs torch.nn.LSTM.

Both sides do the same work on the same shapes in the same process and with
the same number of threads: a forward pass over T steps from a given (h0, c0)
and a backward pass for a given output gradient, producing gradients for all
four parameter tensors, the input and the initial state. The median of
``--repeats`` timed runs (after warm-up runs) is reported.

    python benchmarks/numpy_vs_torch.py                  # T=35 B=32 H=I=128 float32, 1 thread
    python benchmarks/numpy_vs_torch.py --threads 2 --repeats 15

Thread counts must be fixed before NumPy/torch load their BLAS, so this
script sets OMP/OPENBLAS/MKL_NUM_THREADS itself and imports both libraries
afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--T", type=int, default=35)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--input", type=int, default=128)
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--repeats", type=int, default=21)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/numpy_vs_torch"),
                    help="path prefix for the .json and .md results ('' to skip)")
    return ap.parse_args(argv)


def time_interleaved(fns, repeats: int, warmup: int) -> list[list[float]]:
    """Wall-clock seconds of each function, alternating between them on every
    repeat so that load from other processes (shared machine) hits all of
    them alike instead of whichever block happened to run during a spike."""
    for _ in range(warmup):
        for fn in fns:
            fn()
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, ts in zip(fns, times):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
    return times


def main(argv=None):
    args = parse_args(argv)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    sys.path.insert(0, str(ROOT))
    import numpy as np
    import torch

    from rnnlab.numpy.cells import LSTMLayer

    torch.set_num_threads(args.threads)
    T, B, I, H = args.T, args.batch, args.input, args.hidden
    np_dtype = np.dtype(args.dtype)
    torch_dtype = getattr(torch, args.dtype)
    rng = np.random.default_rng(args.seed)

    layer = LSTMLayer(I, H, bias="double")
    params = layer.init_params(rng, np_dtype)
    x = rng.standard_normal((T, B, I)).astype(np_dtype)
    h0 = rng.standard_normal((B, H)).astype(np_dtype)
    c0 = rng.standard_normal((B, H)).astype(np_dtype)
    dout = rng.standard_normal((T, B, H)).astype(np_dtype)

    def numpy_step():
        _, _, cache = layer.forward(params, x, (h0, c0))
        return layer.backward(params, cache, dout, None)

    lstm = torch.nn.LSTM(I, H).to(torch_dtype)
    with torch.no_grad():
        for k, v in params.items():
            getattr(lstm, f"{k}_l0").copy_(torch.from_numpy(v))
    xt = torch.from_numpy(x).requires_grad_(True)
    h0t = torch.from_numpy(h0)[None].requires_grad_(True)
    c0t = torch.from_numpy(c0)[None].requires_grad_(True)
    doutt = torch.from_numpy(dout)

    def torch_step():
        for t in (xt, h0t, c0t, *lstm.parameters()):
            t.grad = None
        out, _ = lstm(xt, (h0t, c0t))
        out.backward(doutt)

    # sanity: both compute the same thing (float32 tolerance)
    g = numpy_step()
    torch_step()
    def rel(a, b):
        return float(np.abs(a - b).max() / np.abs(b).max())

    agree = max(rel(g.params[k], getattr(lstm, f"{k}_l0").grad.numpy()) for k in params)
    agree = max(agree, rel(g.dx, xt.grad.numpy()))
    load_before = os.getloadavg()[0]

    all_np, all_th = time_interleaved([numpy_step, torch_step], args.repeats, args.warmup)
    t_np, t_th = statistics.median(all_np), statistics.median(all_th)
    ratio = t_np / t_th
    ratio_min = min(all_np) / min(all_th)
    load_after = os.getloadavg()[0]

    result = {
        "benchmark": "LSTM forward+backward (full BPTT), time-major",
        "T": T, "batch": B, "input": I, "hidden": H, "dtype": args.dtype,
        "threads": args.threads, "repeats": len(all_np), "warmup": args.warmup,
        "numpy_median_ms": round(t_np * 1e3, 3),
        "torch_median_ms": round(t_th * 1e3, 3),
        "numpy_min_ms": round(min(all_np) * 1e3, 3),
        "torch_min_ms": round(min(all_th) * 1e3, 3),
        "ratio_numpy_over_torch": round(ratio, 3),
        "ratio_of_minima": round(ratio_min, 3),
        "target_ratio": 2.0,
        "meets_target": ratio <= 2.0,
        "max_rel_grad_difference": agree,
        "load_average_1min": [round(load_before, 2), round(load_after, 2)],
        "numpy": np.__version__, "torch": torch.__version__,
        "python": platform.python_version(), "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
    }
    cmd = "python benchmarks/numpy_vs_torch.py " + " ".join(argv if argv is not None else sys.argv[1:])
    rows = [("backend", "median ms", "min ms"),
            ("numpy (rnnlab.numpy.LSTMLayer)", f"{t_np * 1e3:.2f}", f"{min(all_np) * 1e3:.2f}"),
            ("torch (nn.LSTM, autograd)", f"{t_th * 1e3:.2f}", f"{min(all_th) * 1e3:.2f}")]
    w = [max(len(r[i]) for r in rows) for i in range(3)]
    table = "\n".join("  ".join(c.ljust(w[i]) for i, c in enumerate(r)) for r in rows)
    print(f"LSTM fwd+bwd T={T} B={B} I={I} H={H} {args.dtype}, {args.threads} thread(s), "
          f"{len(all_np)} timed runs each, alternating")
    print(table)
    print(f"ratio numpy/torch = {ratio:.2f} of medians, {ratio_min:.2f} of minima "
          f"(target <= 2.0: {'met' if ratio <= 2.0 else 'NOT met'}); "
          f"max relative grad difference = {agree:.1e}; load average {load_before:.1f} -> {load_after:.1f}")

    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
        md = [
            "# NumPy vs PyTorch: LSTM forward + backward",
            "",
            f"Command: `{cmd.strip()}`",
            "",
            f"T={T}, batch={B}, input={I}, hidden={H}, {args.dtype}, {args.threads} thread(s) "
            f"for both (torch.set_num_threads and OMP/OPENBLAS/MKL_NUM_THREADS), "
            f"median of {len(all_np)} timed runs each (alternating numpy/torch) after warm-up; numpy {np.__version__}, "
            f"torch {torch.__version__}, {result['processor']}, {os.cpu_count()} CPUs "
            f"(shared machine; 1-minute load average {load_before:.1f} before, "
            f"{load_after:.1f} after, so medians include waiting for a core).",
            "",
            "| backend | median ms | min ms |",
            "|---|---|---|",
            f"| numpy (`rnnlab.numpy.LSTMLayer`) | {t_np * 1e3:.2f} | {min(all_np) * 1e3:.2f} |",
            f"| torch (`nn.LSTM`, autograd) | {t_th * 1e3:.2f} | {min(all_th) * 1e3:.2f} |",
            "",
            f"Ratio numpy/torch: **{ratio:.2f}** of medians, {ratio_min:.2f} of minima "
            f"(target <= 2.0: {'met' if ratio <= 2.0 else 'not met'}). Max relative gradient "
            f"difference between the two (float32): {agree:.1e}.",
            "",
        ]
        out.with_suffix(".md").write_text("\n".join(md))
    return result


if __name__ == "__main__":
    main()
