from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def shared_data(*parts: str) -> Path:
    """A file under ../shared/data, or skip the test when it is not there."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not available")
    return path


TINY = ["model.hidden=16", "model.layers=1", "train.batch_size=8", "train.seq_len=16", "train.samples=0",
        "train.eval_every=20", "train.eval_batch_size=4", "train.eval_seq_len=64",
        "train.bf16=off",  # the same float32 arithmetic on every CPU (the preset's "auto" depends on the CPU)
        "model.dropout=0", "train.lr=2e-3"]  # what the tests were calibrated on (grimm-char's own are for 2x256)


@pytest.fixture
def tiny_text(tmp_path) -> Path:
    """A small, very repetitive corpus that a tiny model can learn in seconds."""
    path = tmp_path / "tiny.txt"
    path.write_text("the cat sat on the mat. the dog sat on the log.\n" * 60, encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def tiny_lm_run(tmp_path_factory) -> Path:
    """A tiny character LSTM trained for 30 steps on Grimm (seconds), shared by
    the report, serve and browser tests. Treat it as read-only."""
    import torch

    from rnnlab.config import load_config
    from rnnlab.trainer import train_config

    run_dir = tmp_path_factory.mktemp("tiny-lm") / "grimm-tiny"
    # train.threads=1: tiny matrices, threads only add overhead
    cfg = load_config("grimm-char", None, ["model.hidden=16", "model.layers=1", "train.max_steps=30",
                                           "train.eval_every=15", "train.samples=1", "train.batch_size=8",
                                           "train.threads=1", "train.bf16=off"])
    threads = torch.get_num_threads()
    try:
        train_config(cfg, run_dir, progress=False)
    finally:
        torch.set_num_threads(threads)  # the trainer sets it process-wide
    return run_dir


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a test module: tiny models only pay overhead for
    more (a lot of it on a busy machine), and tests that start processes of
    their own would oversubscribe the cores. Use with
    `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
