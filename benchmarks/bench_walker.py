"""Speed of the multi-hop walker: training and beam-decoding queries per second, and implied FLOP/s.

Default setting = the reference measurement (MultiHopKG on UMLS: batch 128, 20 rollouts, 2 steps, 200-d
embeddings and history, 3-layer LSTM, bandwidth 400, beam 128), which trains at 29 queries/s and decodes at
26 queries/s with 2 threads::

    OMP_NUM_THREADS=2 python benchmarks/bench_walker.py --threads 2

``--compare-dropout-modes`` times training with ``embedding_dropout_mode="table"`` and ``"per_use"`` in the same
run and prints the ratio (e.g. the Kinship preset's dropout: ``--dataset kinship --embedding-dropout 0.3
--ff-dropout 0.1 --action-dropout 0.9 --compare-dropout-modes``).

Reports the thread count, training and decoding queries/s, the matmul FLOPs each implies (an analytic count of
the dense products, x3 for forward + backward in training) and that as a fraction of the FLOP/s of a large
dense matmul measured here with the same threads. Machines shared with other jobs give noisy numbers: look at
the matmul FLOP/s line to judge contention, and on a busy machine run with ``OMP_WAIT_POLICY=PASSIVE`` (spinning
OpenMP threads waiting for a descheduled partner make every one of the many small parallel ops slow: we saw
2 threads run 5x slower than 1 under contention without it).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from pathlib import Path

import torch

from kgreason.data import Dataset
from kgreason.reasoning.beam_search import WalkerScorer
from kgreason.reasoning.config import WalkerConfig
from kgreason.reasoning.policy import WalkerPolicy
from kgreason.reasoning.trainer import WalkerTrainingLoop, build_environment


def matmul_flops(seconds: float = 1.5, n: int = 1024) -> float:
    """FLOP/s of an ``n x n`` float32 matmul, best of repeated runs for about ``seconds``."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = float("inf")
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


