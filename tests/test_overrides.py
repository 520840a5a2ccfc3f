"""``key.path=value`` overrides (issue 16 item 1): parsing, deep merging, and ``load_spec`` with them."""

from __future__ import annotations

import pytest
import yaml

from downscalexr.overrides import (
    OverrideError,
    apply_overrides,
    deep_merge,
    looks_like_override,
    parse_override,
    unknown_keys,
)
from experiments.spec import STUDIES_DIR, SpecError, load_spec

SMOKE = yaml.safe_load((STUDIES_DIR / "smoke.yaml").read_text())  # the file's own values, read independently


@pytest.mark.parametrize(
    ("text", "path", "value"),
    [
        ("train.lr=1e-3", ("train", "lr"), 0.001),
        ("train.lr=0.01", ("train", "lr"), 0.01),
        ("data.min_val=5", ("data", "min_val"), 5),
        ("variants=[avgpool, maxpool]", ("variants",), ["avgpool", "maxpool"]),
        ("factors.location_shift=[null, 0.5]", ("factors", "location_shift"), [None, 0.5]),
        ("latency.enabled=false", ("latency", "enabled"), False),
        ("data.path=/data/chest x-ray", ("data", "path"), "/data/chest x-ray"),
        ("model_options={channels: [8, 16]}", ("model_options",), {"channels": [8, 16]}),
        ("description=", ("description",), None),
    ],
)
def test_values_are_read_as_yaml_like_a_study_file(text, path, value):
    assert parse_override(text) == (path, value)


@pytest.mark.parametrize("text", ["train.lr", "=3", "train..lr=1", "1train=2", "train lr=1", "a.b c=1"])
def test_malformed_overrides_are_refused_with_an_example(text):
    with pytest.raises(OverrideError, match="key.path=value"):
        parse_override(text)


def test_a_value_that_is_not_yaml_says_how_to_quote_it():
    with pytest.raises(OverrideError, match="not valid YAML.*--set 'variants="):
        parse_override("variants=[avgpool, maxpool")


def test_only_key_path_words_look_like_overrides():
    assert looks_like_override("train.lr=0.01") and looks_like_override("seeds=[1,2]")
    for word in ("avgpool", "0.5", "./study.yaml", "a b=1", "=1", "path/x=1"):
        assert not looks_like_override(word), word


def test_mappings_merge_key_by_key_and_other_values_replace():
    base = {"train": {"lr": 0.1, "epochs": 2}, "seeds": [0, 1], "data": {"n": 5}}
    merged = apply_overrides(
        base,
        [(("train", "lr"), 0.5), (("seeds",), [7]), (("data",), {"m": 1}), (("new", "key"), 3)],
    )
    assert merged == {
        "train": {"lr": 0.5, "epochs": 2},
        "seeds": [7],
        "data": {"n": 5, "m": 1},
        "new": {"key": 3},
    }
    assert base == {"train": {"lr": 0.1, "epochs": 2}, "seeds": [0, 1], "data": {"n": 5}}  # untouched
    assert deep_merge({"a": {"b": 1}}, {"a": 2}) == {"a": 2}


def test_one_key_given_two_values_is_refused_but_a_repeat_is_not():
    with pytest.raises(OverrideError, match="train.epochs is set twice, to 3 and to 4"):
        apply_overrides({}, [(("train", "epochs"), 3), (("train", "epochs"), 4)])
    assert apply_overrides({}, [(("seeds",), [1]), (("seeds",), [1])]) == {"seeds": [1]}


def test_a_path_through_a_plain_value_is_refused():
    with pytest.raises(OverrideError, match="train.lr is 0.1, not a mapping"):
        apply_overrides({"train": {"lr": 0.1}}, [(("train", "lr", "x"), 1)])


def test_unknown_keys_of_a_plain_mapping_are_named_with_the_valid_ones():
    stored = {"reference": "avgpool", "train": {"lr": 0.1, "epochs": 2}}
    assert unknown_keys(stored, [(("reference",), "x"), (("train", "lr"), 1)]) is None
    message = unknown_keys(stored, [(("train", "lrr"), 1)])
    assert "train: unknown key 'lrr'" in message and "valid keys are epochs, lr" in message


# --- load_spec -------------------------------------------------------------------------------------


def test_load_spec_overrides_deep_merge_instead_of_replacing_the_block():
    spec = load_spec("smoke", train={"lr": 0.01})
    assert spec.train.lr == 0.01
    # the rest of the smoke study's training block stays (it used to fall back to the defaults)
    assert (
        spec.train.epochs == SMOKE["train"]["epochs"]
        and spec.train.batch_size == SMOKE["train"]["batch_size"]
    )
    assert spec.data["n_train"] == SMOKE["data"]["n_train"]


def test_load_spec_takes_key_path_overrides_like_the_command_line():
    spec = load_spec("smoke", "train.lr=1e-3", "data.n_val=30", "variants=[blurpool, aps]", seeds=[4])
    assert spec.train.lr == 0.001 and spec.train.epochs == SMOKE["train"]["epochs"]
    assert spec.data["n_val"] == 30 and spec.data["n_test"] == SMOKE["data"]["n_test"]
    assert spec.variants == ("blurpool", "aps") and spec.seeds == (4,)


def test_an_override_is_checked_with_the_same_message_as_the_file(tmp_path):
    raw = dict(SMOKE, train=dict(SMOKE["train"], lrr=1))
    path = tmp_path / "typo.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(SpecError) as from_file:
        load_spec(path)
    with pytest.raises(SpecError) as from_override:
        load_spec("smoke", "train.lrr=1")
    tail = str(from_file.value).split(": train: ", 1)[1]
    assert tail.startswith("unknown key(s) lrr; valid keys are epochs, batch_size, lr")
    assert str(from_override.value).endswith(": train: " + tail)
    assert "train.lrr=1" in str(from_override.value)  # says the key came from an override


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("fractions=[0.5, 1.5]", "outside (0, 1]"),
        ("seeds=[1, 1]", "seeds repeat"),
        ("train.epochs=two", "expected an integer"),
        ("name=../x", "not a plain name"),
        ("bogus=1", "unknown key(s) bogus; valid keys are name, dataset"),
    ],
)
def test_overrides_meet_every_rule_of_the_study_file(override, expected):
    with pytest.raises(SpecError, match=expected.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        load_spec("smoke", override)


def test_none_keeps_the_studys_value():
    assert load_spec("smoke", seeds=None).seeds == tuple(SMOKE["seeds"])
