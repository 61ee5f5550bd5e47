"""kgreason vs PyKEEN: epoch time and final MRR of KGE training on the same configuration, in one run.

Usage::

    pip install -c constraints.txt -e '.[benchmark]'        # PyKEEN 1.11.1 (torch==2.13.0 installed first)
    python benchmarks/bench_kge_speed.py --dataset umls --threads 2
    python benchmarks/bench_kge_speed.py --dataset kinship --models rotate --loops slcwa32 --epochs 6
    python benchmarks/bench_kge_speed.py --dataset fb15k-237 --models complex --loops lcwa --epochs 2 --no-eval

For every (model, loop) pair both libraries train the same configuration in this process, one after the
other: dataset (kgreason's vocabulary and splits, handed to PyKEEN as mapped triples), model, embedding
dimension (``--dim``, 128), batch size (512 sLCWA / 256 LCWA), negatives per positive (``slcwa1``,
``slcwa32``), epochs, optimiser (Adam, the kgreason model's default learning rate unless ``--lr``), loss
(sLCWA: self-adversarial NSSA, margin 9, for TransE/RotatE and softplus for the others; LCWA: BCE with
label smoothing 0.1), reciprocal relations where the kgreason model uses them (ComplEx, DistMult, ConvE;
PyKEEN ``create_inverse_triples=True`` and tail-only corruption there), thread count
(``torch.set_num_threads``). PyKEEN's models are built aligned with kgreason's (no regulariser, Xavier
initialisation for ComplEx, no entity constraint for DistMult); each of those choices makes PyKEEN faster or
better, never slower. ``--pykeen-defaults`` keeps PyKEEN's own model defaults instead.

Epoch time: wall time between consecutive ``post_epoch`` callbacks (so everything between two epochs counts,
e.g. PyKEEN's ``gc.collect()``), the median over the epochs after the first (the first is a warm-up).
Final MRR: both libraries' models are evaluated by kgreason's ``RankBasedEvaluator`` on the test split,
filtered with all splits, realistic ranks, tail-only and both sides.

LCWA throughput: the FLOPs of an LCWA epoch's scoring matmuls (forward ``2 Q D E``, backward twice that, with
``Q`` queries per epoch, ``D`` real embedding width, ``E`` entities; ConvE adds its convolution and projection)
divided by the epoch time, as a fraction of the dense float32 matmul FLOP/s measured here at the same thread
count (``bench_matmul.py``). TransE (L1 distances) has no matmul form and gets no figure.

``--precision bf16`` trains kgreason in mixed bfloat16 (``TrainingLoop(precision="bf16")``: autocast matmuls and
convolutions, float32 parameters and losses); PyKEEN stays in float32, so compare the MRR columns too. The LCWA
fraction is still of the float32 matmul peak.

The process first raises glibc's malloc thresholds (:func:`kgreason.runtime.tune_cpu_allocator`, as the
``kgreason`` CLI does), so that neither library page-faults its freed tensors back in at every step; without it
the timings depend on whether a large block happened to be freed earlier in the process (the matmul
measurement does that).

``--train-fraction F`` trains both libraries on the same random fraction ``F`` of the training triples (every
entity and relation keeps at least one triple; :func:`kgreason.data.family.subsample_train`), so an "epoch" is
one pass over that subset: for cells where one library's full epoch takes tens of minutes (PyKEEN's LCWA on
fb15k-237). Both libraries' epoch time grows linearly in the number of training queries there, so the ratio
estimates the full-epoch ratio; report the fraction with the figure. Skip the MRR (``--no-eval``): a model
trained on the subset says nothing about quality.

Initialisation: both libraries call theirs Xavier, but they differ in scale. kgreason applies torch's Xavier to
the whole ``[rows, width]`` table (std ``sqrt(2 / (rows + width))``); PyKEEN's counts the embedding width only
(std about ``sqrt(1 / dim)``). On UMLS and Kinship the two are close; on wn18rr (40,559 entities, dim 128)
PyKEEN's entity embeddings start about 12x larger. ``--same-init`` copies kgreason's initial entity and relation
tables (ConvE: and its convolution, projection and batch-norm layers) into the PyKEEN model (TransE, DistMult,
ComplEx, ConvE), so that the quality columns compare the training, not the initialisations. The copy is made
when PyKEEN's first batch starts: ``TrainingLoop.train`` calls ``model.reset_parameters_()`` first, which would
undo a copy made before it (as it did here until 2026-12-06).

Timings on a machine where other work runs are noisy; the ratios of one run (both libraries measured back to
back) are the figures to compare. Every line states the thread count.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_matmul import measure_matmul_flops  # noqa: E402

from kgreason.data import Dataset  # noqa: E402
from kgreason.data.family import subsample_train  # noqa: E402
from kgreason.evaluation import RankBasedEvaluator  # noqa: E402
from kgreason.models import MODELS  # noqa: E402
from kgreason.runtime import tune_cpu_allocator  # noqa: E402
from kgreason.training import LCWATrainingLoop, SLCWATrainingLoop  # noqa: E402
from kgreason.training.callbacks import TrainingCallback  # noqa: E402

ALL_MODELS = ("transe", "distmult", "complex", "rotate", "conve")
ALL_LOOPS = ("slcwa1", "slcwa32", "lcwa")
RECIPROCAL = {"transe": False, "distmult": True, "complex": True, "rotate": False, "conve": True}
SLCWA_LOSS = {"transe": "nssa", "rotate": "nssa"}  # others: softplus
NSSA_KWARGS = {"margin": 9.0, "adversarial_temperature": 1.0}
LABEL_SMOOTHING = 0.1


@dataclass
class Config:
    dataset: str
    model: str
    loop: str
    dim: int
    batch_size: int
    num_negatives: int | None
    epochs: int
    lr: float
    loss: str
    reciprocal: bool
    threads: int
    seed: int
    precision: str = "fp32"  # kgreason only (PyKEEN trains in float32)
    initializer: str | None = None  # kgreason only: its entity (and relation) initialiser; None: the model's

    @property
    def conve_height(self) -> int:
        """PyKEEN's default ConvE image height for ``dim``: the largest factor of ``dim`` up to ``sqrt(dim)``."""
        root = int(math.isqrt(self.dim))
        return max(f for f in range(1, root + 1) if self.dim % f == 0)


