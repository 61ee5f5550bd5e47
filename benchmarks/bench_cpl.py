"""CPL vs MINERVA vs Two-Step (and the ablations of Fig. 5) on the built-in family KG + corpus.

For every training-graph fraction (default 20/50/100% of train, fixed seed) it trains, with the same reasoner,
epochs, beam and validation-based model selection:

* ``minerva``  -- the reasoner on the sub-sampled KG alone;
* ``two_step`` -- PCNN-ATT facts above a confidence threshold (tuned on valid) added to the KG, then the reasoner;
* ``cpl``      -- the full collaborative framework;
* with ``--ablations``: ``no_adaptive_sampling`` (Fig. 5's CPL2), ``no_replay``, ``frozen_extractor`` and
  ``no_adaptive_sampling_frozen`` (Fig. 5's CPL1: the paper's frozen-extractor comparison is CPL1 vs CPL2).

and prints test Hits@5, Hits@10 and MRR (filtered, tail-only, realistic ranks), the training time, the mean
joint-epoch time (CPL variants) and the best (validation) epoch; writes ``results.json``, a Markdown table
(``results.md``) and the Fig. 4 plot (``fig4_<pct>.png``: validation Hits@10 of MINERVA and CPL over epochs and
the share of CPL's positive paths that use a text edge). The extractor is pre-trained once per fraction (by the
``cpl`` run) and reused by the other text variants (identical data, seed and settings)::

    OMP_NUM_THREADS=1 python benchmarks/bench_cpl.py --output-dir runs/bench_cpl --jobs 2 --ablations \\
        --ablation-fractions 0.2 0.5 --seeds 42 1 2

Each run is single-threaded; ``--jobs`` runs that many at once (processes). With several ``--seeds`` (the
``CPLConfig.seed``: reasoner and extractor initialisation, sampling; the sub-sampled graph stays the same) the
table shows the mean and the standard deviation over seeds: with 225 test queries one run's Hits@10 has a
standard error of about 3 points, so single-seed differences smaller than that are noise. A run directory
``<output-dir>/seed<k>/<pct>pct/<variant>`` that holds a ``summary.json`` is not trained again.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import statistics
import time
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any

BASELINES = ("minerva", "two_step", "cpl")
ABLATIONS = ("no_adaptive_sampling", "no_replay", "frozen_extractor", "no_adaptive_sampling_frozen")


def run_one(
    variant: str, fraction: float, seed: int, out: str, overrides: dict[str, Any], threads: int
) -> dict[str, Any]:
    """Train one variant at one fraction and seed (in a worker process); returns its summary and validation
    history (read back from ``summary.json`` when the run is complete)."""
    base = Path(out) / f"seed{seed}" / f"{int(round(fraction * 100))}pct"
    run_dir = base / variant
    if (run_dir / "summary.json").exists():
        return dict(json.loads((run_dir / "summary.json").read_text()))
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    import torch

    torch.set_num_threads(threads)
    from kgreason.data.family import build_family_dataset
    from kgreason.io import write_json
    from kgreason.open import CPLConfig, train_cpl

    cfg = CPLConfig.for_variant(variant, subsample=fraction, **{"seed": seed, **overrides})
    init = base / "cpl" / "extractor_pretrained.pt"
    use_init = cfg.uses_text and variant != "cpl" and init.exists()
    ds = build_family_dataset("default", with_corpus=cfg.uses_text)
    start = time.perf_counter()
    result = train_cpl(ds, run_dir, cfg, extractor_init=init if use_init else None, resume=False)
    wall = time.perf_counter() - start
    joint = [s for e, s in enumerate(result.epoch_seconds, 1) if cfg.is_joint_epoch(e)]
    summary = {
        "variant": variant,
        "fraction": fraction,
        "seed": seed,
        "overrides": overrides,
        "test": result.test_summary(),
        "best_epoch": result.best_epoch,
        "wall_seconds": wall,
        "train_seconds": result.train_seconds,
        "extractor_pretrain_seconds": result.extractor_pretrain_seconds,
        "mean_joint_epoch_seconds": sum(joint) / len(joint) if joint else None,
        "mean_epoch_seconds": sum(result.epoch_seconds) / max(len(result.epoch_seconds), 1),
        "test_text_share": result.test_text_share,
        "two_step": result.two_step.to_dict() if result.two_step is not None else None,
        "history": result.history.metrics,
    }
    write_json(run_dir / "summary.json", summary)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.2, 0.5, 1.0])
    parser.add_argument("--ablations", action="store_true", help="also run the ablations of Fig. 5")
    parser.add_argument("--ablation-fractions", type=float, nargs="+", default=None,
                        help="fractions for the ablations (default: --fractions)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42], help="CPLConfig.seed values (default 42)")
    parser.add_argument("--output-dir", default="runs/bench_cpl")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once (processes)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--epochs", type=int, default=None, help="override CPLConfig.epochs")
    parser.add_argument("--variants", nargs="+", default=None, help="only these variants (default: all planned)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="CPLConfig overrides for every run (Python literals), e.g. extractor_lr=3e-4")
    args = parser.parse_args()

    overrides: dict[str, Any] = {}
    if args.epochs is not None:
        overrides["epochs"] = args.epochs
    for item in args.set:
        key, _, value = item.partition("=")
        try:
            overrides[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            overrides[key] = value
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    ablation_fractions = args.ablation_fractions if args.ablation_fractions is not None else args.fractions
    plan: list[tuple[str, float, int]] = [(v, f, s) for s in args.seeds for f in args.fractions for v in BASELINES]
    if args.ablations:
        plan += [(v, f, s) for s in args.seeds for f in ablation_fractions for v in ABLATIONS]
    if args.variants:
        plan = [p for p in plan if p[0] in args.variants]

    start = time.perf_counter()
    results: list[dict[str, Any]] = []
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        # the cpl run of a (fraction, seed) pre-trains the extractor the other text variants reuse: run those after
        first = [p for p in plan if p[0] in ("cpl", "minerva")]
        waiting = [p for p in plan if p not in first]

        def submit(p: tuple[str, float, int]) -> None:
            pending[pool.submit(run_one, p[0], p[1], p[2], str(out), overrides, args.threads)] = p

        pending: dict[Future[dict[str, Any]], tuple[str, float, int]] = {}
        for p in first:
            submit(p)
        if not any(p[0] == "cpl" for p in first):  # nothing to wait for (e.g. --variants two_step)
            for w in waiting:
                submit(w)
            waiting = []
        while pending:
            done = next(fut for fut in _as_completed(pending))
            v, f, s = pending.pop(done)
            res = done.result()
            results.append(res)
            t = res["test"]
            print(
                f"{v:>22} {int(round(f * 100)):>3}% seed {s:<3} H@5 {t['hits_at_5']:.3f}  H@10 {t['hits_at_10']:.3f}  "
                f"MRR {t['mrr']:.3f}  best epoch {res['best_epoch']}  {res['wall_seconds']:.0f} s",
                flush=True,
            )
            if v == "cpl":
                for w in [x for x in waiting if x[1:] == (f, s)]:
                    waiting.remove(w)
                    submit(w)
            if not any(p[0] == "cpl" for p in pending.values()):  # no cpl run left to wait for
                for w in waiting:
                    submit(w)
                waiting = []
    total = time.perf_counter() - start

    order = {v: i for i, v in enumerate((*BASELINES, *ABLATIONS))}
    results.sort(key=lambda r: (r["fraction"], order[r["variant"]], r["seed"]))
    (out / "results.json").write_text(json.dumps({"results": results, "total_seconds": total}, indent=1))
    table = summary_table(results, len(args.seeds))
    (out / "results.md").write_text(table + f"\n\nTotal wall time: {total:.0f} s\n")
    print(table)
    print(f"total wall time {total:.0f} s")

    try:
        from kgreason.open import plot_text_share
        from kgreason.training.loop import TrainingHistory

        seed = args.seeds[0]
        for f in args.fractions:
            runs = {r["variant"]: r for r in results if r["fraction"] == f and r["seed"] == seed}
            if "cpl" in runs and "minerva" in runs:
                histories = {
                    "MINERVA": TrainingHistory(metrics=runs["minerva"]["history"]),
                    "CPL": TrainingHistory(metrics=runs["cpl"]["history"]),
                }
                path = plot_text_share(
                    histories, out / f"fig4_{int(round(f * 100))}pct.png", share_of="CPL",
                    title=f"Fig. 4 on family ({int(round(f * 100))}% train graph, seed {seed})",
                )
                print(f"wrote {path}")
    except ImportError:
        print("matplotlib missing: no Fig. 4 plot")


def summary_table(results: list[dict[str, Any]], num_seeds: int) -> str:
    """A Markdown table: one row per (fraction, variant), x100 test figures as ``mean ± std`` over seeds."""
    groups: dict[tuple[float, str], list[dict[str, Any]]] = {}
    for r in results:
        groups.setdefault((r["fraction"], r["variant"]), []).append(r)

    def cell(values: list[float], scale: float = 100.0, digits: int = 1) -> str:
        mean = scale * statistics.fmean(values)
        if len(values) < 2:
            return f"{mean:.{digits}f}"
        return f"{mean:.{digits}f} ± {scale * statistics.stdev(values):.{digits}f}"

    lines = [
        "| train graph | variant | Hits@5 | Hits@10 | MRR | best epoch | run time (s) | joint epoch (s) | "
        "seeds |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for (fraction, variant), runs in groups.items():
        joint = [r["mean_joint_epoch_seconds"] for r in runs if r["mean_joint_epoch_seconds"]]
        name = variant
        thresholds = sorted({r["two_step"]["threshold"] for r in runs if r["two_step"]})
        if thresholds:
            name += f" (threshold {', '.join(f'{t:g}' for t in thresholds)})"
        lines.append(
            f"| {int(round(fraction * 100))}% | {name} | "
            f"{cell([r['test']['hits_at_5'] for r in runs])} | {cell([r['test']['hits_at_10'] for r in runs])} | "
            f"{cell([r['test']['mrr'] for r in runs])} | {', '.join(str(r['best_epoch']) for r in runs)} | "
            f"{cell([r['wall_seconds'] for r in runs], 1.0, 0)} | {cell(joint, 1.0) if joint else ''} | "
            f"{len(runs)}/{num_seeds} |"
        )
    return "\n".join(lines)


def _as_completed(pending: dict[Future[dict[str, Any]], Any]) -> Any:
    from concurrent.futures import as_completed

    return as_completed(list(pending))


if __name__ == "__main__":
    main()
