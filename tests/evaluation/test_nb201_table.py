import csv
import itertools
import json

import pytest

from evaluation.nb201_table import NB201Table
from run_kit import InputError
from search_spaces.nb201 import NB201Genotype
from supernet.spaces import get_space
from tests.helpers import SHARED_DATA, run_cli

TABLE = SHARED_DATA / "nb201" / "nats_bench.csv"
HEADER = ["CIFAR10TestAccuracy200Epochs", "CIFAR100TestAccuracy200Epochs", "ImageNetTestAccuracy200Epochs",
          "ArchitectureString", "UniqueString"]
ALL_SKIP = "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|"


def _write_table(path, rows):
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows(rows)


def _synthetic_rows():
    nb201 = get_space("nb201")
    for k, ops in enumerate(itertools.product(nb201.ops, repeat=6)):
        yield [k / 1000, k / 2000, k / 3000, str(NB201Genotype(ops)), "x"]


@pytest.fixture(scope="module")
def synthetic_table(tmp_path_factory):
    path = tmp_path_factory.mktemp("nb201") / "table.csv"
    _write_table(path, _synthetic_rows())
    return path


def test_loader_reads_a_complete_table(synthetic_table):
    table = NB201Table.load(synthetic_table)
    assert len(table.rows) == 15_625
    assert table.lookup(NB201Genotype(("none",) * 6)).cifar10 == 0.0
    best, accuracy = table.best("cifar10")
    assert best == NB201Genotype(("avg_pool_3x3",) * 6) and accuracy == pytest.approx(15.624)


def test_loader_rejects_incomplete_duplicated_or_foreign_tables(tmp_path):
    rows = list(_synthetic_rows())
    _write_table(tmp_path / "short.csv", rows[:-1])
    with pytest.raises(InputError, match="holds 15624 architectures"):
        NB201Table.load(tmp_path / "short.csv")
    _write_table(tmp_path / "dup.csv", rows[:-1] + [rows[0]])
    with pytest.raises(InputError, match="appears twice"):
        NB201Table.load(tmp_path / "dup.csv")
    (tmp_path / "foreign.csv").write_text("arch,acc\n|none~0|,1\n")
    with pytest.raises(InputError, match="missing column"):
        NB201Table.load(tmp_path / "foreign.csv")
    _write_table(tmp_path / "bad.csv", [["x", 1, 2, ALL_SKIP, "u"]])
    with pytest.raises(InputError, match="line 2"):
        NB201Table.load(tmp_path / "bad.csv")
    with pytest.raises(InputError, match="does not exist"):
        NB201Table.load(tmp_path / "missing.csv")


@pytest.mark.skipif(not TABLE.is_file(), reason="shared NAS-Bench-201 table absent")
def test_real_table_matches_published_facts():
    table = NB201Table.load(TABLE)
    skip = table.lookup(get_space("nb201").from_text(ALL_SKIP))
    assert (round(skip.cifar10, 2), round(skip.cifar100, 2), round(skip.imagenet16_120, 2)) == (54.30, 15.61, 16.32)
    assert round(table.best("cifar10")[1], 2) == 94.37
    assert round(table.best("cifar100")[1], 2) == 73.51
    assert round(table.best("imagenet16_120")[1], 2) == 47.31
    assert round(table.lookup(NB201Genotype(("none",) * 6)).cifar10, 2) == 10.00


def test_lookup_command(synthetic_table):
    code, stdout, _ = run_cli("nb201-lookup", ALL_SKIP, "--table", str(synthetic_table))
    assert code == 0 and json.loads(stdout)["arch"] == ALL_SKIP
    code, _, stderr = run_cli("nb201-lookup", "|nor_conv_3x3~0|+|bogus~0|none~1|+|none~0|none~1|none~2|",
                              "--table", str(synthetic_table))
    assert code == 2 and "unknown op 'bogus'" in stderr