@dataclass
class RunResult:
    library: str
    epoch_seconds: list[float] = field(default_factory=list)
    epoch_cpu_seconds: list[float] = field(default_factory=list)
    tail_mrr: float | None = None
    both_mrr: float | None = None
    both_hits10: float | None = None
    error: str | None = None

    @property
    def median(self) -> float | None:
        timed = self.epoch_seconds[1:] or self.epoch_seconds
        return statistics.median(timed) if timed else None

    @property
    def cpu_median(self) -> float | None:
        timed = self.epoch_cpu_seconds[1:] or self.epoch_cpu_seconds
        return statistics.median(timed) if timed else None


def _default_lr(model: str, loop_kind: str) -> float:
    defaults = dict(MODELS.get(model).default_training)
    defaults.update(defaults.get(loop_kind, {}) or {})
    return float(defaults.get("lr", 1e-3))


# ---- kgreason --------------------------------------------------------------------------------------------------


def _stamp() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


class _EpochTimer(TrainingCallback):
    def __init__(self, stamps: list[tuple[float, float]]) -> None:
        self.stamps = stamps

    def post_epoch(self, **kwargs: Any) -> None:
        self.stamps.append(_stamp())


def make_kgreason_model(cfg: Config, ds: Dataset) -> Any:
    """kgreason's model for ``cfg``, initialised from ``cfg.seed`` (the same weights on every call)."""
    torch.manual_seed(cfg.seed)
    kwargs: dict[str, Any] = {"embedding_dim": cfg.dim, "inverse_relations": cfg.reciprocal}
    if cfg.model == "conve":
        kwargs["embedding_height"] = cfg.conve_height
    if cfg.model in ("complex", "conve"):
        kwargs["embedding_dropout"] = 0.0  # PyKEEN's ComplEx and ConvE have none
    if cfg.initializer is not None:
        kwargs["entity_initializer"] = cfg.initializer
        if cfg.model != "rotate":  # RotatE's relations are phases
            kwargs["relation_initializer"] = cfg.initializer
    return MODELS.make(cfg.model, kwargs, num_entities=ds.num_entities, num_relations=ds.num_relations)


