"""UltraFeedback binarization: the rule on hand-made rows (means, N/A, ties, <2 rated) and its reproducibility."""

from __future__ import annotations

from collections import Counter

import pytest

from zephyr.data import DataConfig, binarize_row, load_preference_splits
from zephyr.data.io import Where
from zephyr.errors import DataError

HERE = Where("uf.jsonl", 7)


def row(make, instruction, *completions):
    return {"instruction": instruction, "completions": [make.completion(r, s) for r, s in completions]}


def test_chosen_is_highest_mean_with_na_ignored(make):
    counts = Counter()
    # means: a = (5+4+N/A+3)/3 = 4.0, b = (2+2+2+2)/4 = 2.0, c = (N/A+N/A+N/A+1)/1 = 1.0
    pair = binarize_row(row(make, "Q", ("a", ["5", "4", "N/A", "3"]), ("b", ["2"] * 4),
                            ("c", ["N/A", "N/A", "N/A", "1"])), HERE, 42, counts, "mean_rating")
    assert pair["prompt"] == [{"role": "user", "content": "Q"}]
    assert pair["chosen"] == "a" and pair["score_chosen"] == pytest.approx(4.0)
    assert (pair["rejected"], pair["score_rejected"]) in {("b", 2.0), ("c", 1.0)}
    assert counts["binarize_na_ratings"] == 4 and counts["binarize_pairs"] == 1


def test_rejected_is_uniform_over_the_others_and_reproducible(make):
    example = row(make, "Q", ("best", ["5"] * 4), ("x", ["3"] * 4), ("y", ["2"] * 4), ("z", ["1", "2", "3", "4"]))
    picks = Counter(binarize_row(example, HERE, seed, Counter(), "mean_rating")["rejected"] for seed in range(3000))
    assert set(picks) == {"x", "y", "z"}
    assert all(abs(n / 3000 - 1 / 3) < 0.04 for n in picks.values()), picks
    # same seed and same instruction -> same pick, whatever else happened before
    first = [binarize_row(example, HERE, s, Counter(), "mean_rating")["rejected"] for s in range(20)]
    again = [binarize_row(example, HERE, s, Counter(), "mean_rating")["rejected"] for s in range(20)]
    assert first == again


def test_tied_best_picks_chosen_among_tied_and_rejected_strictly_lower(make):
    example = row(make, "tie", ("t1", ["4"] * 4), ("t2", ["5", "3", "4", "4"]), ("low", ["2"] * 4),
                  ("lower", ["1"] * 4))
    counts = Counter()
    results = [binarize_row(example, HERE, seed, counts, "mean_rating") for seed in range(400)]
    assert {r["chosen"] for r in results} == {"t1", "t2"}
    assert {r["rejected"] for r in results} == {"low", "lower"}
    assert all(r["score_chosen"] == 4.0 for r in results)
    assert counts["binarize_best_tied"] == 400 and counts["binarize_pairs"] == 400


def test_all_tied_and_fewer_than_two_rated_are_dropped_and_counted(make):
    counts = Counter()
    all_tied = row(make, "all", ("a", ["3"] * 4), ("b", ["4", "2", "3", "3"]), ("c", ["3", "N/A", "N/A", "N/A"]))
    one_rated = row(make, "one", ("a", ["5"] * 4), ("b", ["N/A"] * 4))
    empty_best = row(make, "empty", ("   ", ["5"] * 4), ("b", ["3"] * 4))
    assert binarize_row(all_tied, HERE, 0, counts, "mean_rating") is None
    assert binarize_row(one_rated, HERE, 0, counts, "mean_rating") is None
    assert binarize_row(empty_best, HERE, 0, counts, "mean_rating") is None  # the empty reply is no candidate: 1 left
    no_annotations = {"instruction": "n", "completions": [{"response": "r"}, {"response": "s"}]}
    assert binarize_row(no_annotations, HERE, 0, counts, "mean_rating") is None
    assert counts == Counter(binarize_rows=4, binarize_dropped_all_tied=1, binarize_dropped_fewer_than_2_rated=3,
                             binarize_na_ratings=3 + 4, binarize_unrated_completions=3, binarize_empty_responses=1,
                             binarize_unannotated_completions=2)


def test_aspect_wrapped_in_a_list_and_numeric_ratings(make):
    example = {"instruction": "w", "completions": [
        {"response": "a", "annotations": {"helpfulness": [{"Rating": 5}], "honesty": {"Rating": 4}}},
        {"response": "b", "annotations": {"helpfulness": [{"Rating": "2"}], "honesty": []}}]}
    pair = binarize_row(example, HERE, 1, Counter(), "mean_rating")
    assert (pair["chosen"], pair["score_chosen"], pair["rejected"], pair["score_rejected"]) == ("a", 4.5, "b", 2.0)


