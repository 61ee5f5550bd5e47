"""How much the fact extractor's quality matters to CPL on the built-in family data, and what the reasoner's
reward can teach it (the frozen-extractor ablation of Fig. 5; docs/open.md).

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_cpl_extractor.py --fraction 0.2 --seeds 42 1 2 \\
        --output-dir runs/bench_cpl_extractor

For each seed, on the sub-sampled training graph:

* ``frozen``: the ``frozen_extractor`` variant (the distantly supervised extractor, never updated);
* ``oracle``: the same, but the extractor may suggest only *true* facts (the generated data's full ground truth;
  its ranking among them unchanged) -- the best a better extractor could do for the reasoner;
* ``cpl``: the full framework (the extractor trained by the reasoner's reward), with ``--set`` overrides.

It prints test Hits@5 / Hits@10 / MRR (tail, filtered, realistic ranks) per run and their means, and, for each
``cpl`` run, the precision of the extractor's top-``k`` suggestions out of every entity before (pre-trained) and
after joint training (a suggestion is correct when the fact holds in the full ground truth, relation included),
and of the text edges the reasoner was rewarded for (kept edges): correct relation, and correct pair (some
relation holds between the two entities). Uses the ground truth of the generated data, so it is an analysis
tool, not a method.
"""

from __future__ import annotations

import argparse
import ast
import json
import statistics
from pathlib import Path
from typing import Any

import torch

from kgreason.data import Dataset
from kgreason.data.family import build_family_dataset
from kgreason.open import CPLConfig, train_cpl
from kgreason.open import trainer as cpl_trainer
from kgreason.open.extractor import FactExtractor
from kgreason.open.trainer import load_cpl

METRICS = ("hits_at_5", "hits_at_10", "mrr")


def oracle_extractor_class(truth: torch.Tensor) -> type[FactExtractor]:
    """A :class:`FactExtractor` whose candidate edges are restricted to ``truth: LongTensor[n, 3]`` (and inverses)."""

    class OracleExtractor(FactExtractor):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            R, E = self.num_relations, self.num_entities
            t = truth.long()
            both = torch.cat([t, torch.stack([t[:, 2], t[:, 1] + R, t[:, 0]], 1)])
            keys = torch.unique((both[:, 0] * 2 * R + both[:, 1]) * E + both[:, 2]).to(self.device)
            src = torch.repeat_interleave(torch.arange(E, device=self.device), self._ptr[1:] - self._ptr[:-1])
            rel = torch.arange(R, device=self.device).unsqueeze(0) + self._inc_dir.unsqueeze(1) * R
            edge = (src.unsqueeze(1) * 2 * R + rel) * E + self._inc_other.unsqueeze(1)
            pos = torch.searchsorted(keys, edge.reshape(-1)).clamp(max=keys.numel() - 1)
            true = (keys[pos] == edge.reshape(-1)).reshape(edge.shape)
            self._inc_allowed = self._inc_allowed & true

    return OracleExtractor


def truth_sets(full: Dataset) -> tuple[set[tuple[int, int, int]], set[tuple[int, int]]]:
    """True edges (both directions, inverse relation ids ``r + R``) and true ordered pairs of the full data."""
    R = full.num_relations
    rows = full.all_triples().tolist()
    edges = {(h, r, t) for h, r, t in rows} | {(t, r + R, h) for h, r, t in rows}
    pairs = {(h, t) for h, _, t in rows} | {(t, h) for h, _, t in rows}
    return edges, pairs


def suggestion_precision(extractor: FactExtractor, k: int, edges: set[tuple[int, int, int]]) -> float:
    """Share of the top-``k`` suggestions out of every entity that are true facts."""
    s = extractor.suggest(torch.arange(extractor.num_entities, device=extractor.device), k=k)
    rows = torch.stack(
        [torch.arange(len(s.mask)).unsqueeze(1).expand_as(s.mask), s.relations.cpu(), s.targets.cpu()], -1
    )
    chosen = rows[s.mask.cpu()].tolist()
    return sum(tuple(e) in edges for e in chosen) / max(len(chosen), 1)


