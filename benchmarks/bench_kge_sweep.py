"""A small hyper-parameter sweep around a model's defaults: validation and test MRR per variant.

Usage::

    KGREASON_DATA_DIR=../shared/data OMP_NUM_THREADS=1 \\
        python benchmarks/bench_kge_sweep.py --dataset kinship --model complex --seed 0 \\
        --variant 'bs128={"batch_size": 128}' \\
        --variant 'ls0={"label_smoothing": 0.0}'

Every variant is :func:`kgreason.training.pipeline` with the model's defaults and the variant's JSON overrides
on top (``default`` -- no overrides -- is always run first). Printed per variant: the tail-only filtered MRR on
valid and test (realistic ranks, filtered with all splits), test Hits@1, the both-sides test MRR and the wall
time. Choose on the validation column; the test column is there to report, not to select.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

import torch

from kgreason.data.registry import load_dataset
from kgreason.evaluation import RankBasedEvaluator
from kgreason.training import pipeline


def parse_variant(text: str) -> tuple[str, dict[str, Any]]:
    """``NAME=JSON`` -> (name, overrides)."""
    name, sep, payload = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"--variant expects NAME=JSON, got {text!r}")
    try:
        overrides = json.loads(payload)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"--variant {name}: invalid JSON {payload!r}: {error}") from error
    if not isinstance(overrides, dict):
        raise argparse.ArgumentTypeError(f"--variant {name}: expected a JSON object, got {payload!r}")
    return name, overrides


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", default="kinship")
    parser.add_argument("--model", default="complex")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=None, help="override the epochs of every variant")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1")))
    parser.add_argument("--variant", type=parse_variant, action="append", default=[], metavar="NAME=JSON")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    dataset = load_dataset(args.dataset)
    evaluator = RankBasedEvaluator(dataset.all_triples(), num_entities=dataset.num_entities)
    print(
        f"# {args.dataset} {args.model}, seed {args.seed}, {args.threads} thread(s); tail-only filtered MRR"
    )
    for name, overrides in [("default", {}), *args.variant]:
        start = time.perf_counter()
        if args.epochs is not None:
            overrides = {**overrides, "epochs": args.epochs}
        result = pipeline(
            dataset=dataset,
            model=args.model,
            output_dir=None,
            evaluate=True,
            trackers=[],
            seed=args.seed,
            **overrides,
        )
        model = result.model.eval()
        with torch.no_grad():
            valid = evaluator.evaluate(model, dataset.valid, sides=("tail",)).metrics["tail.realistic.mrr"]
        test = result.metrics.metrics
        print(
            f"{name:12s} valid tail {valid:.4f}  test tail {test['tail.realistic.mrr']:.4f} "
            f"H@1 {test['tail.realistic.hits_at_1']:.4f}  both {test['both.realistic.mrr']:.4f}  "
            f"{time.perf_counter() - start:.0f} s",
            flush=True,
        )


if __name__ == "__main__":
    main()
