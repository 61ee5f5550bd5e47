"""Measure the machine's dense float32 matmul throughput (FLOP/s) at a given thread count.

Usage::

    python benchmarks/bench_matmul.py --threads 2
    python benchmarks/bench_matmul.py --threads 1 --sizes 512,1024,2048

Prints, for each square size ``n``, the best of ``--repeats`` timed ``[n, n] @ [n, n]`` products
(``2 n^3`` FLOPs each) after one warm-up, and the peak over the sizes. Other benchmarks import
:func:`measure_matmul_flops` to express their throughput as a fraction of this peak (e.g.
``bench_kge_speed.py``: LCWA training FLOP/s / matmul FLOP/s).
"""

from __future__ import annotations

import argparse
import time

import torch

DEFAULT_SIZES = (512, 1024, 2048)


def matmul_flops(n: int, repeats: int = 5, dtype: torch.dtype = torch.float32, device: str = "cpu") -> float:
    """Best FLOP/s of ``[n, n] @ [n, n]`` over ``repeats`` timed runs (one untimed warm-up) at the current
    ``torch.get_num_threads()``."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=g, dtype=dtype).to(device)
    b = torch.randn(n, n, generator=g, dtype=dtype).to(device)
    out = torch.empty(n, n, dtype=dtype, device=device)
    torch.matmul(a, b, out=out)
    best = float("inf")
    for _ in range(repeats):
        if device != "cpu":
            torch.cuda.synchronize()
        start = time.perf_counter()
        torch.matmul(a, b, out=out)
        if device != "cpu":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return 2.0 * n**3 / best


def measure_matmul_flops(
    threads: int | None = None, sizes: tuple[int, ...] = DEFAULT_SIZES, repeats: int = 5
) -> dict[int, float]:
    """FLOP/s per square size at ``threads`` (``None``: leave torch's setting); the peak is ``max(values)``."""
    if threads is not None:
        torch.set_num_threads(threads)
    return {n: matmul_flops(n, repeats) for n in sizes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)))
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    sizes = tuple(int(s) for s in args.sizes.split(","))
    results = measure_matmul_flops(args.threads, sizes, args.repeats)
    for n, flops in results.items():
        print(f"float32 matmul {n:5d} x {n:<5d}  {flops / 1e9:8.1f} GFLOP/s  (threads={args.threads})")
    print(f"peak: {max(results.values()) / 1e9:.1f} GFLOP/s at {torch.get_num_threads()} thread(s)")


if __name__ == "__main__":
    main()
