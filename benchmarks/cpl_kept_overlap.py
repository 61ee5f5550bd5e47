"""How many of a trained CPL run's final suggestions repeat a kept text edge (docs/open.md, "Fig. 5 as the paper
ran it"): for every entity, the extractor's top-``k`` (as deployed) against the kept edges offered out of it.

    KGREASON_DATA_DIR=../shared/data python benchmarks/cpl_kept_overlap.py runs/bench_cpl_v2_50/seed3/50pct/cpl ...
"""

from __future__ import annotations

import argparse

import torch

from kgreason.open import load_cpl


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="CPL run directories")
    args = parser.parse_args()
    for run in args.runs:
        loaded = load_cpl(run)
        extractor, memory = loaded.agents.extractor, loaded.agents.memory
        if extractor is None or memory is None:
            raise SystemExit(f"{run}: not a CPL run with kept edges")
        entities = torch.arange(extractor.num_entities)
        s = extractor.suggest(entities, k=loaded.config.suggestions)
        m_rel, m_tgt, m_mask = memory.edges_out(entities)
        same = (
            (m_rel.unsqueeze(2) == s.relations.unsqueeze(1))
            & (m_tgt.unsqueeze(2) == s.targets.unsqueeze(1))
            & m_mask.unsqueeze(2)
            & s.mask.unsqueeze(1)
        )
        repeated, suggested, kept = int(same.any(1).sum()), int(s.mask.sum()), int(m_mask.sum())
        print(
            f"{run}: {suggested} suggestions, {kept} kept edges offered, {repeated} suggestions repeat a kept edge "
            f"({repeated / max(suggested, 1):.2f}); distinct text edges on offer {suggested + kept - repeated}"
        )


if __name__ == "__main__":
    main()
