"""Checkpoints: exact resumption (also after SIGKILL), config checks, file errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from kgreason.training.checkpoint import CheckpointError, load_checkpoint
from kgreason.training.loop import CheckpointMismatchError

# Shared by this process and the subprocess that gets killed: builds the same run from scratch.
BUILD = r'''
import time
import torch
from kgreason.models import MODELS
from kgreason.training.callbacks import EarlyStoppingCallback, TrainingCallback
from kgreason.training.slcwa import SLCWATrainingLoop
from kgreason.training.utils import set_seed


def toy_triples():
    e = torch.arange(24)
    return torch.cat([torch.stack([e, torch.full_like(e, r), (e + s) % 24], 1) for r, s in enumerate((1, 2, 12))])


class BlockAt(TrainingCallback):
    """Hangs at the start of an epoch (so the process can be killed mid-training)."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_start(self, epoch, **kwargs):
        if epoch == self.epoch:
            time.sleep(120)


def build(config=None, block_at=None):
    set_seed(0)
    # TuckER: dropout (global torch RNG) and batch norm (running statistics) must survive a restart too
    model = MODELS.make("tucker", num_entities=24, num_relations=3, embedding_dim=8, relation_dim=4,
                        inverse_relations=False)
    callbacks = [EarlyStoppingCallback("loss", patience=50)]
    if block_at is not None:
        callbacks.append(BlockAt(block_at))
    return SLCWATrainingLoop(
        model, toy_triples(), negative_sampler="bernoulli", num_negs_per_pos=4, filtered=True, loss="bce",
        lr=0.01, batch_size=16, lr_scheduler="StepLR", lr_scheduler_kwargs={"step_size": 2, "gamma": 0.7},
        seed=123, device="cpu", callbacks=callbacks,
        config=config if config is not None else {"model": "tucker", "lr": 0.01, "epochs": 8},
    )
'''
CHILD = (
    BUILD
    + r"""
import sys
torch.set_num_threads(1)
build(block_at=int(sys.argv[2])).train(8, checkpoint_dir=sys.argv[1], checkpoint_every=1)
"""
)

namespace: dict = {}
exec(BUILD, namespace)
build = namespace["build"]


def weights(loop) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in loop.model.state_dict().items()}


def assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_resume_in_process_equals_uninterrupted(tmp_path: Path) -> None:
    full = build()
    full_losses = full.train(8)
    first = build()
    first.train(3, checkpoint_dir=tmp_path)
    torch.manual_seed(999)  # disturb every global RNG the resumed run could wrongly depend on
    resumed = build()
    losses = resumed.train(8, checkpoint_dir=tmp_path)
    assert losses == full_losses
    assert_same(weights(resumed), weights(full))
    assert resumed.learning_rate == full.learning_rate


def test_sigkill_then_resume_reaches_the_same_weights(tmp_path: Path) -> None:
    full = build()
    full.train(8)
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    ckpt_dir = tmp_path / "ckpt"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, str(script), str(ckpt_dir), "5"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.time() + 60
        epoch = 0
        while time.time() < deadline and proc.poll() is None:
            path = ckpt_dir / "checkpoint.pt"
            if path.exists():
                epoch = load_checkpoint(path)["epoch"]
                if epoch >= 4:
                    break
            time.sleep(0.1)
        assert proc.poll() is None, proc.stderr.read().decode()  # still running (blocked in epoch 5)
        assert epoch == 4
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not [p for p in ckpt_dir.iterdir() if p.name != "checkpoint.pt"]  # no temporary files left behind
    resumed = build()
    resumed.train(8, checkpoint_dir=ckpt_dir)
    assert resumed.losses == full.losses
    assert_same(weights(resumed), weights(full))


def test_resume_with_changed_config_lists_the_differences(tmp_path: Path) -> None:
    build().train(2, checkpoint_dir=tmp_path)
    changed = build(config={"model": "tucker", "lr": 0.05, "epochs": 8, "batch_size": 32})
    with pytest.raises(CheckpointMismatchError) as info:
        changed.train(4, checkpoint_dir=tmp_path)
    msg = str(info.value)
    assert "lr: 0.01 -> 0.05" in msg and "batch_size: '<missing>' -> 32" in msg and "epochs" not in msg
    assert len(info.value.differences) == 2
    # more epochs is not a difference that matters
    more = build(config={"model": "tucker", "lr": 0.01, "epochs": 20})
    more.train(3, checkpoint_dir=tmp_path)
    assert more.epoch == 3
    # resume=False starts over
    fresh = build(config={"model": "tucker", "lr": 0.05})
    fresh.train(1, checkpoint_dir=tmp_path, resume=False)
    assert load_checkpoint(tmp_path / "checkpoint.pt")["config"] == {"model": "tucker", "lr": 0.05}


def test_checkpoint_contents_and_bad_files(tmp_path: Path) -> None:
    loop = build()
    loop.train(2, checkpoint_dir=tmp_path, checkpoint_every=5)  # the last epoch is always saved
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["epoch"] == 2
    assert {"model", "optimizer", "lr_scheduler", "rng", "history", "callbacks", "config"} <= set(state)
    assert {"python", "numpy", "torch", "generator"} <= set(state["rng"])
    assert "0:EarlyStoppingCallback" in state["callbacks"]
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="bad.pt"):
        load_checkpoint(bad)
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt")
