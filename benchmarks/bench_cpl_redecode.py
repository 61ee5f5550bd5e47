"""Decode the test split of saved ``bench_cpl.py`` runs again, without and with the walker's last-step mask.

Reads every ``<output-dir>/seed<k>/<pct>pct/<variant>`` run directory that holds a ``summary.json`` (as written by
``benchmarks/bench_cpl.py``) and prints, per run, test Hits@5 / Hits@10 / MRR (tail, filtered with all splits,
realistic ranks, x100) decoded over every edge (``plain``, what the run reported: ``saved``) and with
``mask_known_answers`` (``masked``: no last-step edge to another known answer of the query)::

    KGREASON_DATA_DIR=../shared/data python benchmarks/bench_cpl_redecode.py runs/bench_cpl
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from kgreason.data.registry import load_dataset
from kgreason.evaluation import RankBasedEvaluator
from kgreason.open import load_cpl
from kgreason.reasoning.beam_search import WalkerScorer

KEYS = ("hits_at_5", "hits_at_10", "mrr")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("output_dir", type=Path, help="a bench_cpl.py output directory")
    parser.add_argument(
        "--dataset", default="family", help="the dataset the runs were trained on (full splits)"
    )
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    full = load_dataset(args.dataset)
    for run_dir in sorted(args.output_dir.glob("seed*/*pct/*")):
        if not (run_dir / "summary.json").exists():
            continue
        run = load_cpl(run_dir)
        rc = run.config.reasoner
        evaluator = RankBasedEvaluator(
            full.all_triples(), num_entities=full.num_entities, batch_size=rc.eval_batch_size
        )
        row: dict[str, object] = {"run": str(run_dir)}
        for masked in (False, True):
            scorer = WalkerScorer(
                run.agents.policy,
                run.env,
                rc.beam_size,
                batch_size=rc.eval_batch_size,
                mask_known_answers=masked,
            )
            with torch.no_grad():
                metrics = evaluator.evaluate(scorer, full.test, sides=("tail",)).metrics
            row["masked" if masked else "plain"] = [
                round(100 * metrics[f"tail.realistic.{k}"], 2) for k in KEYS
            ]
        saved = json.loads((run_dir / "metrics.json").read_text())
        row["saved"] = [round(100 * saved[f"tail.realistic.{k}"], 2) for k in KEYS]
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
