import json

import pytest
import torch

from run_kit import InputError
from search_spaces import PUBLISHED, NB201Genotype
from search_spaces.darts import edge_row
from search_spaces.nb201 import EDGES
from supernet.discrete import count_flops_m, count_parameters_m
from supernet.spaces import create_network, genotype_from_json, genotype_to_json, get_space, load_genotype
from tests.helpers import SHARED_DATA

NB201_EXAMPLE = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
darts, nb201 = get_space("darts"), get_space("nb201")


def test_darts_space_shape_and_op_order():
    assert darts.ops == ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5",
                         "dil_conv_3x3", "dil_conv_5x5")
    assert darts.cell_types == ("normal", "reduce") and darts.num_edges == 14
    assert darts.logits_shapes() == {"normal": (14, 8), "reduce": (14, 8)}
    assert nb201.ops == ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
    assert nb201.logits_shapes() == {"cell": (6, 5)}


@pytest.mark.parametrize("name, expected", [("DARTS_V2", 3_349_342), ("DARTS_V1", 3_169_414)])
def test_darts_evaluation_network_parameter_count_matches_reference(name, expected):
    model = create_network(PUBLISHED[name], num_classes=10, in_channels=3, C=36, layers=20, auxiliary=True,
                           image_size=32)
    assert round(count_parameters_m(model) * 1e6) == expected


def test_darts_v2_flops_match_published_figure():
    model = create_network(PUBLISHED["DARTS_V2"], 10, 3, 36, 20, image_size=32)
    assert 520 < count_flops_m(model, 3, 32) < 540  # the DARTS papers quote about 0.53 G multiply-adds


def test_nb201_network_size_range_matches_benchmark():
    """NAS-Bench-201 reports 0.073 M - 1.531 M parameters and 7.78 - 220.11 M FLOPs on CIFAR-10."""
    smallest = create_network(nb201.from_text("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"), 10, 3, 16, 5)
    largest = create_network(nb201.from_text("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+"
                                             "|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"), 10, 3, 16, 5)
    assert count_parameters_m(smallest) == pytest.approx(0.0733, abs=1e-4)
    assert count_parameters_m(largest) == pytest.approx(1.5315, abs=1e-4)
    assert count_flops_m(smallest, 3, 32) == pytest.approx(7.78, abs=0.01)
    assert count_flops_m(largest, 3, 32) == pytest.approx(220.11, abs=0.02)


def test_nb201_string_round_trip_exact():
    genotype = nb201.from_text(NB201_EXAMPLE)
    assert genotype.ops == ("nor_conv_3x3", "nor_conv_3x3", "avg_pool_3x3", "skip_connect", "nor_conv_3x3",
                            "skip_connect")
    assert genotype.edge(2, 1) == "avg_pool_3x3"
    assert nb201.to_text(genotype) == NB201_EXAMPLE
    assert nb201.from_json(json.loads(json.dumps(nb201.to_json(genotype)))) == genotype


def test_nb201_random_genotypes_round_trip():
    generator = torch.Generator().manual_seed(0)
    for _ in range(50):
        genotype = nb201.random_genotype(generator)
        assert nb201.from_text(nb201.to_text(genotype)) == genotype


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_darts_genotype_round_trips(name):
    genotype = PUBLISHED[name]
    text = darts.to_text(genotype)
    assert text.startswith("Genotype(normal=[('") and "normal_concat=[2, 3, 4, 5]" in text
    assert darts.from_text(text) == genotype
    space, again = genotype_from_json(json.loads(json.dumps(genotype_to_json(genotype))))
    assert space is darts and again == genotype


def test_darts_text_accepts_reference_range_concat():
    text = darts.to_text(PUBLISHED["DARTS_V2"]).replace("[2, 3, 4, 5]", "range(2, 6)")
    assert darts.from_text(text) == PUBLISHED["DARTS_V2"]


