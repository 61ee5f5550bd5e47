"""REINFORCE baselines with and without action dropout, on the 2-hop ``rule`` toy graph of the walker tests.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_walker_baselines.py            # ~1 minute at 1 thread

Trains the small walker of ``tests/reasoning/test_trainer.py`` (``small_config``: binary reward, 10 epochs, the
best validation epoch kept) for every baseline (``none``, ``moving_average``, ``rollout_mean``), with action
dropout 0.3 and without, over seeds 0-2, and prints the test tail MRR of each run (filtered, realistic ranks).
Action dropout samples walks off-policy; a baseline then gives negative advantages to actions the policy
gives ~0, and training can diverge (docs/reasoning.md, "Baselines and action dropout do not mix").
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import warnings
from pathlib import Path

import torch

from kgreason.reasoning.config import BASELINES
from kgreason.reasoning.trainer import train_walker

TESTS = Path(__file__).resolve().parent.parent / "tests" / "reasoning"


def _load(name: str, path: Path) -> object:
    """Import a module of the test suite by path (the toy graph and the small config live there)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--action-dropout", type=float, nargs="+", default=[0.3, 0.0])
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    conftest = _load("walker_toy_conftest", TESTS / "conftest.py")
    small_config = _load("walker_toy_trainer", TESTS / "test_trainer.py").small_config  # type: ignore[attr-defined]
    ds = conftest.rule_dataset()  # type: ignore[attr-defined]
    print(f"# rule toy graph, {args.epochs} epochs, {args.threads} thread(s); test tail MRR per seed {args.seeds}")
    for alpha in args.action_dropout:
        for baseline in BASELINES:
            mrrs = []
            for seed in args.seeds:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)  # the config warns about exactly this case
                    cfg = small_config(baseline=baseline, action_dropout=alpha, epochs=args.epochs, seed=seed)
                    result = train_walker(ds, None, None, cfg)
                mrrs.append(result.metrics.metrics["tail.realistic.mrr"])
            cells = " / ".join(f"{m:.2f}" for m in mrrs)
            print(f"action dropout {alpha:.1f}  baseline {baseline:15s} MRR {cells}", flush=True)


if __name__ == "__main__":
    main()