def step_macs(
    rows: int, parents: int, cfg: WalkerConfig, E: int, NR: int, A: int, first: bool, folded: bool
) -> float:
    """Multiply-accumulates of one policy step on ``rows`` walkers extending ``parents`` prefixes (``folded``:
    ``W2`` folded into the score tables, see ``WalkerPolicy.scores``)."""
    d, H, L = cfg.embedding_dim, cfg.history_dim, cfg.history_layers
    macs = 0.0
    # LSTM: layer-0 input projections on the tables (relation, entity), recurrent terms per parent,
    # layers >= 1 input projection per walker
    macs += (NR + min(E, rows)) * d * 4 * H
    macs += 0 if first else parents * H * 4 * H * L
    macs += rows * H * 4 * H * (L - 1)
    # policy MLP: W1 (entity and relation parts on the tables, history per walker)
    macs += (NR + min(E, rows)) * d * 2 * d + rows * H * 2 * d
    dense = E <= 8 * A
    if dense and folded:  # W2 folded into the tables: one [rows, 2d] x [2d, NR + E] product
        macs += (NR + E) * d * 2 * d + rows * 2 * d * (NR + E)
    else:  # W2, then x_r @ R^T and x_e @ E^T (dense) or the gathered batched product
        macs += rows * (2 * d) ** 2 + rows * d * NR + (rows * d * E if dense else rows * A * d)
    return macs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="umls", help="folder name under $KGREASON_DATA_DIR, or a path")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--rollouts", type=int, default=20)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--dim", type=int, default=200)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--bandwidth", type=int, default=400)
    ap.add_argument("--beam", type=int, default=128)
    ap.add_argument("--decode-batch", type=int, default=32)
    ap.add_argument("--train-batches", type=int, default=12, help="training batches timed (after 2 warm-up)")
    ap.add_argument("--decode-queries", type=int, default=652)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--embedding-dropout", type=float, default=0.1)
    ap.add_argument("--ff-dropout", type=float, default=0.0)
    ap.add_argument("--action-dropout", type=float, default=0.95)
    ap.add_argument("--embedding-dropout-mode", choices=["table", "per_use"], default="table")
    ap.add_argument("--compare-dropout-modes", action="store_true",
                    help="time training in both embedding-dropout modes in this run and print per_use/table")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    data_dir = Path(os.environ.get("KGREASON_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data"))
    path = Path(args.dataset) if Path(args.dataset).is_dir() else data_dir / args.dataset
    ds = Dataset.from_directory(path)
    device = torch.device(args.device)
    cfg = WalkerConfig(
        dataset=ds.name, num_steps=args.steps, num_rollouts=args.rollouts, max_actions=args.bandwidth,
        embedding_dim=args.dim, history_dim=args.dim, history_layers=args.layers,
        embedding_dropout=args.embedding_dropout, ff_dropout=args.ff_dropout, action_dropout=args.action_dropout,
        embedding_dropout_mode=args.embedding_dropout_mode, entropy_weight=0.05, reward_shaping=False,
        batch_size=args.batch_size, beam_size=args.beam, eval_batch_size=args.decode_batch, device=str(device),
        seed=0,
    )
    env = build_environment(ds, cfg, device)
    E, NR, A = ds.num_entities, 2 * ds.num_relations + 2, env.graph.num_actions
    print(f"dataset {ds.name}: E={E} R={ds.num_relations} actions/entity A={A}; threads={torch.get_num_threads()}"
          f" device={device}")
    peak = matmul_flops()
    print(f"dense matmul (1024^3): {peak / 1e9:.1f} GFLOP/s")

    # ---- training: WalkerTrainingLoop epochs over a fixed set of queries
    n_train = args.train_batches * args.batch_size
    B, N = args.batch_size, args.rollouts
    W = B * N
    modes = ["table", "per_use"] if args.compare_dropout_modes else [args.embedding_dropout_mode]
    qps: dict[str, float] = {}
    policy = None
    for mode in modes:
        mode_cfg = dataclasses.replace(cfg, embedding_dropout_mode=mode)
        torch.manual_seed(0)
        policy = WalkerPolicy(ds.num_entities, ds.num_relations, embedding_dim=args.dim, history_dim=args.dim,
                              history_layers=args.layers, embedding_dropout=args.embedding_dropout,
                              ff_dropout=args.ff_dropout, embedding_dropout_mode=mode)
        warm = WalkerTrainingLoop(policy, env, ds.train[: 2 * args.batch_size], mode_cfg, device=device)
        warm.train(1)
        loop = WalkerTrainingLoop(policy, env, ds.train[:n_train], mode_cfg, device=device)
        t = time.perf_counter()
        loop.train(1)
        if device.type == "cuda":
            torch.cuda.synchronize()
        train_s = time.perf_counter() - t
        qps[mode] = n_train / train_s
        fold_train = cfg.ff_dropout == 0.0
        macs = step_macs(B, B, cfg, E, NR, A, first=True, folded=fold_train) + sum(
            step_macs(W, B if t == 1 else W, cfg, E, NR, A, first=False, folded=fold_train)
            for t in range(1, args.steps)
        )
        train_flops = 3 * 2 * macs * (n_train / B) / train_s
        print(f"train ({mode:7s}): {qps[mode]:8.1f} queries/s  ({train_s:.2f} s for {n_train} queries x {N} rollouts)"
              f"  ~{train_flops / 1e9:.1f} GFLOP/s = {train_flops / peak:.0%} of matmul peak")
    if len(qps) == 2:
        print(f"training throughput per_use / table: {qps['per_use'] / qps['table']:.2f}")
    assert policy is not None

    # ---- decoding: beam search over validation queries through the Scorer adapter
    scorer = WalkerScorer(policy.eval(), env, args.beam, batch_size=args.decode_batch)
    queries = ds.valid[: args.decode_queries].to(device)
    scorer.score_t(queries[: args.decode_batch, :2])
    t = time.perf_counter()
    scores = scorer.score_t(queries[:, :2])
    if device.type == "cuda":
        torch.cuda.synchronize()
    dec_s = time.perf_counter() - t
    dec_qps = len(queries) / dec_s
    reached = torch.isfinite(scores).sum(1).float().mean().item()
    beams = min(args.beam, A)
    dmacs = step_macs(args.decode_batch, args.decode_batch, cfg, E, NR, A, first=True, folded=True)
    for _ in range(1, args.steps):
        rows = args.decode_batch * beams
        dmacs += step_macs(rows, rows, cfg, E, NR, A, first=False, folded=True)
    dec_flops = 2 * dmacs * (len(queries) / args.decode_batch) / dec_s
    print(f"decode: {dec_qps:8.1f} queries/s  ({dec_s:.2f} s for {len(queries)} queries, beam {args.beam};"
          f" {reached:.0f} entities reached per query)  ~{dec_flops / 1e9:.1f} GFLOP/s (upper bound: full beams)"
          f" = {dec_flops / peak:.0%} of matmul peak")
    print("reference (MultiHopKG, same setting, 2 threads): train 29 queries/s, decode 26 queries/s")


if __name__ == "__main__":
    main()