def extractor_report(
    run_dir: Path, edges: set[tuple[int, int, int]], pairs: set[tuple[int, int]]
) -> dict[str, float]:
    loaded = load_cpl(run_dir, device="cpu")
    extractor = loaded.agents.extractor
    assert extractor is not None
    k = loaded.config.suggestions
    out = {"precision_trained": suggestion_precision(extractor, k, edges)}
    kept = torch.load(run_dir / "text_edges.pt", map_location="cpu", weights_only=True)["edges"].tolist()
    out["kept_edges"] = float(len(kept))
    out["kept_true_relation"] = sum(tuple(e) in edges for e in kept) / max(len(kept), 1)
    out["kept_true_pair"] = sum((h, t) in pairs for h, _, t in kept) / max(len(kept), 1)
    state = torch.load(run_dir / "extractor_pretrained.pt", map_location="cpu", weights_only=True)
    extractor.encoder.load_state_dict(state)  # extractor_pretrained.pt: the encoder's state dict
    extractor.invalidate_cache()
    out["precision_pretrained"] = suggestion_precision(extractor, k, edges)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fraction", type=float, default=0.2)
    ap.add_argument("--seeds", type=int, nargs="+", default=[42, 1, 2])
    ap.add_argument(
        "--runs", nargs="+", default=["frozen", "oracle", "cpl"], choices=["frozen", "oracle", "cpl"]
    )
    ap.add_argument(
        "--set", nargs="*", default=[], metavar="KEY=VALUE", help="CPLConfig overrides of the cpl runs"
    )
    ap.add_argument("--output-dir", default="runs/bench_cpl_extractor")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    overrides = {k: ast.literal_eval(v) for k, v in (x.split("=", 1) for x in args.set)}
    full = build_family_dataset("default", with_corpus=True)
    edges, pairs = truth_sets(full)
    plain = cpl_trainer.FactExtractor
    results: dict[str, list[dict[str, float]]] = {name: [] for name in args.runs}
    print(
        f"# family, {args.fraction:.0%} of train, {args.threads} thread(s); test tail, filtered, realistic, x100"
    )
    for seed in args.seeds:
        for name in args.runs:
            folder = name + "".join(f"-{x}" for x in args.set) if name == "cpl" else name
            run_dir = Path(args.output_dir) / f"seed{seed}" / f"{round(args.fraction * 100)}pct" / folder
            summary = run_dir / "summary.json"
            if summary.exists():
                row = json.loads(summary.read_text())
            else:
                variant = "cpl" if name == "cpl" else "frozen_extractor"
                cfg = CPLConfig.for_variant(
                    variant, subsample=args.fraction, seed=seed, **(overrides if name == "cpl" else {})
                )
                cpl_trainer.FactExtractor = (
                    oracle_extractor_class(full.all_triples()) if name == "oracle" else plain
                )  # type: ignore[misc]
                try:
                    result = train_cpl(full, run_dir, cfg, resume=False)
                finally:
                    cpl_trainer.FactExtractor = plain  # type: ignore[misc]
                row = dict(result.test_summary())
                if name == "cpl":
                    row.update(extractor_report(run_dir, edges, pairs))
                summary.write_text(json.dumps(row))
            results[name].append(row)
            extra = ""
            if name == "cpl":
                extra = (
                    f"  top-{overrides.get('suggestions', CPLConfig().suggestions)} precision "
                    f"{row['precision_pretrained']:.3f} -> {row['precision_trained']:.3f}; kept edges "
                    f"{row['kept_edges']:.0f}: true relation {row['kept_true_relation']:.3f}, true pair "
                    f"{row['kept_true_pair']:.3f}"
                )
            cells = " ".join(f"{m} {100 * row[m]:5.1f}" for m in METRICS)
            print(f"seed {seed:3d} {name:7s} {cells}{extra}", flush=True)
    for name, rows in results.items():
        cells = " ".join(
            f"{m} {100 * statistics.mean(r[m] for r in rows):5.1f}"
            + (f" ± {100 * statistics.stdev(r[m] for r in rows):.1f}" if len(rows) > 1 else "")
            for m in METRICS
        )
        print(f"mean     {name:7s} {cells}  ({len(rows)} seeds)")


if __name__ == "__main__":
    main()