def run_kgreason(cfg: Config, ds: Dataset) -> tuple[RunResult, Any, int]:
    model = make_kgreason_model(cfg, ds)
    stamps: list[tuple[float, float]] = []
    common: dict[str, Any] = {
        "batch_size": cfg.batch_size,
        "optimizer": "adam",
        "lr": cfg.lr,
        "device": "cpu",
        "seed": cfg.seed,
        "callbacks": [_EpochTimer(stamps)],
        "precision": cfg.precision,
    }
    if cfg.loop == "lcwa":
        loop: Any = LCWATrainingLoop(
            model, ds.train, loss="bce", loss_kwargs={"label_smoothing": LABEL_SMOOTHING}, **common
        )
    else:
        loop = SLCWATrainingLoop(
            model,
            ds.train,
            num_negs_per_pos=cfg.num_negatives or 1,
            loss=cfg.loss,
            loss_kwargs=NSSA_KWARGS if cfg.loss == "nssa" else {},
            **common,
        )
    start = _stamp()
    loop.train(cfg.epochs)
    result = RunResult("kgreason", *_durations(start, stamps))
    return result, model, loop.num_examples


# ---- PyKEEN ----------------------------------------------------------------------------------------------------


class _PyKEENScorer:
    """kgreason's Scorer protocol over a trained PyKEEN model (``predict_h`` handles inverse relations)."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def eval(self) -> None:
        self.model.eval()

    def score_t(self, hr: torch.Tensor) -> torch.Tensor:
        return self.model.predict_t(hr)

    def score_h(self, rt: torch.Tensor) -> torch.Tensor:
        return self.model.predict_h(rt)


SAME_INIT_MODELS = ("transe", "distmult", "complex", "conve")


def copy_initial_tables(kg_model: Any, pk_model: Any) -> None:
    """Set PyKEEN's entity and relation tables to kgreason's (``--same-init``); ConvE: also its network.

    Both libraries store these tables as real ``[rows, width]`` matrices in the same layout (ComplEx: interleaved
    real and imaginary parts in both). With reciprocal relations kgreason numbers relation ``r``'s inverse
    ``r + R``, PyKEEN ``r -> 2r`` and its inverse ``2r + 1``: rows are copied to match. ConvE's layers follow the
    same order in both (batch norm, convolution, batch norm; projection, batch norm), so they are copied too and
    both start from identical weights. Call it after PyKEEN's ``reset_parameters_()`` (:func:`run_pykeen` does, on the first batch).
    """
    pk_relations = pk_model.relation_representations[0]._embeddings.weight
    kg_relations = kg_model.relation.weight
    pairs = [(kg_model.entity.weight, pk_model.entity_representations[0]._embeddings.weight)]
    if kg_relations.shape == pk_relations.shape and getattr(kg_model, "inverse_relations", False):
        num = kg_model.num_relations
        pairs += [(kg_relations[:num], pk_relations[0::2]), (kg_relations[num:], pk_relations[1::2])]
    else:
        pairs.append((kg_relations, pk_relations))
    if kg_model.name == "conve":
        inter = pk_model.interaction
        layers = [
            (kg_model.bn_input, inter.hr2d[0]),
            (kg_model.conv, inter.hr2d[2]),
            (kg_model.bn_features, inter.hr2d[3]),
            (kg_model.fc, inter.hr1d[0]),
            (kg_model.bn_hidden, inter.hr1d[2]),
        ]
        pairs.append(
            (kg_model.entity_bias.view(-1, 1), pk_model.entity_representations[1]._embeddings.weight)
        )
        for src_layer, dst_layer in layers:
            pairs += list(zip(src_layer.state_dict().values(), dst_layer.state_dict(keep_vars=True).values()))
    for src, dst in pairs:
        if src.shape != dst.shape:
            raise ValueError(f"--same-init: kgreason tensor {tuple(src.shape)} vs PyKEEN {tuple(dst.shape)}")
    with torch.no_grad():
        for src, dst in pairs:
            dst.copy_(src)


def run_pykeen(
    cfg: Config, ds: Dataset, pykeen_defaults: bool, same_init: bool = False
) -> tuple[RunResult, Any]:
    from pykeen import losses as pk_losses
    from pykeen import models as pk_models
    from pykeen.training import LCWATrainingLoop as PKLCWA
    from pykeen.training import SLCWATrainingLoop as PKSLCWA
    from pykeen.training.callbacks import TrainingCallback as PKCallback
    from pykeen.triples import CoreTriplesFactory

    torch.manual_seed(cfg.seed)
    tf = CoreTriplesFactory(
        mapped_triples=ds.train,
        num_entities=ds.num_entities,
        num_relations=ds.num_relations,
        create_inverse_triples=cfg.reciprocal,
    )
    if cfg.loop == "lcwa" or cfg.loss == "bce":
        loss: Any = pk_losses.BCEWithLogitsLoss()
    elif cfg.loss == "nssa":
        loss = pk_losses.NSSALoss(
            margin=NSSA_KWARGS["margin"], adversarial_temperature=NSSA_KWARGS["adversarial_temperature"]
        )
    else:
        loss = pk_losses.SoftplusLoss()
    aligned: dict[str, dict[str, Any]] = {
        "transe": {"scoring_fct_norm": 1, "relation_initializer": "xavier_uniform"},
        "distmult": {
            "regularizer": None,
            "entity_constrainer": None,
            "relation_initializer": "xavier_uniform",
        },
        "complex": {
            "regularizer": None,
            "entity_initializer": "xavier_uniform",
            "relation_initializer": "xavier_uniform",
        },
        "rotate": {},
        "conve": {},
    }
    classes = {
        "transe": pk_models.TransE,
        "distmult": pk_models.DistMult,
        "complex": pk_models.ComplEx,
        "rotate": pk_models.RotatE,
        "conve": pk_models.ConvE,
    }
    kwargs = {} if pykeen_defaults else aligned[cfg.model]
    model = classes[cfg.model](
        triples_factory=tf, embedding_dim=cfg.dim, loss=loss, random_seed=cfg.seed, **kwargs
    )
    source = make_kgreason_model(cfg, ds) if same_init else None
    stamps: list[tuple[float, float]] = []

    class Timer(PKCallback):
        def pre_batch(self, **kw: Any) -> None:
            # PyKEEN's train() re-initialises the model before its first batch: copy kgreason's weights after that
            nonlocal source
            if source is not None:
                copy_initial_tables(source, model)
                source = None

        def post_epoch(self, epoch: int, epoch_loss: float, **kw: Any) -> None:
            stamps.append(_stamp())

    if cfg.loop == "lcwa":
        loop: Any = PKLCWA(model=model, triples_factory=tf, optimizer="adam", optimizer_kwargs={"lr": cfg.lr})
        train_kwargs: dict[str, Any] = {"label_smoothing": LABEL_SMOOTHING}
    else:
        sampler_kwargs: dict[str, Any] = {"num_negs_per_pos": cfg.num_negatives}
        if cfg.reciprocal:
            sampler_kwargs["corruption_scheme"] = ("tail",)
        loop = PKSLCWA(
            model=model,
            triples_factory=tf,
            optimizer="adam",
            optimizer_kwargs={"lr": cfg.lr},
            negative_sampler="basic",
            negative_sampler_kwargs=sampler_kwargs,
        )
        train_kwargs = {}
    start = _stamp()
    loop.train(
        triples_factory=tf,
        num_epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        use_tqdm=False,
        callbacks=[Timer()],
        pin_memory=False,
        **train_kwargs,
    )
    if source is not None:  # the hook never ran: the comparison would use PyKEEN's own initialisation
        raise RuntimeError(
            "--same-init: PyKEEN started no batch; kgreason's initial weights were never copied"
        )
    return RunResult("pykeen", *_durations(start, stamps)), model


# ---- shared ----------------------------------------------------------------------------------------------------


def _durations(
    start: tuple[float, float], stamps: list[tuple[float, float]]
) -> tuple[list[float], list[float]]:
    """Wall and process CPU seconds of each epoch."""
    pairs = list(zip([start, *stamps[:-1]], stamps))
    return [b[0] - a[0] for a, b in pairs], [b[1] - a[1] for a, b in pairs]


def evaluate(result: RunResult, scorer: Any, ds: Dataset, evaluator: RankBasedEvaluator) -> None:
    if hasattr(scorer, "eval"):
        scorer.eval()
    with torch.no_grad():
        metrics = evaluator.evaluate(scorer, ds.test, sides=("head", "tail")).metrics
    result.tail_mrr = metrics["tail.realistic.mrr"]
    result.both_mrr = metrics["both.realistic.mrr"]
    result.both_hits10 = metrics["both.realistic.hits_at_10"]


def lcwa_matmul_flops(cfg: Config, num_queries: int, num_entities: int) -> float | None:
    """FLOPs of one LCWA epoch's dense products (forward + backward = 3x forward)."""
    if cfg.model == "transe":
        return None
    width = 2 * cfg.dim if cfg.model in ("complex", "rotate") else cfg.dim
    flops = 2.0 * num_queries * width * num_entities
    if cfg.model == "conve":
        h = cfg.conve_height
        w = cfg.dim // h
        out = (2 * h - 2) * (w - 2)
        flops += 2.0 * num_queries * (32 * out * 9 + 32 * out * cfg.dim)
    return 3.0 * flops


