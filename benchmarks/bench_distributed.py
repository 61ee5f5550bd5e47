"""Throughput of data-parallel KGE training: 1 process vs N processes started by ``torchrun`` (gloo, CPU).

Each setting runs in fresh processes (``python bench_distributed.py --worker`` for 1, ``python -m
torch.distributed.run --nproc_per_node=N ... --worker`` for N), one thread each. The worker trains one warm-up
epoch, then ``--epochs`` timed epochs with the same global batch size, and rank 0 prints training examples per
second (triples for sLCWA, distinct queries for LCWA) over the timed epochs. Evaluation is timed as well:
filtered test evaluation, sharded over the ranks.

    OMP_NUM_THREADS=1 python benchmarks/bench_distributed.py --dataset umls --nproc 1 2

Read the numbers with the machine in mind: N processes need N free cores, and gradient all-reduce adds a cost
per step that larger batches amortise.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

#: what each loop trains (small enough for a quick run, large enough to be compute-bound)
LOOPS: dict[str, dict[str, Any]] = {
    "lcwa": {"model": "complex", "model_kwargs": {"embedding_dim": 200}, "loop": "lcwa", "batch_size": 256},
    "slcwa": {
        "model": "transe",
        "model_kwargs": {"embedding_dim": 200},
        "loop": "slcwa",
        "batch_size": 512,
        "num_negatives": 64,
    },
}


def worker(args: argparse.Namespace) -> None:
    """Train and evaluate in this process (one rank of the run, or the only process)."""
    import torch

    from kgreason.data.registry import load_dataset
    from kgreason.distributed import barrier, init_distributed
    from kgreason.evaluation import RankBasedEvaluator
    from kgreason.models import MODELS
    from kgreason.training.config import KGEConfig, resolve_config
    from kgreason.training.pipeline import build_training_loop

    torch.set_num_threads(args.threads)
    ctx = init_distributed("cpu")
    ds = load_dataset(args.dataset, data_dir=args.data_dir)
    spec = LOOPS[args.loop]
    cfg = resolve_config(KGEConfig(dataset=args.dataset, device="cpu", seed=0, trackers=[], **spec))
    torch.manual_seed(0)
    model = MODELS.make(
        cfg.model, dict(cfg.model_kwargs), num_entities=ds.num_entities, num_relations=ds.num_relations
    )
    loop = build_training_loop(cfg, model, ds)
    loop.train(1)  # warm-up: imports, allocator, DDP buckets
    barrier()
    loop.train(1 + args.epochs)
    seconds = sum(loop.history.seconds[1:])
    examples = loop.num_examples * args.epochs
    evaluator = RankBasedEvaluator(
        ds.all_triples(), num_entities=ds.num_entities, batch_size=256, device="cpu"
    )
    barrier()
    start = time.perf_counter()
    with torch.no_grad():
        metrics = evaluator.evaluate(model, ds.test)
    eval_seconds = time.perf_counter() - start
    if ctx.is_main:
        print(
            "RESULT "
            + json.dumps(
                {
                    "loop": args.loop,
                    "model": cfg.model,
                    "processes": ctx.world_size,
                    "global_batch": cfg.batch_size,
                    "examples_per_s": examples / seconds,
                    "epoch_s": seconds / args.epochs,
                    "eval_queries_per_s": 2 * len(ds.test) / eval_seconds,
                    "final_loss": loop.losses[-1],
                    "test_mrr": metrics["both.realistic.mrr"],
                }
            ),
            flush=True,
        )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run(nproc: int, loop: str, args: argparse.Namespace) -> dict[str, Any]:
    """One setting in fresh processes; the worker's RESULT line as a dict."""
    worker_args = [
        str(Path(__file__).resolve()),
        "--worker",
        "--loop",
        loop,
        "--dataset",
        args.dataset,
        "--epochs",
        str(args.epochs),
        "--threads",
        str(args.threads),
    ]
    if args.data_dir:
        worker_args += ["--data-dir", args.data_dir]
    if nproc == 1:
        command = [sys.executable, *worker_args]
    else:
        command = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            f"--nproc_per_node={nproc}",
            "--master_addr=127.0.0.1",
            f"--master_port={free_port()}",
            *worker_args,
        ]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=args.timeout, cwd=REPO)
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    raise RuntimeError(f"no result from {' '.join(command)}:\n{done.stdout}\n{done.stderr}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", default="umls")
    parser.add_argument(
        "--data-dir", default=os.environ.get("KGREASON_DATA_DIR", str(REPO.parent / "shared" / "data"))
    )
    parser.add_argument("--loops", nargs="+", default=list(LOOPS), choices=list(LOOPS))
    parser.add_argument("--nproc", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs (after one warm-up epoch)")
    parser.add_argument("--threads", type=int, default=1, help="threads per process")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per setting")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--loop", default="lcwa", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    print(f"{args.dataset}, {args.threads} thread(s) per process, {os.cpu_count()} cores on this machine")
    print(
        "| loop | model | processes | global batch | examples/s | s/epoch | speed-up | eval queries/s | loss |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for loop in args.loops:
        base = None
        for nproc in args.nproc:
            r = run(nproc, loop, args)
            base = base or r["examples_per_s"]
            print(
                f"| {r['loop']} | {r['model']} | {r['processes']} | {r['global_batch']} | "
                f"{r['examples_per_s']:.0f} | {r['epoch_s']:.2f} | {r['examples_per_s'] / base:.2f}x | "
                f"{r['eval_queries_per_s']:.0f} | {r['final_loss']:.4f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
