"""ConvE's projection matmuls alone, against PyKEEN's whole epoch: the floor under kgreason's ConvE epoch ratio.

Usage::

    python benchmarks/bench_conve_floor.py --dataset umls --threads 2 --loops slcwa1,lcwa

For each loop it trains kgreason's ConvE and PyKEEN's on the configuration of ``bench_kge_speed.py`` (same
dataset, dimension 128, batch sizes, loss, Adam, thread count, float32; median epoch time over the epochs after
the first), records how many ``(h, r)`` rows kgreason's network evaluated in each step of one epoch, and then
times, for exactly those row counts, the three matmuls of the projection ``fc: C*L -> d`` that any
implementation of ConvE's gradient step must run: the forward ``X @ W^T`` and the backward ``G @ W`` (gradient
of the feature maps) and ``G^T @ X`` (gradient of ``W``), on warm operands (best of ``--repeats``). Nothing
else: no convolution, batch norm, dropout, scoring, loss or optimiser step.

It prints, per loop: kgreason's and PyKEEN's epoch time and their ratio; the projection matmuls' time and its
ratio to PyKEEN's epoch (``floor ratio``); the projection's FLOPs at the machine's dense matmul peak
(``bench_matmul.py``, same threads) as a second, lower bound; and ``left s``, what ``--target`` x PyKEEN's
epoch leaves for everything else once the projection's matmuls are paid. If the floor ratio is above a target ratio, no
float32 implementation that uses this machine's matmul kernels -- and evaluates the network on as few rows as
kgreason does (once per distinct ``(h, r)`` of a batch; PyKEEN runs it once per scored triple) -- can meet the
target.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_kge_speed import (  # noqa: E402
    LABEL_SMOOTHING,
    REPO,
    Config,
    _default_lr,
    make_kgreason_model,
    run_pykeen,
)
from bench_matmul import measure_matmul_flops  # noqa: E402

from kgreason.data import Dataset  # noqa: E402
from kgreason.runtime import tune_cpu_allocator  # noqa: E402
from kgreason.training import LCWATrainingLoop, SLCWATrainingLoop  # noqa: E402
from kgreason.training.callbacks import TrainingCallback  # noqa: E402


class _StepRows(TrainingCallback):
    """Epoch wall times, and the network rows of every step of the last epoch."""

    def __init__(self, model: Any) -> None:
        self.rows: list[int] = []
        self.epoch_rows: list[list[int]] = []
        self.stamps: list[float] = [time.perf_counter()]
        original = model.query

        def counting_query(h: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
            if model.training:
                self.rows.append(int(h.shape[0]))
            return original(h, r)

        model.query = counting_query

    def post_epoch(self, **kwargs: Any) -> None:
        self.stamps.append(time.perf_counter())
        self.epoch_rows.append(self.rows)
        self.rows = []


def run_kgreason_counting(cfg: Config, ds: Dataset) -> tuple[float, list[int]]:
    """kgreason's median epoch time (epochs 2..) and the network rows per step of its last epoch."""
    model = make_kgreason_model(cfg, ds)
    counter = _StepRows(model)
    common: dict[str, Any] = {
        "batch_size": cfg.batch_size,
        "optimizer": "adam",
        "lr": cfg.lr,
        "device": "cpu",
        "seed": cfg.seed,
        "callbacks": [counter],
    }
    if cfg.loop == "lcwa":
        loop: Any = LCWATrainingLoop(
            model, ds.train, loss="bce", loss_kwargs={"label_smoothing": LABEL_SMOOTHING}, **common
        )
    else:
        loop = SLCWATrainingLoop(
            model, ds.train, num_negs_per_pos=cfg.num_negatives or 1, loss=cfg.loss, **common
        )
    counter.stamps = [time.perf_counter()]
    loop.train(cfg.epochs)
    times = [b - a for a, b in zip(counter.stamps, counter.stamps[1:])]
    return statistics.median(times[1:] or times), counter.epoch_rows[-1]