@pytest.mark.parametrize("mutate, field", [
    (lambda r: r["completions"][1]["annotations"]["honesty"].update(Rating="great"),
     "completions[1].annotations.honesty.Rating"),
    (lambda r: r["completions"][0].pop("response"), "completions[0].response"),
    (lambda r: r.update(instruction=3), "instruction"),
    (lambda r: r.update(completions="none"), "completions"),
    (lambda r: r["completions"][0].update(annotations=[1]), "completions[0].annotations"),
])
def test_bad_rows_name_line_and_field(make, mutate, field):
    example = row(make, "Q", ("a", ["5"] * 4), ("b", ["1"] * 4))
    mutate(example)
    with pytest.raises(DataError) as err:
        binarize_row(example, HERE, 0, Counter(), "mean_rating")
    assert err.value.path == "uf.jsonl" and err.value.line == 7 and err.value.field == field
    assert f"uf.jsonl:7: field '{field}'" in str(err.value)


def test_order_independent_and_seed_dependent_through_the_loader(make, tmp_path):
    rows = [row(make, f"prompt {i}", *[(f"r{i}-{k}", [str(5 - k)] * 4) for k in range(4)]) for i in range(60)]
    make.write(tmp_path / "a.jsonl", rows)
    make.write(tmp_path / "b.jsonl", rows[::-1])

    def pairs(name, seed):
        cfg = DataConfig(dataset_mixer={str(tmp_path / name): 1.0}, test_split_size=0, seed=seed,
                         binarize_rule="mean_rating")
        splits = load_preference_splits(cfg)
        assert splits.report[str(tmp_path / name)]["binarize_pairs"] == 60
        return {p["prompt"][0]["content"]: p["rejected"] for p in splits.train}

    assert pairs("a.jsonl", 3) == pairs("b.jsonl", 3)
    assert all(v.startswith(k.replace("prompt ", "r")) for k, v in pairs("a.jsonl", 3).items())
    assert pairs("a.jsonl", 3) != pairs("a.jsonl", 4)
    chosen = {p["chosen"] for p in load_preference_splits(
        DataConfig(dataset_mixer={str(tmp_path / "a.jsonl"): 1.0}, test_split_size=0,
                   binarize_rule="mean_rating")).train}
    assert chosen == {f"r{i}-0" for i in range(60)}


def scored(response, ratings, overall, model="m", principle="helpfulness"):
    aspects = ("instruction_following", "honesty", "truthfulness", "helpfulness")
    return {"model": model, "principle": principle, "response": response, "overall_score": overall,
            "annotations": {a: {"Rating": r, "Rationale": "..."} for a, r in zip(aspects, ratings)}}


# a: best mean (5.0) but overall 6; b: best overall (9) with mean 2.0; c, d: in between
DIFFER = {"instruction": "Which rule?", "completions": [
    scored("a", ["5"] * 4, 6, model="ma"), scored("b", ["2"] * 4, 9, model="mb", principle="honesty"),
    scored("c", ["3"] * 4, 7), scored("d", ["4"] * 4, 2)]}


def test_the_two_rules_choose_differently_on_the_same_row():
    from zephyr.data.binarize import binarized_record

    h4 = binarized_record(DIFFER, HERE, 0, Counter(), "overall_score")
    argilla = binarized_record(DIFFER, HERE, 0, Counter(), "mean_rating")
    assert h4["chosen"][-1] == {"role": "assistant", "content": "b"} and h4["score_chosen"] == 9.0
    assert argilla["chosen"][-1]["content"] == "a" and argilla["score_chosen"] == 5.0
    assert h4["provenance"]["chosen"] == {"completion": 1, "model": "mb", "principle": "honesty"}
    assert h4["provenance"]["rule"] == "overall_score" and argilla["provenance"]["rule"] == "mean_rating"
    # H4: rejected is any of the other three (scores 6, 7, 2), uniformly; Argilla: any strictly lower mean
    picks = Counter(binarized_record(DIFFER, HERE, s, Counter(), "overall_score")["rejected"][-1]["content"]
                    for s in range(1500))
    assert set(picks) == {"a", "c", "d"} and all(abs(n / 1500 - 1 / 3) < 0.05 for n in picks.values()), picks
    lower = {binarized_record(DIFFER, HERE, s, Counter(), "mean_rating")["rejected"][-1]["content"]
             for s in range(200)}
    assert lower == {"b", "c", "d"}


