"""The main job on the built-in ``family`` data: reward model -> walker -> CPL with the text corpus.

Steps (each writes a standard run directory under ``output_dir``):

1. ``kge/``     a KG-embedding reward model (ComplEx, 1-N training) on the family KG;
2. ``walker/``  the RL walker of Lin et al. (2018) with reward shaping by that model and action dropout;
3. ``cpl/``     CPL (Fu et al. 2019): the reasoner and the PCNN-ATT fact extractor trained together on the KG
                sub-sampled to ``subsample`` of its facts plus the text corpus, and MINERVA on the same
                sub-sampled KG alone as the baseline;

then it prints test metrics (filtered, tail) and a few answers explained by their paths (text edges marked,
with their supporting sentences). This module composes the library; it reads no command-line arguments.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kgreason.config import save_config

__all__ = ["DemoConfig", "run_demo"]


@dataclass
class DemoConfig:
    """Sizes and lengths of the demo (the defaults run in about 2.5 minutes on 2 idle CPU cores: 147 s measured,
    docs/benchmarks.md "Demo")."""

    size: str = "default"
    seed: int = 0
    subsample: float = 0.5
    kge_model: str = "complex"
    kge_epochs: int = 40
    kge_lr: float = 0.01
    kge_dim: int = 100
    walker_epochs: int = 12
    cpl_epochs: int | None = None
    explain_queries: int = 3
    device: str | None = None


def _walker_config(cfg: DemoConfig, kge_dir: Path) -> Any:
    from kgreason.reasoning.config import WalkerConfig

    return WalkerConfig(
        dataset="family",
        reward_model_dir=str(kge_dir),
        num_steps=3,
        num_rollouts=10,
        max_actions=100,
        embedding_dim=64,
        history_dim=64,
        history_layers=1,
        embedding_dropout=0.0,
        ff_dropout=0.0,
        action_dropout=0.3,
        entropy_weight=0.02,
        lr=3e-3,
        batch_size=64,
        epochs=cfg.walker_epochs,
        eval_every=4,
        early_stopping=False,
        beam_size=32,
        eval_batch_size=64,
        seed=cfg.seed,
        device=cfg.device,
    )


def run_demo(
    output_dir: str | Path, config: DemoConfig | None = None, echo: Callable[[str], Any] = print
) -> dict:
    """Run the three steps into ``output_dir`` and report through ``echo``; returns the test metrics by step."""
    from kgreason.data.family import build_family_dataset
    from kgreason.open import CPLConfig, explain_cpl, train_cpl
    from kgreason.reasoning import train_walker
    from kgreason.training.pipeline import pipeline

    cfg = config or DemoConfig()
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "demo_config.json")
    summary: dict[str, Any] = {}
    t0 = time.perf_counter()

    ds = build_family_dataset(cfg.size, seed=cfg.seed, with_corpus=True)
    ds.name = "family"
    echo(f"[data] {ds.summary()}; corpus: {len(ds.metadata['corpus'])} sentences")

    echo(f"[1/3] reward model: {cfg.kge_model}, {cfg.kge_epochs} epochs")
    kge = pipeline(
        ds,
        cfg.kge_model,
        output_dir=out / "kge",
        epochs=cfg.kge_epochs,
        lr=cfg.kge_lr,
        seed=cfg.seed,
        model_kwargs={"embedding_dim": cfg.kge_dim},
        device=cfg.device,
        trackers=[],
        resume=False,
    )
    summary["kge"] = _tail(kge.metrics)
    echo(f"      {kge.train_seconds:.1f} s; test (tail, filtered): {_fmt(summary['kge'])}")

    echo(f"[2/3] walker with reward shaping and action dropout, {cfg.walker_epochs} epochs")
    walker = train_walker(ds, out / "kge", out / "walker", _walker_config(cfg, out / "kge"), resume=False)
    summary["walker"] = _tail(walker.metrics)
    echo(f"      {walker.train_seconds:.1f} s; test (tail, filtered): {_fmt(summary['walker'])}")

    echo(f"[3/3] open KG reasoning on {cfg.subsample:.0%} of the KG + the text corpus: CPL vs MINERVA")
    results = {}
    for variant in ("minerva", "cpl"):
        vc = CPLConfig.for_variant(variant, subsample=cfg.subsample, seed=cfg.seed, device=cfg.device)
        if cfg.cpl_epochs is not None:
            vc = dataclasses.replace(
                vc, epochs=cfg.cpl_epochs, pretrain_epochs=min(vc.pretrain_epochs, cfg.cpl_epochs - 1)
            )
        res = train_cpl(ds, out / variant, vc, resume=False)
        results[variant] = res
        summary[variant] = _tail(res.metrics)
        echo(f"      {variant:<8} {res.train_seconds:.1f} s; test (tail, filtered): {_fmt(summary[variant])}")

    echo("\nAnswers explained by their paths (CPL; [text] marks an edge read from the corpus):")
    cpl_ds = results["cpl"].dataset
    for (h, r), truths in _distinct_queries(cpl_ds.test.tolist(), cfg.explain_queries):
        head, rel = cpl_ds.entities.label(h), cpl_ds.relations.label(r)
        labels = {cpl_ds.entities.label(t) for t in truths}
        answers = explain_cpl(out / "cpl", head, rel, top_k=3, paths_per_answer=1)
        echo(f"\n({head}, {rel}, ?)   held-out answer(s): {', '.join(sorted(labels))}")
        for rank, answer in enumerate(answers, start=1):
            first, *rest = str(answer).split("\n")
            echo(f"  {rank}. {first}{'   <- a held-out answer' if answer.label in labels else ''}")
            for line in rest:
                echo(f"     {line}")
    echo(f"\ndemo finished in {time.perf_counter() - t0:.0f} s; run directories under {out}")
    return summary


def _distinct_queries(triples: list[list[int]], limit: int) -> list[tuple[tuple[int, int], list[int]]]:
    """The first ``limit`` distinct ``(head, relation)`` queries of ``triples``, each with all its tails."""
    queries: dict[tuple[int, int], list[int]] = {}
    for h, r, t in triples:
        if (h, r) in queries:
            queries[(h, r)].append(t)
        elif len(queries) < limit:
            queries[(h, r)] = [t]
    return list(queries.items())


def _tail(result: Any) -> dict[str, float]:
    if result is None:
        return {}
    m = result.metrics
    return {k: float(m[f"tail.realistic.{k}"]) for k in ("mrr", "hits_at_1", "hits_at_10")}


def _fmt(metrics: dict[str, float]) -> str:
    return "  ".join(f"{k.replace('hits_at_', 'H@')}={v:.3f}" for k, v in metrics.items())
