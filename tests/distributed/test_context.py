"""The distributed context in one process: no process group, every helper a no-op, clear launch errors."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist

from kgreason.distributed import (
    DistributedContext,
    DistributedError,
    all_gather_objects,
    all_reduce,
    barrier,
    broadcast_object,
    choose_backend,
    get_context,
    init_distributed,
    is_communication_error,
    is_main_process,
)
from kgreason.training.callbacks import MultiTrainingCallback, TrackerCallback, TrainingCallback

LAUNCH_VARS = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "KGREASON_DIST_BACKEND")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in LAUNCH_VARS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_outside_torchrun_is_rank_0_of_1(clean_env: pytest.MonkeyPatch) -> None:
    ctx = init_distributed()
    assert ctx == DistributedContext() == get_context()
    assert ctx.is_main and not ctx.is_distributed and is_main_process()
    assert not dist.is_initialized()
    clean_env.setenv("WORLD_SIZE", "1")  # torchrun --nproc_per_node=1: nothing to join either
    assert init_distributed() == DistributedContext() and not dist.is_initialized()


def test_helpers_are_no_ops_in_one_process() -> None:
    barrier()
    assert torch.equal(all_reduce([1.5, 2.0]), torch.tensor([1.5, 2.0], dtype=torch.float64))
    assert all_reduce(torch.ones(2), op="max").tolist() == [1.0, 1.0]
    assert broadcast_object({"a": 1}) == {"a": 1}
    assert all_gather_objects(3) == [3]
    with pytest.raises(ValueError, match="op must be"):
        all_reduce(1.0, op="mean")  # type: ignore[arg-type]


def test_world_size_without_launcher_variables_is_a_clear_error(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("WORLD_SIZE", "2")
    with pytest.raises(DistributedError, match="torchrun"):
        init_distributed(device="cpu")
    clean_env.setenv("WORLD_SIZE", "two")
    with pytest.raises(DistributedError, match="not an integer"):
        init_distributed(device="cpu")
    assert not dist.is_initialized()


def test_backend_is_chosen_by_device(clean_env: pytest.MonkeyPatch) -> None:
    assert choose_backend("cpu") == "gloo"
    assert choose_backend("cuda") == ("cpu:gloo,cuda:nccl" if dist.is_nccl_available() else "gloo")
    clean_env.setenv("KGREASON_DIST_BACKEND", "mpi")
    assert choose_backend("cpu") == "mpi"


def test_device_per_local_rank() -> None:
    ctx = DistributedContext(rank=3, world_size=4, local_rank=1)
    assert ctx.resolve_device("cuda") == torch.device("cuda", 1)
    assert ctx.resolve_device("cuda:0") == torch.device("cuda", 0)
    assert ctx.resolve_device("cpu") == torch.device("cpu")
    expected = torch.device("cuda", 1) if torch.cuda.is_available() else torch.device("cpu")
    assert ctx.resolve_device(None) == expected == ctx.resolve_device("auto")
    assert not ctx.is_main and ctx.is_distributed


def test_communication_errors_are_told_apart() -> None:
    assert is_communication_error(RuntimeError("[pair.cc:553] Connection closed by peer [127.0.0.1]:1"))
    assert is_communication_error(RuntimeError("Wait timeout: operation timed out after 30000ms"))
    assert is_communication_error(dist.DistBackendError("NCCL error"))
    assert not is_communication_error(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))
    assert not is_communication_error(ValueError("Connection closed by peer"))


def test_main_process_only_callbacks_are_skipped_on_other_ranks(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    class Everywhere(TrainingCallback):
        def post_epoch(self, epoch: int, epoch_loss: float, **kwargs: object) -> None:
            calls.append("everywhere")

    class MainOnly(Everywhere):
        main_process_only = True

        def post_epoch(self, epoch: int, epoch_loss: float, **kwargs: object) -> None:
            calls.append("main")

    callbacks = MultiTrainingCallback([Everywhere(), MainOnly()])
    callbacks.post_epoch(epoch=1, epoch_loss=0.0)
    assert calls == ["everywhere", "main"]
    monkeypatch.setattr("kgreason.training.callbacks.is_main_process", lambda: False)
    calls.clear()
    callbacks.post_epoch(epoch=1, epoch_loss=0.0)
    assert calls == ["everywhere"]
    assert TrackerCallback.main_process_only and not TrainingCallback.main_process_only