def fmt(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="umls")
    parser.add_argument(
        "--data-dir", default=os.environ.get("KGREASON_DATA_DIR", str(REPO.parent / "shared" / "data"))
    )
    parser.add_argument("--models", default=",".join(ALL_MODELS))
    parser.add_argument(
        "--loops", default=",".join(ALL_LOOPS), help="slcwa1, slcwa32, lcwa (comma-separated)"
    )
    parser.add_argument("--epochs", type=int, default=5, help="epochs per run; the first is a warm-up")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--slcwa-batch-size", type=int, default=512)
    parser.add_argument("--lcwa-batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=None, help="default: the kgreason model's default lr")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--repeats", type=int, default=1, help="run each pair this many times (alternating); keep the fastest"
    )
    parser.add_argument("--libraries", default="kgreason,pykeen")
    parser.add_argument("--pykeen-defaults", action="store_true", help="PyKEEN's own model defaults")
    parser.add_argument(
        "--same-init",
        action="store_true",
        help="PyKEEN's entity and relation tables (ConvE: and network) start from kgreason's initial ones "
        "(TransE, DistMult, ComplEx, ConvE); without it each library uses its own Xavier convention",
    )
    parser.add_argument(
        "--initializer",
        default=None,
        help="kgreason's entity and relation initialiser (kgreason.models.initializers.INITIALIZERS, e.g. "
        "xavier_normal_per_row, PyKEEN's convention); default: each model's own",
    )
    parser.add_argument("--no-eval", action="store_true", help="skip the final test MRR")
    parser.add_argument("--no-matmul", action="store_true", help="skip the matmul FLOP/s measurement")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    parser.add_argument(
        "--train-fraction",
        type=float,
        default=1.0,
        help="train both libraries on this random fraction of the training triples (same subset, all entities "
        "kept): an epoch is then one pass over the subset, for cells where a full epoch takes too long",
    )
    parser.add_argument(
        "--precision",
        default="fp32",
        choices=("fp32", "bf16"),
        help="kgreason's training precision (bf16: mixed bfloat16 autocast; PyKEEN always trains in float32)",
    )
    args = parser.parse_args()

    tuned = tune_cpu_allocator()  # as the CLI does; both libraries run in this process with it
    torch.set_num_threads(args.threads)
    libraries = [x.strip() for x in args.libraries.split(",") if x.strip()]
    ds = Dataset.from_directory(Path(args.data_dir) / args.dataset)
    full_train = len(ds.train)
    if args.train_fraction < 1.0:
        ds = subsample_train(ds, args.train_fraction, seed=args.seed)
    evaluator = RankBasedEvaluator(
        ds.all_triples(), num_entities=ds.num_entities, batch_size=256, device="cpu"
    )
    peak = None
    if not args.no_matmul:
        peak = max(measure_matmul_flops(args.threads).values())
        print(f"# dense float32 matmul peak: {peak / 1e9:.1f} GFLOP/s (threads={args.threads})")
    print(
        f"# {args.dataset}: E={ds.num_entities} R={ds.num_relations} train={len(ds.train)}"
        + (
            f" (a random {len(ds.train) / full_train:.1%} of {full_train}: epochs are passes over it)"
            if len(ds.train) < full_train
            else ""
        )
        + f"; dim={args.dim}, "
        f"epochs={args.epochs} (median of epochs 2..), threads={args.threads}, torch {torch.__version__}, "
        f"kgreason precision {args.precision}, malloc thresholds raised: {tuned}, "
        f"PyKEEN starts from kgreason's tables: {args.same_init}, "
        f"kgreason initialiser: {args.initializer or 'each model default'}"
    )
    header = (
        f"{'model':9s} {'loop':8s} {'kgreason s':>10s} {'pykeen s':>9s} {'ratio':>6s} {'cpu ratio':>9s}  "
        f"{'MRR tail kg/pk':>15s} {'MRR both kg/pk':>15s} {'LCWA %peak':>10s}"
    )
    print(header)
    records = []
    for model in [m.strip().lower() for m in args.models.split(",") if m.strip()]:
        for loop in [x.strip().lower() for x in args.loops.split(",") if x.strip()]:
            kind = "lcwa" if loop == "lcwa" else "slcwa"
            cfg = Config(
                dataset=args.dataset,
                model=model,
                loop=loop,
                dim=args.dim,
                batch_size=args.lcwa_batch_size if kind == "lcwa" else args.slcwa_batch_size,
                num_negatives=None if kind == "lcwa" else int(loop[len("slcwa") :] or 1),
                epochs=args.epochs,
                lr=args.lr if args.lr is not None else _default_lr(model, kind),
                loss="bce" if kind == "lcwa" else SLCWA_LOSS.get(model, "softplus"),
                reciprocal=RECIPROCAL[model],
                threads=args.threads,
                seed=args.seed,
                precision=args.precision,
                initializer=args.initializer,
            )
            results: dict[str, RunResult] = {}
            num_queries = None
            for repeat in range(args.repeats):  # libraries alternate; each keeps its fastest repeat
                last = repeat == args.repeats - 1
                for lib in libraries:
                    try:
                        if lib == "kgreason":
                            res, scorer, num_queries = run_kgreason(cfg, ds)
                        else:
                            res, pk_model = run_pykeen(
                                cfg, ds, args.pykeen_defaults, args.same_init and model in SAME_INIT_MODELS
                            )
                            scorer = _PyKEENScorer(pk_model)
                        if last and not args.no_eval:
                            evaluate(res, scorer, ds, evaluator)
                    except Exception as exc:  # report and go on with the other runs
                        res = RunResult(lib, error=f"{type(exc).__name__}: {exc}")
                    best = results.get(lib)
                    if best is not None and (best.median or math.inf) <= (res.median or math.inf):
                        best.tail_mrr, best.both_mrr = res.tail_mrr, res.both_mrr  # keep the fastest timing
                        best.both_hits10 = res.both_hits10
                    else:
                        results[lib] = res
            kg, pk = results.get("kgreason"), results.get("pykeen")
            ratio = kg.median / pk.median if kg and pk and kg.median and pk.median else None
            cpu_ratio = (
                kg.cpu_median / pk.cpu_median if kg and pk and kg.cpu_median and pk.cpu_median else None
            )
            frac = None
            if kind == "lcwa" and kg and kg.median and peak and num_queries:
                flops = lcwa_matmul_flops(cfg, num_queries, ds.num_entities)
                frac = None if flops is None else flops / kg.median / peak
            print(
                f"{model:9s} {loop:8s} {fmt(kg.median if kg else None, '10.4f')} "
                f"{fmt(pk.median if pk else None, '9.4f')} {fmt(ratio, '6.3f')} {fmt(cpu_ratio, '9.3f')}  "
                f"{fmt(kg.tail_mrr if kg else None, '7.3f')}/{fmt(pk.tail_mrr if pk else None, '.3f'):7s} "
                f"{fmt(kg.both_mrr if kg else None, '7.3f')}/{fmt(pk.both_mrr if pk else None, '.3f'):7s} "
                f"{fmt(None if frac is None else 100 * frac, '9.1f')}%  threads={args.threads}",
                flush=True,
            )
            for r in results.values():
                if r.error:
                    print(f"  {r.library} failed: {r.error}", flush=True)
            records.append(
                {
                    "config": asdict(cfg),
                    "ratio": ratio,
                    "cpu_ratio": cpu_ratio,
                    "lcwa_fraction_of_matmul_peak": frac,
                    **{
                        lib: {**asdict(r), "median": r.median, "cpu_median": r.cpu_median}
                        for lib, r in results.items()
                    },
                }
            )
    if args.json:
        Path(args.json).write_text(
            json.dumps({"matmul_peak_flops": peak, "threads": args.threads, "runs": records}, indent=1)
        )


if __name__ == "__main__":
    main()