def projection_seconds(rows: list[int], in_features: int, out_features: int, repeats: int) -> float:
    """Best-of-``repeats`` time of the projection's forward and two backward matmuls for each step's rows."""
    weight = torch.randn(out_features, in_features)
    total = 0.0
    for n in rows:
        x = torch.randn(n, in_features)
        g = torch.randn(n, out_features)
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            torch.mm(x, weight.t())
            torch.mm(g, weight)
            torch.mm(g.t(), x)
            best = min(best, time.perf_counter() - start)
        total += best
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="umls")
    parser.add_argument(
        "--data-dir", default=os.environ.get("KGREASON_DATA_DIR", str(REPO.parent / "shared" / "data"))
    )
    parser.add_argument("--loops", default="slcwa1,lcwa", help="slcwa1, slcwa32, lcwa (comma-separated)")
    parser.add_argument("--epochs", type=int, default=4, help="epochs per library; the first is a warm-up")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5, help="timings per projection matmul shape")
    parser.add_argument("--target", type=float, default=0.2, help="the epoch-time ratio to test against")
    args = parser.parse_args()

    tune_cpu_allocator()
    torch.set_num_threads(args.threads)
    ds = Dataset.from_directory(Path(args.data_dir) / args.dataset)
    peak = max(measure_matmul_flops(args.threads).values())
    print(
        f"# {args.dataset}: ConvE dim={args.dim}, float32, threads={args.threads}, torch {torch.__version__}; "
        f"dense matmul peak {peak / 1e9:.1f} GFLOP/s"
    )
    print(
        f"{'loop':8s} {'kgreason s':>10s} {'pykeen s':>9s} {'ratio':>6s} {'rows/epoch':>10s} "
        f"{'proj s':>7s} {'floor ratio':>11s} {'at peak s':>9s} {'peak ratio':>10s} {'left s':>7s}"
    )
    for loop in [x.strip() for x in args.loops.split(",") if x.strip()]:
        kind = "lcwa" if loop == "lcwa" else "slcwa"
        cfg = Config(
            dataset=args.dataset,
            model="conve",
            loop=loop,
            dim=args.dim,
            batch_size=256 if kind == "lcwa" else 512,
            num_negatives=None if kind == "lcwa" else int(loop[len("slcwa") :] or 1),
            epochs=args.epochs,
            lr=_default_lr("conve", kind),
            loss="bce" if kind == "lcwa" else "softplus",
            reciprocal=True,
            threads=args.threads,
            seed=0,
        )
        kg_seconds, rows = run_kgreason_counting(cfg, ds)
        pk_result, _ = run_pykeen(cfg, ds, False, False)
        pk_seconds = pk_result.median
        model = make_kgreason_model(cfg, ds)
        fc_in, fc_out = model.fc.in_features, model.fc.out_features
        proj = projection_seconds(rows, fc_in, fc_out, args.repeats)
        flops = 3 * 2.0 * sum(rows) * fc_in * fc_out
        at_peak = flops / peak
        left = args.target * pk_seconds - proj  # what the target leaves for everything but the projection
        print(
            f"{loop:8s} {kg_seconds:10.4f} {pk_seconds:9.4f} {kg_seconds / pk_seconds:6.3f} {sum(rows):10d} "
            f"{proj:7.4f} {proj / pk_seconds:11.3f} {at_peak:9.4f} {at_peak / pk_seconds:10.3f} {left:7.4f}  "
            f"threads={args.threads}",
            flush=True,
        )
    print(
        f"# left s: {args.target} x PyKEEN's epoch minus the projection's matmuls -- the time a ratio of "
        f"{args.target} leaves for the convolution, batch norms, dropouts, scoring, loss and optimiser step "
        "(negative: the target is out of reach of these matmul kernels)"
    )


if __name__ == "__main__":
    main()