@pytest.mark.skipif(not (SHARED_DATA / "darts" / "published_genotypes.json").is_file(), reason="shared data absent")
def test_published_genotypes_match_the_shared_reference_file():
    published = json.loads((SHARED_DATA / "darts/published_genotypes.json").read_text())
    rows = {row["name"]: row["genotype"] for row in published}
    aliases = {"DARTS_V1": "DARTS_V1", "DARTS_V2": "DARTS_V2", "PC_DARTS": "PC_DARTS_cifar", "PDARTS": "PDARTS",
               "DrNAS": "DrNAS_cifar10"}
    for ours, theirs in aliases.items():
        assert darts.from_json({"space": "darts", **rows[theirs]}) == PUBLISHED[ours]


def _uniform_darts_logits():
    return {cell_type: torch.zeros(14, 8) for cell_type in darts.cell_types}


def test_darts_derivation_rule_on_hand_made_logits():
    ops = darts.ops
    logits = _uniform_darts_logits()
    normal = logits["normal"]
    # node 0 (inputs 0, 1): both edges kept whatever their strength; the best non-none op each
    normal[edge_row(0, 0), ops.index("sep_conv_3x3")] = 2.0
    normal[edge_row(0, 1), ops.index("max_pool_3x3")] = 1.0
    # node 1: 'none' dominates edge 1->node1, but 'none' never counts; strongest are edge 2 (dil 5x5) then edge 0
    normal[edge_row(1, 1), ops.index("none")] = 9.0
    normal[edge_row(1, 2), ops.index("dil_conv_5x5")] = 3.0
    normal[edge_row(1, 0), ops.index("skip_connect")] = 1.5
    # node 2: inputs 3 and 1 win
    normal[edge_row(2, 3), ops.index("avg_pool_3x3")] = 2.5
    normal[edge_row(2, 1), ops.index("sep_conv_5x5")] = 2.0
    normal[edge_row(2, 0), ops.index("sep_conv_5x5")] = 0.5
    # node 3: inputs 4 and 0
    normal[edge_row(3, 4), ops.index("dil_conv_3x3")] = 4.0
    normal[edge_row(3, 0), ops.index("sep_conv_3x3")] = 3.0
    genotype = darts.derive(logits)
    assert genotype.normal == [("sep_conv_3x3", 0), ("max_pool_3x3", 1), ("dil_conv_5x5", 2), ("skip_connect", 0),
                               ("avg_pool_3x3", 3), ("sep_conv_5x5", 1), ("dil_conv_3x3", 4), ("sep_conv_3x3", 0)]
    assert genotype.normal_concat == [2, 3, 4, 5] == genotype.reduce_concat


def test_darts_derivation_compares_edges_after_softmax():
    """An edge whose best op has a higher raw logit can still be weaker once 'none' takes its share."""
    ops = darts.ops
    logits = _uniform_darts_logits()
    reduce = logits["reduce"]
    reduce[edge_row(1, 0), ops.index("sep_conv_3x3")] = 3.0
    reduce[edge_row(1, 0), ops.index("none")] = 6.0  # softmax weight of sep_conv small
    reduce[edge_row(1, 1), ops.index("avg_pool_3x3")] = 2.0
    reduce[edge_row(1, 2), ops.index("max_pool_3x3")] = 1.0
    genotype = darts.derive(logits)
    assert genotype.reduce[2:4] == [("avg_pool_3x3", 1), ("max_pool_3x3", 2)]


def test_nb201_derivation_is_argmax_per_edge_including_none():
    logits = torch.zeros(6, 5)
    best = ["none", "nor_conv_3x3", "skip_connect", "avg_pool_3x3", "nor_conv_1x1", "nor_conv_3x3"]
    for row, op in enumerate(best):
        logits[row, nb201.ops.index(op)] = 1.0
    genotype = nb201.derive({"cell": logits})
    assert genotype == NB201Genotype(tuple(best))
    assert [t for t, _ in EDGES] == [1, 2, 2, 3, 3, 3]


