"""Walker quality against Lin et al. 2018 (seed 002): Table 2 (test) and the Table 3 ablations (dev MRR).

Usage::

    export KGREASON_DATA_DIR=../shared/data OMP_NUM_THREADS=1
    python benchmarks/bench_walker_quality.py --dataset umls --ablations full --threads 1
    python benchmarks/bench_walker_quality.py --dataset kinship --ablations full,-rs,-ad --epochs 30

Steps:

1. the reward model (``--reward-model``, ConvE by default; ``complex`` is the paper's Ours(ComplEx) row):
   :func:`kgreason.training.pipeline` with the reference's settings for that model (see
   ``bench_kge_quality.py``; the run directory ``<output-root>/<dataset>-<model>`` is shared with it and reused
   when it is complete);
2. for each ablation (``full``, ``-rs``, ``-ad``, ``minerva``): :func:`kgreason.reasoning.train_walker` with
   ``WalkerConfig.preset(dataset, ablation)`` (``--epochs``, ``--patience``, ``--set key=value`` override the
   preset), early stopping on dev MRR (evaluated every 2 epochs), the best dev epoch's policy kept;
3. the kept policy is decoded with the preset's beam (128) and ranked on dev and test, filtered with train +
   valid + test, realistic ranks (an answer outside the beam ranks at the expected position among the
   unreached entities).

Printed per ablation: test tail-only MRR / Hits@1 / Hits@10 (the paper's protocol, Table 2), the both-sides
test figures beside them, and the dev tail MRR (Table 3; the paper's dev figures filter with train + dev only,
so ours are higher in absolute terms: compare directions). A head query is decoded as the tail query of the
inverse relation ``(t, r^-1, ?)``: by default the walker never trains on those (the paper's setting), so its
both-sides figures are marked "head side untrained"; ``--both-sides`` trains on the inverse queries too
(``train_inverse_queries``) and selects the model on both sides. Each run directory gets a ``summary.json``; a
run with one is not retrained (only re-evaluated for figures it lacks).
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_kge_quality import kge_run  # noqa: E402

#: the paper's figures (x100): Table 2 Ours(ConvE) test, Table 3 dev MRR
PAPER_TEST = {"umls": {"mrr": 94.0, "hits_at_1": 90.2, "hits_at_10": 99.2},
              "kinship": {"mrr": 86.5, "hits_at_1": 78.9, "hits_at_10": 98.2}}
PAPER_DEV = {"umls": {"full": 73.0, "-rs": 67.7, "-ad": 61.3}, "kinship": {"full": 75.0, "-rs": 66.5, "-ad": 65.4}}


def parse_overrides(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, _, raw = item.partition("=")
        try:
            out[key] = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            out[key] = raw
    return out


def run_ablation(
    dataset: str,
    ablation: str,
    reward_dir: Path,
    output_root: Path,
    overrides: dict[str, Any],
    both_sides: bool,
) -> dict[str, Any]:
    """Train (or reuse) one walker; returns its summary (test and dev metrics, timings, config)."""
    from kgreason.config import config_to_dict
    from kgreason.evaluation import RankBasedEvaluator
    from kgreason.reasoning import WalkerConfig, train_walker

    tag = {"-rs": "no_rs", "-ad": "no_ad"}.get(ablation, ablation) + ("-both" if both_sides else "")
    reward_model = reward_dir.name.removeprefix(f"{dataset}-")
    if reward_model != "conve":  # ConvE-shaped runs keep their original directory names
        tag += f"-{reward_model}"
    run_dir = output_root / f"{dataset}-walker-{tag}"
    summary_path = run_dir / "summary.json"
    if summary_path.exists():
        summary = json.loads(summary_path.read_text())
        if "test_both" not in summary:
            summary["test_both"] = evaluate_walker_dir(run_dir, "test", ("head", "tail"))
            summary_path.write_text(json.dumps(summary, indent=1))
        return summary
    values = dict(overrides)
    if both_sides:
        values.update(train_inverse_queries=True, eval_sides=["head", "tail"])
    cfg = WalkerConfig.preset(dataset, ablation=ablation, **values)
    start = time.perf_counter()
    result = train_walker(dataset, reward_dir if cfg.reward_shaping else None, run_dir, cfg)
    train_wall = time.perf_counter() - start

    ds, sides = result.dataset, ("head", "tail") if both_sides else ("tail",)
    evaluator = RankBasedEvaluator(ds.all_triples(), num_entities=ds.num_entities, batch_size=cfg.eval_batch_size)
    t0 = time.perf_counter()
    with torch.no_grad():
        dev = evaluator.evaluate(result.scorer(), ds.valid, sides=sides).metrics
    decode_seconds = time.perf_counter() - t0
    test = dict(result.metrics.metrics) if result.metrics is not None else {}
    with torch.no_grad():  # both sides; a tail-only walker answers head queries as untrained inverse queries
        test_both = test if both_sides else evaluator.evaluate(result.scorer(), ds.test, sides=("head", "tail")).metrics
    history = result.loop.history
    summary = {
        "dataset": dataset,
        "ablation": ablation,
        "both_sides": both_sides,
        "test": test,
        "test_both": dict(test_both),
        "dev": dict(dev),
        "epochs_trained": len(result.losses),
        "best_epoch": result.best_epoch,
        "train_seconds": result.train_seconds,
        "wall_seconds": train_wall,
        "dev_decode_seconds": decode_seconds,
        "dev_curve": history.metric(f"valid.{'both' if both_sides else 'tail'}.realistic.mrr"),
        "hit_rate": history.metric("train.hit_rate"),
        "config": config_to_dict(result.config),
    }
    summary_path.write_text(json.dumps(summary, indent=1))
    return summary


def evaluate_walker_dir(run_dir: Path, split: str, sides: tuple[str, ...]) -> dict[str, float]:
    """Metrics of the walker saved in ``run_dir`` on ``split`` (filtered with all splits, its own beam)."""
    from kgreason.data.registry import load_dataset
    from kgreason.evaluation import RankBasedEvaluator
    from kgreason.reasoning import load_walker
    from kgreason.reasoning.beam_search import WalkerScorer

    walker = load_walker(run_dir)
    cfg = walker.config
    ds = load_dataset(cfg.dataset, data_dir=cfg.data_dir)
    evaluator = RankBasedEvaluator(ds.all_triples(), num_entities=ds.num_entities, batch_size=cfg.eval_batch_size)
    scorer = WalkerScorer(walker.policy, walker.env, cfg.beam_size, batch_size=cfg.eval_batch_size)
    with torch.no_grad():
        return dict(evaluator.evaluate(scorer, ds.split(split), sides=sides).metrics)


def fmt(metrics: dict[str, float], side: str) -> str:
    m = lambda k: 100 * metrics[f"{side}.realistic.{k}"]  # noqa: E731
    return f"MRR {m('mrr'):5.1f} H@1 {m('hits_at_1'):5.1f} H@10 {m('hits_at_10'):5.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="umls")
    ap.add_argument("--ablations", default="full", help="comma-separated: full, -rs, -ad, minerva")
    ap.add_argument("--epochs", type=int, default=None, help="walker epochs (default: the preset's)")
    ap.add_argument("--patience", type=int, default=None, help="evaluations (every 2 epochs) without improvement")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--output-root", default="runs/quality")
    ap.add_argument("--reward-model", default="conve", help="KGE model of the reward shaper (conve, complex, ...)")
    ap.add_argument("--kge-epochs", type=int, default=300, help="reward model: maximum epochs")
    ap.add_argument("--both-sides", action="store_true", help="train on inverse queries too; test both sides")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="more WalkerConfig overrides")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    root = Path(args.output_root)

    t0 = time.perf_counter()
    reward_dir, kge, kge_seconds = kge_run(args.dataset, args.reward_model, root, epochs=args.kge_epochs)
    print(
        f"# {args.dataset}: {args.reward_model} reward model {reward_dir} (train {kge_seconds:.0f} s, wall "
        f"{time.perf_counter() - t0:.0f} s): test tail {fmt(kge, 'tail')} | both {fmt(kge, 'both')}",
        flush=True,
    )
    overrides = parse_overrides(args.set)
    if args.epochs is not None:
        overrides["epochs"] = args.epochs
    if args.patience is not None:
        overrides["patience"] = args.patience
    print(f"# walker, {args.threads} thread(s); test/dev filtered with train+valid+test, realistic ranks, x100")
    for ablation in [a.strip() for a in args.ablations.split(",") if a.strip()]:
        s = run_ablation(args.dataset, ablation, reward_dir, root, overrides, args.both_sides)
        paper = PAPER_TEST.get(args.dataset, {})
        line = f"{ablation:8s} test tail: {fmt(s['test'], 'tail')}"
        both_label = "both" if s["both_sides"] else "both (head side untrained)"
        line += f" | test {both_label}: {fmt(s['test_both'], 'both')}"
        line += f" | dev tail MRR {100 * s['dev']['tail.realistic.mrr']:5.1f}"
        if s["both_sides"]:
            line += f" (both {100 * s['dev']['both.realistic.mrr']:5.1f})"
        ref_dev = PAPER_DEV.get(args.dataset, {}).get(ablation)
        if ablation == "full" and paper:
            line += f"   [paper test MRR {paper['mrr']} H@1 {paper['hits_at_1']}"
            line += f", dev {ref_dev}]" if ref_dev else "]"
        elif ref_dev:
            line += f"   [paper dev {ref_dev}]"
        line += (
            f"\n         {s['epochs_trained']} epochs (best {s['best_epoch']}), train {s['train_seconds']:.0f} s,"
            f" wall {s['wall_seconds']:.0f} s"
        )
        print(line, flush=True)


if __name__ == "__main__":
    main()
