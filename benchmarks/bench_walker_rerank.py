"""A trained walker's answers re-ranked by its reward model, for several weights (``WalkerConfig.rerank_weight``).

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_walker_rerank.py RUN_DIR [--reward-model KGE_RUN] [--weights 0 0.5 1 2 4]

Evaluates the walker of ``RUN_DIR`` (``kgreason train walker``) on the validation and test splits (tail queries,
filtered, realistic ranks; an answer the beam never reaches ranks among the unreached entities) with answers
ranked by ``log P(best path) + w * log sigmoid f(e_s, r_q, e)`` for each weight ``w`` (0: the paper's ranking),
prints the reward model ``f`` alone beside them, and the test figures at the weight with the best validation MRR
(the weight is chosen on validation, like any hyper-parameter). Re-ranking only re-orders the answers the beam
reached, so each answer keeps its paths; ``f`` cannot rescue an answer the walker never reaches.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from kgreason.evaluation import evaluate_dataset
from kgreason.reasoning.reward import RewardShaper
from kgreason.reasoning.trainer import load_walker, walker_scorer
from kgreason.training.run_dir import resolve_dataset

KEYS = ("mrr", "hits_at_1", "hits_at_10")


def _fmt(metrics: dict[str, float]) -> str:
    return "  ".join(f"{k} {100 * metrics[f'tail.realistic.{k}']:5.1f}" for k in KEYS)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--reward-model", type=Path, help="KGE run directory (default: the run's reward model)")
    ap.add_argument("--weights", type=float, nargs="+", default=[0.0, 0.25, 0.5, 1.0, 2.0, 4.0])
    ap.add_argument("--data-dir", type=Path)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    base = load_walker(args.run_dir, rerank_weight=0.0)
    ds = resolve_dataset(base.config.dataset, str(args.data_dir) if args.data_dir else base.config.data_dir)
    rm_dir = args.reward_model or base.config.reward_model_dir
    if rm_dir is None:
        raise SystemExit(f"{args.run_dir}: the run has no reward model; pass --reward-model KGE_RUN_DIR")
    print(f"# {args.run_dir} on {ds.name}, reward model {rm_dir}; tail, filtered, realistic, x100; "
          f"{args.threads} thread(s)")  # fmt: skip
    reranker = RewardShaper.from_run_dir(rm_dir, num_relations=len(base.relations))
    best: tuple[float, float] | None = None
    results: dict[float, dict[str, dict[str, float]]] = {}
    for split in ("valid", "test"):
        rm = evaluate_dataset(reranker.model, ds, split, ("tail",), batch_size=256).metrics
        print(f"{split:5s} reward model alone      {_fmt(rm)}")
        for w in args.weights:
            scorer = walker_scorer(base.policy, base.env, base.config, reranker, rerank_weight=w)
            m = evaluate_dataset(scorer, ds, split, ("tail",), batch_size=32).metrics
            results.setdefault(w, {})[split] = m
            print(f"{split:5s} walker, rerank w={w:<5g}  {_fmt(m)}", flush=True)
            if split == "valid" and (best is None or m["tail.realistic.mrr"] > best[1]):
                best = (w, m["tail.realistic.mrr"])
    assert best is not None
    print(f"best weight on valid: {best[0]:g}; test at it: {_fmt(results[best[0]]['test'])}")


if __name__ == "__main__":
    main()
