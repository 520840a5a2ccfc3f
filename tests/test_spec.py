"""Study specifications: YAML round trip, rejection of unknown keys, wrong types and bad values."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from downscalexr.train import TrainConfig
from experiments.spec import LatencySpec, SpecError, StudySpec, from_dict, list_studies, load_spec


def test_yaml_round_trip_gives_an_equal_spec(tmp_path):
    spec = load_spec("smoke")
    path = tmp_path / "again.yaml"
    path.write_text(yaml.safe_dump(spec.to_dict(), sort_keys=False))
    again = load_spec(path)
    assert again == spec
    assert again.to_dict() == spec.to_dict()


def test_to_dict_is_plain_yaml_types():
    plain = load_spec("smoke").to_dict()
    assert isinstance(plain["seeds"], list) and isinstance(plain["train"], dict)
    assert yaml.safe_load(yaml.safe_dump(plain)) == plain


def test_spec_is_frozen():
    spec = load_spec("smoke")
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.seeds = (5,)


@pytest.mark.parametrize("name", list_studies())
def test_every_built_in_study_loads(name):
    spec = load_spec(name)
    assert spec.name == name
    assert spec.variants and spec.seeds and spec.fractions
    assert all(0 < f <= 1 for f in spec.fractions)
    assert isinstance(spec.train, TrainConfig) and isinstance(spec.latency, LatencySpec)


def test_built_in_studies_include_the_issue_ones():
    assert {"default", "edges", "smoke"} <= set(list_studies())
    default = load_spec("default")
    assert set(default.variants) == {"avgpool", "maxpool", "strided"}
    assert default.fractions == (0.05, 0.1, 0.25, 0.5, 1.0)


def test_overrides_replace_top_level_keys():
    spec = load_spec("smoke", seeds=[3, 7], fractions=[0.5], variants=["maxpool"])
    assert spec.seeds == (3, 7)
    assert spec.fractions == (0.5,)
    assert spec.variants == ("maxpool",)


def test_unknown_top_level_key_is_named_with_the_valid_ones():
    with pytest.raises(SpecError) as err:
        from_dict(StudySpec, {"name": "x", "sedes": [0, 1]})
    message = str(err.value)
    assert "sedes" in message
    for valid in ("seeds", "variants", "fractions", "train"):
        assert valid in message


def test_unknown_nested_key_is_named_with_the_valid_ones(tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text(yaml.safe_dump({"name": "typo", "train": {"epocs": 3}}))
    with pytest.raises(SpecError) as err:
        load_spec(path)
    message = str(err.value)
    assert "epocs" in message and "epochs" in message and "batch_size" in message


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"train": {"epochs": "five"}}, "epochs"),
        ({"train": {"lr": "fast"}}, "lr"),
        ({"train": {"epochs": True}}, "epochs"),
        ({"seeds": ["a"]}, "seeds"),
        ({"variants": {"avgpool": 1}}, "variants"),
        ({"latency": {"enabled": "yes"}}, "enabled"),
        ({"data": [1, 2]}, "data"),
    ],
)
def test_wrong_type_is_rejected_naming_the_key(raw, key):
    with pytest.raises(SpecError, match=key):
        from_dict(StudySpec, {"name": "x", **raw})


@pytest.mark.parametrize("fraction", [0.0, -0.1, 1.5])
def test_fraction_outside_unit_interval_is_rejected(fraction):
    with pytest.raises(SpecError, match=r"outside \(0, 1\]"):
        from_dict(StudySpec, {"name": "x", "fractions": [0.5, fraction]})


def test_fraction_of_one_is_allowed():
    assert from_dict(StudySpec, {"name": "x", "fractions": [1]}).fractions == (1.0,)


@pytest.mark.parametrize("seeds", [[-1], [0, -3], []])
def test_negative_or_missing_seeds_are_rejected(seeds):
    with pytest.raises(SpecError, match="seed"):
        from_dict(StudySpec, {"name": "x", "seeds": seeds})


def test_duplicate_seeds_are_rejected():
    with pytest.raises(SpecError, match="repeat"):
        from_dict(StudySpec, {"name": "x", "seeds": [0, 1, 1]})


def test_empty_variants_and_unknown_transform_are_rejected():
    with pytest.raises(SpecError, match="variants"):
        from_dict(StudySpec, {"name": "x", "variants": []})
    with pytest.raises(SpecError, match="transforms"):
        from_dict(StudySpec, {"name": "x", "transforms": ["rotate"]})


def test_unknown_study_lists_the_built_in_ones():
    with pytest.raises(SpecError) as err:
        load_spec("no_such_study")
    assert "no_such_study" in str(err.value)
    assert all(name in str(err.value) for name in list_studies())


def test_unreadable_or_non_mapping_file_is_a_spec_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(SpecError, match="cannot read"):
        load_spec(bad)
    listing = tmp_path / "list.yaml"
    listing.write_text("- 1\n- 2\n")
    with pytest.raises(SpecError, match="mapping"):
        load_spec(listing)


def test_name_defaults_to_the_file_stem(tmp_path):
    path = tmp_path / "my_study.yaml"
    path.write_text(yaml.safe_dump({"seeds": [0]}))
    assert load_spec(path).name == "my_study"
