"""How calibrated a reward model's ``sigmoid f`` is, before and after Platt scaling (``reward_calibration="platt"``).

Usage::

    python benchmarks/bench_reward_calibration.py --dataset kinship runs/kin-complex runs/kin-complex-ce300

For each KGE run directory: the Platt fit ``sigmoid(a f + b)`` that a walker run with ``reward_calibration="platt"``
makes (:func:`kgreason.reasoning.reward.fit_platt_scaling` on the validation queries and their inverses, answers
from train + valid), then, over the validation tail queries and every entity, the mean reward of the training
answers, of the held-out answers (valid answers that are not training answers: what shaping should reward) and of
the other entities, and the share of the other entities whose reward exceeds 0.1 -- raw and calibrated.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from kgreason.reasoning.reward import RewardShaper, fit_platt_scaling
from kgreason.training.run_dir import resolve_dataset
from kgreason.training.samplers import triple_keys


def _answer_mask(
    queries: torch.Tensor, known: torch.Tensor, num_relations: int, num_entities: int
) -> torch.Tensor:
    """``BoolTensor[n, E]``: entity ``e`` is a known answer of tail query ``queries[i] = (h, r)``."""
    keys = triple_keys(known, num_entities, num_relations)
    first = triple_keys(
        torch.nn.functional.pad(queries, (0, 1)), num_entities, num_relations
    )  # (h, r, entity 0)
    return torch.isin(first[:, None] + torch.arange(num_entities), keys)


def _stats(probs: torch.Tensor, train: torch.Tensor, held_out: torch.Tensor) -> str:
    wrong = probs[~(train | held_out)]
    return (
        f"train answers {probs[train].mean():.3f}  held-out answers {probs[held_out].mean():.3f}  "
        f"others {wrong.mean():.4f}  others > 0.1: {100 * (wrong > 0.1).float().mean():.1f}%"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("reward_models", type=Path, nargs="+", help="kgreason KGE run directories")
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--data-dir", type=Path)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ds = resolve_dataset(args.dataset, None if args.data_dir is None else str(args.data_dir))
    valid, known = ds.split("valid"), torch.cat([ds.train, ds.split("valid")])
    queries = torch.unique(valid[:, :2], dim=0)
    train = _answer_mask(queries, ds.train, ds.num_relations, ds.num_entities)
    held_out = _answer_mask(queries, known, ds.num_relations, ds.num_entities) & ~train
    print(
        f"{ds.name}: {len(queries)} validation tail queries x {ds.num_entities} entities, threads {args.threads}"
    )
    for rm in args.reward_models:
        shaper = RewardShaper.from_run_dir(rm, num_relations=ds.num_relations)
        a, b = fit_platt_scaling(shaper, valid, known, ds.num_entities)
        raw = shaper.log_scores(queries[:, 0], queries[:, 1]).exp()
        shaper.set_calibration(a, b)
        calibrated = shaper.log_scores(queries[:, 0], queries[:, 1]).exp()
        print(f"{rm}: a = {a:.3f}, b = {b:.3f}")
        print(f"  raw         {_stats(raw, train, held_out)}")
        print(f"  calibrated  {_stats(calibrated, train, held_out)}")


if __name__ == "__main__":
    main()