@pytest.mark.parametrize("text, message", [
    ("|nor_conv_3x3~0|+|nor_conv_3x3~0|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|", "takes 2 inputs"),
    ("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|", "3 '\\+'-separated"),
    ("|conv_9x9~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|", "unknown op"),
    ("|nor_conv_3x3~1|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|", "in order"),
    ("|nor_conv_3x3|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|", "malformed"),
])
def test_nb201_bad_strings_raise_clear_errors(text, message):
    with pytest.raises(InputError, match=message):
        nb201.from_text(text)


def _darts_text(normal):
    return f"Genotype(normal={normal!r}, normal_concat=[2, 3, 4, 5], reduce={PUBLISHED['DARTS_V2'].reduce!r}, " \
           f"reduce_concat=[2, 3, 4, 5])"


@pytest.mark.parametrize("normal, message", [
    ([("sep_conv_3x3", 0)] * 6, "needs 8"),
    ([("sep_conv_3x3", 0)] * 7 + [("sep_conv_3x3", 5)], "node 3 can take inputs 0..4"),
    ([("sep_conv_3x3", 0), ("sep_conv_3x3", 2)] + [("sep_conv_3x3", 0)] * 6, "node 0 can take inputs 0..1"),
    ([("conv_7x1_1x7", 0)] * 8, "unknown op"),
    ([("none", 0)] * 8, "'none' cannot"),
])
def test_darts_bad_genotypes_raise_clear_errors(normal, message):
    with pytest.raises(InputError, match=message):
        darts.from_text(_darts_text(normal))


def test_darts_text_is_parsed_without_eval():
    with pytest.raises(InputError):
        darts.from_text("Genotype(normal=__import__('os').system('true'), normal_concat=[2], reduce=[], "
                        "reduce_concat=[2])")
    with pytest.raises(InputError, match="malformed"):
        darts.from_text("Genotype(normal=[")


def test_load_genotype_accepts_every_user_form(tmp_path):
    assert load_genotype("DARTS_V2") == (darts, PUBLISHED["DARTS_V2"])
    assert load_genotype(NB201_EXAMPLE)[1] == nb201.from_text(NB201_EXAMPLE)
    assert load_genotype(darts.to_text(PUBLISHED["PDARTS"]))[1] == PUBLISHED["PDARTS"]
    (tmp_path / "genotype.json").write_text(darts.dumps(PUBLISHED["DARTS_V1"]))
    assert load_genotype(str(tmp_path))[1] == PUBLISHED["DARTS_V1"]
    assert load_genotype(str(tmp_path / "genotype.json"))[1] == PUBLISHED["DARTS_V1"]
    with pytest.raises(InputError, match="cannot read genotype"):
        load_genotype(str(tmp_path / "missing.json"))
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(InputError, match="malformed JSON"):
        load_genotype(str(tmp_path / "bad.json"))
    with pytest.raises(InputError, match="unknown search space"):
        genotype_from_json({"space": "nasnet"})


def test_random_darts_genotypes_are_valid_and_varied():
    generator = torch.Generator().manual_seed(0)
    genotypes = [darts.random_genotype(generator) for _ in range(20)]
    for genotype in genotypes:
        assert darts.validate(genotype) == genotype
    assert len({darts.to_text(g) for g in genotypes}) == 20


def test_image_size_too_small_is_a_clear_error():
    with pytest.raises(InputError, match="too small"):
        create_network(PUBLISHED["DARTS_V2"], 10, 3, 16, 8, image_size=3)


def test_odd_image_sizes_work_in_the_darts_network():
    model = create_network(PUBLISHED["DARTS_V2"], 10, 1, 8, 5, auxiliary=True, image_size=15)
    model.train()
    out, aux = model(torch.randn(2, 1, 15, 15))
    assert out.shape == aux.shape == (2, 10)
