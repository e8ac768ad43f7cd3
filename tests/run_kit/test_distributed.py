import json
import os
import subprocess
import sys

import torch

from image_sets import BatchStream, ImageData, Preprocess
from tests.helpers import ROOT

NB201_EXAMPLE = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


def torchrun(*args: str, nproc: int = 2) -> subprocess.CompletedProcess:
    """`torchrun --nproc_per_node=N train.py ...` on CPU (gloo)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), CUDA_VISIBLE_DEVICES="")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               str(ROOT / "train.py"), *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)


def test_shards_of_a_batch_partition_the_global_batch():
    data = ImageData(torch.randint(0, 256, (40, 1, 4, 4), dtype=torch.uint8), torch.arange(40) % 4, list("abcd"))
    pre = Preprocess(torch.zeros(1), torch.ones(1))
    whole = BatchStream(data, torch.arange(40), 8, seed=1, preprocess=pre, augment=False)
    shards = [BatchStream(data, torch.arange(40), 8, seed=1, preprocess=pre, augment=False, shard=(r, 2))
              for r in range(2)]
    for _ in range(7):
        x, _ = next(whole)
        parts = [next(s)[0] for s in shards]
        assert torch.equal(torch.cat([parts[0][:, None], parts[1][:, None]], 1).flatten(0, 1), x)
    assert whole.batches_per_pass == shards[0].batches_per_pass == 5


def test_data_parallel_second_order_search_keeps_logits_identical_on_every_rank(tmp_path):
    out = tmp_path / "run"
    result = torchrun("search", "--space", "nb201", "--layers", "1", "--init-channels", "4", "--epochs", "2",
                      "--order", "2", "--no-progress", "--out", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    log = (out / "log.txt").read_text()
    assert log.count("architecture logits and supernet weights identical on all 2 processes") == 2
    assert "2 data-parallel" in log
    summaries = [line for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(summaries) == 1  # rank 0 alone reports
    assert json.loads(summaries[0])["genotype"] == json.loads((out / "genotype.json").read_text())


def test_data_parallel_retraining_matches_a_single_process_within_noise(tmp_path):
    args = ("retrain", "--genotype", NB201_EXAMPLE, "--layers", "1", "--init-channels", "8", "--epochs", "4",
            "--batch-size", "96", "--no-progress")
    single = subprocess.run([sys.executable, str(ROOT / "train.py"), *args, "--out", str(tmp_path / "one")],
                            capture_output=True, text=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert single.returncode == 0, single.stderr[-2000:]
    parallel = torchrun(*args, "--out", str(tmp_path / "two"))
    assert parallel.returncode == 0, parallel.stderr[-2000:]
    one = json.loads((tmp_path / "one" / "result.json").read_text())["test_acc"]
    two = json.loads((tmp_path / "two" / "result.json").read_text())["test_acc"]
    assert one > 0.8 and two > 0.8 and abs(one - two) < 0.1


def test_torchrun_needs_an_explicit_out(tmp_path):
    result = torchrun("search", "--epochs", "1", "--no-progress")
    assert result.returncode != 0 and "same --out" in result.stderr


def _average_gradients_worker(rank: int, init_file: str, out_dir: str) -> None:
    import torch.distributed as dist

    from run_kit.distributed import DistContext

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    a, b = torch.nn.Parameter(torch.zeros(3)), torch.nn.Parameter(torch.zeros(2))
    (a if rank == 0 else b).grad = torch.full((3,) if rank == 0 else (2,), 4.0 * (rank + 1))
    DistContext(rank, 2).average_gradients([a, b])
    torch.save({"a": a.grad, "b": b.grad}, f"{out_dir}/rank{rank}.pt")
    dist.destroy_process_group()


def test_every_gradient_is_averaged_even_where_a_rank_has_none(tmp_path):
    """Rank 0 has a gradient for `a` only, rank 1 for `b` only (as when hard sampling ran other ops): both end with
    the mean of (g, 0), not with their own gradient."""
    import torch.multiprocessing as mp

    mp.spawn(_average_gradients_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2)
    for rank in range(2):
        grads = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        assert torch.equal(grads["a"], torch.full((3,), 2.0)) and torch.equal(grads["b"], torch.full((2,), 4.0))


def test_data_parallel_gumbel_search_samples_alike_and_resumes_exactly(tmp_path):
    """GDAS samples one op per edge from Gumbel noise: with the noise from a generator seeded alike on every rank the
    sampled cells agree and the logits stay identical; a stopped and resumed 2-process run ends where an
    uninterrupted one does (each rank's RNG state restored for that rank)."""
    args = ("search", "--space", "nb201", "--relax", "gumbel", "--layers", "1", "--init-channels", "4",
            "--epochs", "2", "--no-progress")
    full = torchrun(*args, "--out", str(tmp_path / "full"))
    assert full.returncode == 0, full.stderr[-2000:]
    assert (tmp_path / "full" / "log.txt").read_text().count("identical on all 2 processes") == 2
    cut = torchrun(*args, "--out", str(tmp_path / "cut"), "--stop-after-epoch", "1")
    assert cut.returncode == 0, cut.stderr[-2000:]
    resumed = torchrun("search", "--out", str(tmp_path / "cut"), "--resume", "--no-progress")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a = torch.load(tmp_path / "full" / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)
    assert len(a["rng"]) == 2 and torch.equal(a["arch"]["logits.cell"], b["arch"]["logits.cell"])
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


def test_a_batch_that_does_not_divide_among_processes_is_refused(tmp_path):
    result = torchrun("search", "--batch-size", "63", "--epochs", "1", "--no-progress", "--out", str(tmp_path / "r"))
    assert result.returncode != 0 and "exitcode  : 2" in result.stderr
    assert result.stderr.count("error: --batch-size 63 does not divide among 2 processes") == 1
    assert not (tmp_path / "r").exists()