def test_overall_score_ties_as_the_h4_release():
    from zephyr.data.binarize import binarized_record

    # two share the top score: the first in list order is chosen; a rejected of equal score is kept
    row = {"instruction": "ties", "completions": [scored("x", ["1"] * 4, 8), scored("first", ["1"] * 4, 9),
                                                  scored("second", ["5"] * 4, 9)]}
    counts = Counter()
    results = [binarized_record(row, HERE, s, counts, "overall_score") for s in range(300)]
    assert {r["chosen"][-1]["content"] for r in results} == {"first"}
    assert {r["rejected"][-1]["content"] for r in results} == {"x", "second"}
    assert counts["binarize_tied_pairs"] == sum(r["score_rejected"] == 9.0 for r in results) > 0
    # all tied: still a pair under H4's rule, dropped under Argilla's
    flat = {"instruction": "flat", "completions": [scored("p", ["3"] * 4, 5), scored("q", ["3"] * 4, 5)]}
    assert binarized_record(flat, HERE, 0, Counter(), "overall_score")["score_rejected"] == 5.0
    assert binarized_record(flat, HERE, 0, Counter(), "mean_rating") is None


def test_records_keep_the_whole_conversation():
    from zephyr.data.binarize import binarized_record
    from zephyr.data.schemas import pair

    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Which rule?"}]
    record = binarized_record({**DIFFER, "messages": messages}, HERE, 0, Counter(), "overall_score")
    assert record["prompt"] == messages and record["chosen"][:-1] == messages == record["rejected"][:-1]
    normalised = pair(record, HERE)  # what `zephyr dpo` reads
    assert normalised["prompt"] == messages and normalised["chosen"] == "b"


@pytest.mark.parametrize("rule, value, field", [
    ("mean_rating", float("nan"), "completions[2].annotations.instruction_following.Rating"),
    ("mean_rating", "NaN", "completions[2].annotations.instruction_following.Rating"),
    ("mean_rating", 99, "completions[2].annotations.instruction_following.Rating"),
    ("mean_rating", "-5", "completions[2].annotations.instruction_following.Rating"),
    ("overall_score", float("nan"), "completions[2].overall_score"),
    ("overall_score", 11, "completions[2].overall_score"),
    ("overall_score", "inf", "completions[2].overall_score"),
])
def test_nan_and_off_scale_ratings_are_errors(rule, value, field):
    from zephyr.data.binarize import binarized_record

    row = {"instruction": "Q", "completions": [dict(c) for c in DIFFER["completions"]]}
    if rule == "mean_rating":
        row["completions"][2] = scored("c", [value, "3", "3", "3"], 7)
    else:
        row["completions"][2] = scored("c", ["3"] * 4, value)
    with pytest.raises(DataError) as err:
        binarized_record(row, HERE, 0, Counter(), rule)
    assert err.value.field == field and f"uf.jsonl:7: field '{field}'" in str(err.value)


def test_a_row_without_completions_names_completions(tmp_path, capsys):
    from zephyr.cli import main

    source = tmp_path / "raw.jsonl"
    source.write_text('{"instruction": "x"}\n')
    assert main(["data", "binarize", str(source), str(tmp_path / "out.jsonl")]) == 2
    assert f"{source}:1: field 'completions': missing" in capsys.readouterr().err


@pytest.mark.parametrize("rule, chosen", [(None, "b"), ("overall_score", "b"), ("mean_rating", "a")])
def test_the_mixer_binarizes_raw_rows_by_its_rule(make, tmp_path, rule, chosen):
    # the H4 release's rule by default: what the recipes that train on ultrafeedback_binarized saw
    make.write(tmp_path / "raw.jsonl", [DIFFER])
    options = {} if rule is None else {"binarize_rule": rule}
    splits = load_preference_splits(DataConfig(dataset_mixer={str(tmp_path / "raw.jsonl"): 1.0},
                                               test_split_size=0, **options))
    assert [p["chosen"] for p in splits.train] == [chosen]
    direct = binarize_row(DIFFER, HERE, 42, Counter(), rule or "overall_score")
    assert splits.train[0]["rejected"] == direct["rejected"]  # the same code path and seed as binarize_row


def test_an_unknown_binarize_rule_is_a_settings_error():
    from zephyr.errors import ConfigError

    with pytest.raises(ConfigError, match="--binarize_rule: 'median' is not one of overall_score, mean_rating"):
        DataConfig(binarize_rule="median")
