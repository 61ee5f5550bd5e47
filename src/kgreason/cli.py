"""The command line. This is the only module that reads command-line arguments.

Every training command shares one set of options (``--dataset``, ``--output-dir``, ``--config``, ``--set``,
``--epochs``, ``--batch-size``, ``--seed``, ``--device``); named flags override ``--set KEY=VALUE`` pairs, which
override the ``--config`` file, which overrides the component's defaults.
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from kgreason.registry import UnknownNameError


def _fail(message: str) -> None:
    raise click.ClickException(message)


def training_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The options every ``kgreason train ...`` command shares."""
    options = [
        click.option(
            "--dataset",
            "dataset",
            required=False,
            help="Dataset name (see `kgreason datasets list`) or folder.",
        ),
        click.option(
            "--output-dir",
            "output_dir",
            type=click.Path(file_okay=False, path_type=Path),
            required=True,
            help="Run directory (config, vocabularies, checkpoints, metrics).",
        ),
        click.option(
            "--config",
            "config_file",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="JSON config file; command-line flags override it.",
        ),
        click.option(
            "--set",
            "set_values",
            multiple=True,
            metavar="KEY=VALUE",
            help='Set any config field (repeatable): VALUE is JSON (0.2, false, null, ["tail"], {...}) or a '
            "plain string; KEY may be dotted into a dict field, e.g. model_kwargs.embedding_dropout=0.2. "
            "Overrides --config; named flags override it.",
        ),
        click.option("--epochs", type=int, help="Number of training epochs."),
        click.option("--batch-size", "batch_size", type=int, help="Training batch size."),
        click.option("--seed", type=int, help="Random seed (runs are deterministic on CPU)."),
        click.option(
            "--device",
            type=click.Choice(["cpu", "cuda", "auto"]),
            help="Device (default: cuda if available).",
        ),
        click.option(
            "--data-dir",
            "data_dir",
            type=click.Path(file_okay=False, path_type=Path),
            help="Folder of datasets (default: $KGREASON_DATA_DIR, then the user cache).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def parse_set_value(text: str) -> Any:
    """A ``--set`` value: JSON when it parses (numbers, ``true``, ``null``, lists, objects), else the string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def collect_overrides(
    config_file: Path | None,
    set_values: tuple[str, ...] = (),
    base: dict[str, Any] | None = None,
    **flags: Any,
) -> dict[str, Any]:
    """Merge ``base`` (e.g. a preset), a JSON config file, the ``--set KEY=VALUE`` pairs, then the flags that
    were given (``None`` = not given), each over the one before. The config file and the flags replace whole
    fields; a dotted ``--set`` key changes one entry of a dict field and keeps the others."""
    from kgreason.config import set_dotted

    merged: dict[str, Any] = copy.deepcopy(base) if base else {}
    if config_file is not None:
        try:
            loaded = json.loads(config_file.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            _fail(f"{config_file}, line {exc.lineno}: invalid JSON ({exc.msg})")
        if not isinstance(loaded, dict):
            _fail(f"{config_file}: a config file must hold a JSON object")
        merged.update(loaded)
    for item in set_values:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            _fail(f"--set {item!r}: expected KEY=VALUE, e.g. --set lr=0.001")
        try:
            set_dotted(merged, key.strip(), parse_set_value(text))
        except ValueError as exc:
            _fail(f"--set {item!r}: {exc}")
    merged.update({k: v for k, v in flags.items() if v is not None})
    return merged


def _is_main_process() -> bool:
    """Rank 0 under torchrun (or a single process): the one that prints summaries."""
    from kgreason.distributed import is_main_process

    return is_main_process()


def friendly_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn library errors (bad files, unknown names, bad values) into one clear CLI error line."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (UnknownNameError, KeyError) as exc:
            _fail(str(exc).strip("'\""))
        except (ValueError, FileNotFoundError, OSError) as exc:
            _fail(str(exc))

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="kgreason")
def cli() -> None:
    """kgreason: reason over knowledge graphs (KG embeddings, RL path reasoning, text + graph)."""
    from kgreason.runtime import tune_cpu_allocator

    tune_cpu_allocator()  # fewer page faults per training step (see kgreason.runtime); KGREASON_NO_MALLOC_TUNING=1 opts out


# ---- datasets ---------------------------------------------------------------------------------------------


@cli.group()
def datasets() -> None:
    """List, describe and download datasets."""


@datasets.command("list")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path))
@friendly_errors
def datasets_list(data_dir: Path | None) -> None:
    """List the datasets that can be loaded by name."""
    from kgreason.data.registry import list_datasets

    entries = list_datasets(data_dir=data_dir)
    width = max((len(e.name) for e in entries), default=4)
    for e in entries:
        click.echo(f"{e.name:<{width}}  {e.source:<12}  {e.path or ''}")


@datasets.command("info")
@click.argument("name")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path))
@friendly_errors
def datasets_info(name: str, data_dir: Path | None) -> None:
    """Print statistics of a dataset (entities, relations, degrees, to-many/to-one relations)."""
    from kgreason.data.registry import load_dataset
    from kgreason.data.statistics import dataset_statistics, format_table

    ds = load_dataset(name, data_dir=data_dir)
    click.echo(format_table(dataset_statistics(ds)))


@datasets.command("download")
@click.argument("name")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Download again even if present.")
@friendly_errors
def datasets_download(name: str, cache_dir: Path | None, force: bool) -> None:
    """Download a public benchmark into the user cache (sha256-verified, resumable)."""
    from kgreason.data.download import download_dataset

    path = download_dataset(name, cache_dir=cache_dir, force=force)
    click.echo(f"{name}: {path}")


# ---- training ---------------------------------------------------------------------------------------------


@cli.group()
def train() -> None:
    """Train a model (KG embedding, RL walker)."""


@train.command("kge")
@training_options
@click.option("--model", help="Model name: transe, distmult, complex, rotate, conve, tucker.")
@click.option(
    "--loop",
    type=click.Choice(["slcwa", "lcwa", "symmetric-lcwa"]),
    help="Training loop (default: the model's).",
)
@click.option("--target", type=click.Choice(["head", "relation", "tail"]), help="LCWA target.")
@click.option("--loss", help="Loss: softplus, bce, margin_ranking, nssa, cross_entropy.")
@click.option("--lr", type=float, help="Learning rate.")
@click.option("--embedding-dim", "embedding_dim", type=int, help="Embedding dimension.")
@click.option("--num-negatives", "num_negatives", type=int, help="Negatives per positive (sLCWA).")
@click.option("--negative-sampler", "negative_sampler", help="uniform, bernoulli, pseudo_typed.")
@click.option(
    "--early-stopping/--no-early-stopping", "early_stopping", default=None, help="Stop on valid MRR."
)
@click.option("--eval-every", "eval_every", type=int, help="Evaluate on valid every N epochs.")
@click.option(
    "--precision",
    type=click.Choice(["fp32", "bf16"]),
    help="fp32 (default) or bf16 mixed precision (CUDA, or CPUs with AMX / AVX512-BF16).",
)
@click.option("--no-resume", is_flag=True, help="Start afresh even if a checkpoint exists.")
@friendly_errors
def train_kge(
    config_file: Path | None,
    output_dir: Path,
    no_resume: bool,
    embedding_dim: int | None,
    loop: str | None,
    **flags: Any,
) -> None:
    """Train a KG-embedding model; writes config, vocabularies, checkpoints, losses and test metrics."""
    from kgreason.training.pipeline import pipeline

    values = collect_overrides(config_file, **flags)
    if loop is not None:
        values["loop"] = loop.replace("-", "_")
    if embedding_dim is not None:
        values.setdefault("model_kwargs", {})["embedding_dim"] = embedding_dim
    for key in ("data_dir",):
        if isinstance(values.get(key), Path):
            values[key] = str(values[key])
    if not values.get("dataset"):
        _fail("--dataset is required (here or in --config)")
    result = pipeline(output_dir=output_dir, resume=not no_resume, **values)
    if not _is_main_process():
        return
    click.echo(
        f"trained {result.config.model} on {result.config.dataset} ({result.config.loop}) "
        f"in {result.train_seconds:.1f} s; run directory: {output_dir}"
    )
    if result.metrics is not None:
        click.echo(result.metrics.format())


def walker_base(dataset: str, ablation: str | None) -> dict[str, Any]:
    """The config a walker run starts from: the dataset's preset (if any) with the ablation applied."""
    from kgreason.config import config_to_dict
    from kgreason.reasoning.config import WalkerConfig, is_preset

    base = WalkerConfig.preset(dataset) if is_preset(dataset) else WalkerConfig(dataset=dataset)
    if ablation:
        base = base.with_ablation(ablation)
    return config_to_dict(base)


def walker_config(values: dict[str, Any], ablation: str | None) -> Any:
    """A :class:`WalkerConfig`: the dataset's preset (if any), the ablation, then ``values`` on top."""
    from kgreason.config import config_from_dict
    from kgreason.reasoning.config import WalkerConfig

    merged = {**walker_base(str(values.get("dataset", "")), ablation), **values}
    return config_from_dict(WalkerConfig, merged)


@train.command("walker")
@training_options
@click.option(
    "--reward-model",
    "reward_model_dir",
    type=click.Path(exists=True, file_okay=False),
    help="KGE run directory (kgreason train kge) used for reward shaping.",
)
@click.option(
    "--no-reward-shaping", "no_reward_shaping", is_flag=True, help="Binary reward (the -RS ablation)."
)
@click.option("--action-dropout", "action_dropout", type=float, help="Action dropout rate alpha (0 = off).")
@click.option(
    "--ablation", type=click.Choice(["full", "-rs", "-ad", "minerva"]), help="Apply a paper ablation."
)
@click.option("--num-steps", "num_steps", type=int, help="Path length T.")
@click.option("--num-rollouts", "num_rollouts", type=int, help="Rollouts per training query.")
@click.option("--beam-size", "beam_size", type=int, help="Beam size for decoding.")
@click.option("--lr", type=float, help="Learning rate.")
@click.option(
    "--restarts",
    type=click.IntRange(min=1),
    help="Best of K starts: train seeds SEED..SEED+K-1 for --restart-epochs, continue the best on validation.",
)
@click.option("--restart-epochs", "restart_epochs", type=click.IntRange(min=1), help="Epochs of each start.")
@click.option(
    "--rerank-weight",
    "rerank_weight",
    type=click.FloatRange(min=0.0),
    help="Rank answers by path log-prob + W * log sigmoid(reward model score) (0: the paper's ranking).",
)
@click.option(
    "--reward-calibration",
    "reward_calibration",
    type=click.Choice(["none", "platt"]),
    help="Reward sigmoid(f) as is (none, the paper) or Platt-scaled on validation answers (platt).",
)
@click.option("--no-resume", is_flag=True, help="Start afresh even if a checkpoint exists.")
@friendly_errors
def train_walker_cmd(
    config_file: Path | None,
    output_dir: Path,
    no_resume: bool,
    no_reward_shaping: bool,
    ablation: str | None,
    **flags: Any,
) -> None:
    """Train the RL walker (Lin et al. 2018) with reward shaping by a KGE run and action dropout."""
    from kgreason.reasoning import train_walker

    dataset = collect_overrides(config_file, **flags).get("dataset")
    if not dataset:
        _fail("--dataset is required (here or in --config)")
    values = collect_overrides(config_file, base=walker_base(str(dataset), ablation), **flags)
    if no_reward_shaping:
        values["reward_shaping"] = False
    for key in ("data_dir", "reward_model_dir"):
        if values.get(key) is not None:
            values[key] = str(values[key])
    cfg = walker_config(values, ablation)
    if cfg.reward_shaping and not cfg.reward_model_dir:
        _fail("reward shaping needs --reward-model KGE_RUN_DIR (or pass --no-reward-shaping)")
    result = train_walker(cfg.dataset, cfg.reward_model_dir, output_dir, cfg, resume=not no_resume)
    if not _is_main_process():
        return
    click.echo(
        f"trained the walker on {cfg.dataset} in {result.train_seconds:.1f} s; run directory: {output_dir}"
    )
    if result.metrics is not None:
        click.echo(result.metrics.format())


@train.command("cpl")
@training_options
@click.option(
    "--corpus",
    "corpus_path",
    type=click.Path(exists=True, dir_okay=False),
    help="Text corpus (docs/corpus-format.md); datasets with their own corpus (family) need none.",
)
@click.option(
    "--variant",
    type=click.Choice(
        [
            "cpl",
            "minerva",
            "two_step",
            "no_adaptive_sampling",
            "no_replay",
            "frozen_extractor",
            "no_adaptive_sampling_frozen",
        ]
    ),
    default="cpl",
    show_default=True,
    help="CPL, a baseline, or an ablation of Fig. 5.",
)
@click.option("--subsample", type=float, help="Keep this fraction of the training graph (e.g. 0.2).")
@click.option("--no-resume", is_flag=True, help="Start afresh even if a checkpoint exists.")
@friendly_errors
def train_cpl_cmd(
    config_file: Path | None,
    output_dir: Path,
    no_resume: bool,
    variant: str,
    corpus_path: str | None,
    batch_size: int | None,
    **flags: Any,
) -> None:
    """Open KG reasoning: the walker and a PCNN-ATT fact extractor trained together (CPL, Fu et al. 2019)."""
    from kgreason.config import config_from_dict, config_to_dict
    from kgreason.open import CPLConfig, train_cpl

    values = collect_overrides(config_file, **flags)
    if values.get("data_dir") is not None:
        values["data_dir"] = str(values["data_dir"])
    if not values.get("dataset"):
        _fail("--dataset is required (here or in --config)")
    base = config_to_dict(CPLConfig.for_variant(variant))
    reasoner = {**base["reasoner"], **values.pop("reasoner", {})}
    if batch_size is not None:
        reasoner["batch_size"] = batch_size
    cfg = config_from_dict(CPLConfig, {**base, **values, "reasoner": reasoner})
    result = train_cpl(cfg.dataset, output_dir, cfg, corpus_path=corpus_path, resume=not no_resume)
    if not _is_main_process():
        return
    click.echo(
        f"trained {cfg.variant} on {cfg.dataset} in {result.train_seconds:.1f} s; run directory: {output_dir}"
    )
    if result.metrics is not None:
        click.echo(result.metrics.format())


@cli.command("explain")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--head", required=True, help="Query entity label.")
@click.option(
    "--relation", required=True, help="Query relation label (append _inv for the inverse question)."
)
@click.option("--top", "top_k", type=int, default=5, show_default=True, help="Number of answers.")
@click.option("--paths", "paths_per_answer", type=int, default=3, show_default=True, help="Paths per answer.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.option(
    "--rerank-weight",
    "rerank_weight",
    type=click.FloatRange(min=0.0),
    help="Walker runs: order answers by path log-prob + W * log sigmoid(reward model score) "
    "(default: the run's own setting).",
)
@click.option(
    "--include-known",
    is_flag=True,
    help="Decode over every last-step edge, so answers the training graph already states for (HEAD, RELATION) "
    "are ranked too (walker runs decode the last step as in training, without them, unless the run's "
    "mask_known_answers is off; CPL runs decode over every edge unless their reasoner's mask_known_answers is on).",
)
@friendly_errors
def explain_cmd(
    run_dir: Path,
    head: str,
    relation: str,
    top_k: int,
    paths_per_answer: int,
    as_json: bool,
    rerank_weight: float | None,
    include_known: bool,
) -> None:
    """Answer (HEAD, RELATION, ?) with a trained walker and show the reasoning path behind each answer."""
    import dataclasses

    from kgreason.io import read_json

    explain_fn: Callable[..., list[Any]]
    extra: dict[str, Any] = {}
    if "method" in read_json(run_dir / "config.json"):  # a CPL run: text edges and their sentences
        from kgreason.open import explain_cpl

        if rerank_weight is not None:
            _fail("--rerank-weight applies to walker runs (kgreason train walker), not to CPL runs")
        explain_fn = explain_cpl
        extra["include_known"] = include_known
    else:
        from kgreason.reasoning import explain

        explain_fn = explain
        extra["rerank_weight"] = rerank_weight
        extra["include_known"] = include_known

    answers = explain_fn(run_dir, head, relation, top_k=top_k, paths_per_answer=paths_per_answer, **extra)
    if as_json:
        payload = [{**dataclasses.asdict(a), "probability": a.probability} for a in answers]
        click.echo(json.dumps({"head": head, "relation": relation, "answers": payload}, indent=2))
        return
    click.echo(f"({head}, {relation}, ?)")
    for rank, answer in enumerate(answers, start=1):
        click.echo(f"{rank}. {answer}")


@cli.command("demo")
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("runs/demo"),
    show_default=True,
    help="Where the demo's run directories go.",
)
@click.option(
    "--size", default="default", show_default=True, help="Family KG size: tiny, small, default, large."
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", type=click.Choice(["cpu", "cuda", "auto"]))
@friendly_errors
def demo_cmd(output_dir: Path, size: str, seed: int, device: str | None) -> None:
    """The main job on the built-in family KG + corpus: reward model, walker, CPL; metrics and explained answers."""
    from kgreason.demo import DemoConfig, run_demo

    run_demo(output_dir, DemoConfig(size=size, seed=seed, device=device), echo=click.echo)


# ---- evaluation -------------------------------------------------------------------------------------------


def run_kind(run_dir: Path) -> str:
    """``"kge"``, ``"walker"`` or ``"cpl"``: what ``kgreason train ...`` wrote ``run_dir`` (from its config)."""
    from kgreason.config import load_config_dict

    config_path = run_dir / "config.json"
    if not config_path.exists():
        _fail(f"{run_dir}: no config.json -- not a kgreason run directory")
    config = load_config_dict(config_path)
    if "reasoner" in config:
        return "cpl"
    if "num_rollouts" in config:
        return "walker"
    return "kge"


def format_breakdown(
    groups: dict[Any, dict[str, float]], label: Callable[[Any], str], digits: int = 4
) -> str:
    """One row per group: its queries, then MRR and Hits@1/3/10 (realistic ranks) of each side it has."""
    sides = [s for s in ("head", "tail", "both") if any(f"{s}.num_queries" in m for m in groups.values())]
    header = ["group", *(f"{s} {c}" for s in sides for c in ("n", "MRR", "H@1", "H@3", "H@10"))]
    rows = [header]
    for group, metrics in groups.items():
        cells = [label(group)]
        for side in sides:
            if f"{side}.num_queries" not in metrics:
                cells += ["-"] * 5
                continue
            cells.append(str(int(metrics[f"{side}.num_queries"])))
            cells += [
                f"{metrics[f'{side}.realistic.{m}']:.{digits}f}"
                for m in ("mrr", "hits_at_1", "hits_at_3", "hits_at_10")
            ]
        rows.append(cells)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()
        for r in rows
    )


@cli.command("evaluate")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--split", type=click.Choice(["train", "valid", "test"]), default="test", show_default=True)
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--device", type=click.Choice(["cpu", "cuda", "auto"]))
@click.option(
    "--sides",
    type=click.Choice(["head", "tail", "both"]),
    help="Query sides (default: both for KGE runs, the run's eval_sides for walkers, tail for CPL runs).",
)
@click.option(
    "--by",
    type=click.Choice(["relation", "relation_type", "seen"]),
    help="Also print the metrics per relation, per to-many / to-one relation, or per seen / unseen query.",
)
@click.option(
    "--save/--no-save", default=True, show_default=True, help="Write metrics_<split>.json into RUN_DIR."
)
@friendly_errors
def evaluate_cmd(
    run_dir: Path,
    split: str,
    data_dir: Path | None,
    device: str | None,
    sides: str | None,
    by: str | None,
    save: bool,
) -> None:
    """Re-evaluate a saved run -- KG embedding, walker or CPL -- filtered with train+valid+test."""
    chosen = None if sides is None else (("head", "tail") if sides == "both" else (sides,))
    kind = run_kind(run_dir)
    ds = run_dataset(run_dir, kind, data_dir)
    if kind == "kge":
        from kgreason.training.pipeline import evaluate_run

        result = evaluate_run(
            run_dir, split=split, dataset=ds, device=device, sides=chosen or ("head", "tail")
        )
    elif kind == "walker":
        from kgreason.reasoning import evaluate_walker_run

        result = evaluate_walker_run(run_dir, split=split, dataset=ds, device=device, sides=chosen)
    else:
        from kgreason.open import evaluate_cpl_run

        if chosen is not None and chosen != ("tail",):
            _fail("CPL runs answer tail queries only: use --sides tail (the default)")
        result = evaluate_cpl_run(run_dir, split=split, dataset=ds, device=device)
    click.echo(result.format())
    if by is not None:
        import torch

        from kgreason.data.vocabulary import Vocabulary
        from kgreason.evaluation.breakdowns import breakdown

        # seen queries: the run's training triples (walker and CPL runs: the saved walk graph, e.g. sub-sampled)
        train = ds.train
        if kind != "kge":
            train = torch.load(run_dir / "graph.pt", map_location="cpu", weights_only=True)["triples"]
        relations = Vocabulary.load(run_dir / "relations.json", kind="relation")
        data = train if by == "seen" else ds.all_triples()
        groups = breakdown(result, data, by=by, num_relations=len(relations))  # type: ignore[arg-type]
        click.echo("")
        click.echo(format_breakdown(groups, relations.label if by == "relation" else str))
    if save:
        result.save(run_dir / f"metrics_{split}.json")


def run_dataset(run_dir: Path, kind: str, data_dir: Path | None) -> Any:
    """The dataset a run was trained on (CPL: before sub-sampling), checked against the run's vocabularies."""
    if kind == "cpl":
        from kgreason.open import cpl_run_dataset

        return cpl_run_dataset(run_dir, data_dir)
    from kgreason.config import load_config_dict
    from kgreason.training.run_dir import resolve_dataset

    config = load_config_dict(run_dir / "config.json")
    ds = resolve_dataset(config["dataset"], str(data_dir) if data_dir else config.get("data_dir"))
    ds.check_vocabularies(run_dir)
    return ds


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="kgreason")


if __name__ == "__main__":
    main()
