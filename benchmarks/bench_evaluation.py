"""Time filtered both-sides evaluation with a random DistMult-like scorer.

Usage::

    python benchmarks/bench_evaluation.py --dataset fb15k-237 --threads 2
    python benchmarks/bench_evaluation.py --dataset umls --threads 1   # quick smoke run

Reads ``<KGREASON_DATA_DIR or ../shared/data>/<dataset>/{train,valid,test}.txt``. Prints the wall time of the
evaluation, the thread count, and how it splits between the scorer's matmul and everything else (ranking,
filtering, metrics).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

from kgreason.data import Dataset
from kgreason.evaluation import RankBasedEvaluator

REPO = Path(__file__).resolve().parents[1]


class TimedDistMult:
    """``score_t((h, r)) = (e_h * w_r) @ E.T``, ``score_h((r, t)) = (w_r * e_t) @ E.T``; times its own calls."""

    def __init__(
        self, num_entities: int, num_relations: int, dim: int, device: torch.device, seed: int = 0
    ) -> None:
        g = torch.Generator().manual_seed(seed)
        self.entity = torch.randn(num_entities, dim, generator=g).to(device)
        self.relation = torch.randn(num_relations, dim, generator=g).to(device)
        self.device = device
        self.seconds = 0.0

    def _timed(self, query: torch.Tensor) -> torch.Tensor:
        start = time.perf_counter()
        scores = query @ self.entity.T
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.seconds += time.perf_counter() - start
        return scores

    def score_t(self, hr: torch.Tensor) -> torch.Tensor:
        return self._timed(self.entity[hr[:, 0]] * self.relation[hr[:, 1]])

    def score_h(self, rt: torch.Tensor) -> torch.Tensor:
        return self._timed(self.relation[rt[:, 0]] * self.entity[rt[:, 1]])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="fb15k-237")
    parser.add_argument(
        "--data-dir", default=os.environ.get("KGREASON_DATA_DIR", str(REPO.parent / "shared" / "data"))
    )
    parser.add_argument("--split", default="test")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--dim", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--repeats", type=int, default=1, help="timed runs after one untimed warm-up on 1 batch"
    )
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    ds = Dataset.from_directory(Path(args.data_dir) / args.dataset)
    triples = ds.split(args.split)
    scorer = TimedDistMult(ds.num_entities, ds.num_relations, args.dim, device)

    start = time.perf_counter()
    evaluator = RankBasedEvaluator(
        ds.all_triples(), ds.num_entities, batch_size=args.batch_size, device=device
    )
    index_seconds = time.perf_counter() - start
    evaluator.evaluate(
        scorer, triples[: min(len(triples), 64)]
    )  # warm-up (allocator, filter index to device)

    for _ in range(args.repeats):
        scorer.seconds = 0.0
        start = time.perf_counter()
        result = evaluator.evaluate(scorer, triples)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        total = time.perf_counter() - start
        print(
            f"{ds.name} {args.split}: {len(triples):,} triples x 2 sides, {ds.num_entities:,} entities, "
            f"dim {args.dim}, batch {evaluator.batch_size}, device {device}, threads {torch.get_num_threads()}"
        )
        print(f"filter index build: {index_seconds:.3f} s")
        print(
            f"evaluation: {total:.3f} s  (scoring matmul {scorer.seconds:.3f} s = {scorer.seconds / total:.0%}, "
            f"ranking/filtering/metrics {total - scorer.seconds:.3f} s = {(total - scorer.seconds) / total:.0%})"
        )
    print(result.format())


if __name__ == "__main__":
    main()
