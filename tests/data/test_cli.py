"""`zephyr data ...` through the real entry point, on temp files."""

from __future__ import annotations

import json

import yaml

from zephyr.cli import main


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_help_for_every_subcommand(capsys):
    assert main(["data", "--help"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ("binarize", "filter", "decontaminate", "mix"))
    for name, flag in (("binarize", "--seed"), ("filter", "--skip_invalid"), ("decontaminate", "--eval"),
                       ("mix", "--dataset_mixer")):
        assert main(["data", name, "--help"]) == 0
        out = capsys.readouterr().out
        assert out.startswith(f"usage: zephyr data {name}") and flag in out


def test_binarize(make, tmp_path, capsys):
    rows = [{"instruction": f"Q{i}", "completions": [make.completion("good", ["5"] * 4),
                                                     make.completion("bad", ["1"] * 4),
                                                     make.completion("meh", ["3", "N/A", "3", "3"])]}
            for i in range(5)]
    rows.append({"instruction": "tied", "completions": [make.completion("a", ["4"] * 4),
                                                        make.completion("b", ["4"] * 4)]})
    source = make.write(tmp_path / "raw.parquet", rows)
    out = tmp_path / "pairs.jsonl"
    assert main(["data", "binarize", str(source), str(out), "--seed", "3", "--rule", "mean_rating"]) == 0
    pairs = read_jsonl(out)
    assert len(pairs) == 5 and all(p["chosen"][-1]["content"] == "good" and
                                   p["rejected"][-1]["content"] in ("bad", "meh") for p in pairs)
    table = capsys.readouterr().out
    assert "binarize_dropped_all_tied" in table and "binarize_na_ratings" in table
    again = tmp_path / "again.jsonl"
    main(["data", "binarize", str(source), str(again), "--seed=3", "--rule=mean_rating"])
    assert read_jsonl(again) == pairs


def test_filter_keeps_columns_and_updates_prompt(make, tmp_path, capsys):
    rows = [make.chat(i) for i in range(4)]
    rows[0]["messages"][0]["content"] = rows[0]["prompt"] = "lower case question. really"
    rows[1]["messages"][1]["content"] = "As an AI language model, I have no opinions."
    source = make.write(tmp_path / "uc.jsonl", rows)
    out = tmp_path / "clean.jsonl"
    assert main(["data", "filter", str(source), str(out)]) == 0
    kept = read_jsonl(out)
    assert [r["prompt_id"] for r in kept] == ["id0", "id2", "id3"]
    assert kept[0]["prompt"] == kept[0]["messages"][0]["content"] == "Lower case question. Really"
    assert "filter_disclaimer_turns" in capsys.readouterr().out


def test_decontaminate(make, tmp_path, shared_data, capsys):
    mt_bench = shared_data / "mt_bench" / "question.jsonl"
    ifeval = shared_data / "ifeval" / "input_data.jsonl"
    question = json.loads(mt_bench.read_text().splitlines()[0])["turns"][0]
    rows = [{"prompt": f"P{i} asks something new", "chosen": "a", "rejected": "b"} for i in range(5)]
    rows[2]["prompt"] = "Hey! " + question
    rows[4]["chosen"] = ""  # only decontamination happens here: an empty reply is not this command's business
    source = make.write(tmp_path / "pairs.json", rows)
    out = tmp_path / "clean.parquet"
    assert main(["data", "decontaminate", str(source), str(out), "--eval", str(mt_bench), str(ifeval),
                 "--ngram", "8"]) == 0
    import pyarrow.parquet as pq

    kept = pq.read_table(out).to_pylist()
    assert [r["prompt"] for r in kept] == [rows[i]["prompt"] for i in (0, 1, 3, 4)]
    table = capsys.readouterr().out
    assert "decontaminated" in table and "mt_bench (160 prompts)" in table and "ifeval (541 prompts)" in table


def test_mix_with_a_full_recipe(make, tmp_path, capsys):
    source = make.write(tmp_path / "chat.csv", [make.chat(i) for i in range(30)])
    recipe = tmp_path / "sft.yaml"
    recipe.write_text(yaml.safe_dump({"model": "embedded", "learning_rate": 2e-5,  # trainer fields: ignored
                                      "dataset_mixer": {str(source): 1.0}, "test_split_size": 0.2, "seed": 7}))
    out = tmp_path / "mixed"
    assert main(["data", "mix", "--config", str(recipe), str(out), "--max_train_samples", "10"]) == 0
    train, test = read_jsonl(out / "train.jsonl"), read_jsonl(out / "test.jsonl")
    assert (len(train), len(test)) == (10, 6)
    assert all(r["messages"][0]["role"] == "user" for r in train)
    report = json.loads((out / "report.json").read_text())
    assert report["kind"] == "chat" and report["sources"][str(source)]["held_out"] == 6
    assert "chat data: 10 train / 6 test rows" in capsys.readouterr().out


def test_user_mistakes_give_a_message_not_a_traceback(make, tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "x", "completions": []}\n{oops\n')
    assert main(["data", "binarize", str(bad), str(tmp_path / "o.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "bad.jsonl:2: not valid JSON" in err and "Traceback" not in err
    assert not (tmp_path / "o.jsonl").exists()  # no partial output
    assert main(["data", "binarize", str(bad), str(tmp_path / "o.jsonl"), "--skip_invalid"]) == 0
    assert "invalid_skipped" in capsys.readouterr().out
    assert main(["data", "binarize", str(bad)]) == 2
    assert "INPUT OUTPUT" in capsys.readouterr().err
    assert main(["data", "filter", str(bad), "o.jsonl", "--sead", "1"]) == 2
    assert main(["data", "decontaminate", str(bad), "o.jsonl"]) == 2
    assert "--eval" in capsys.readouterr().err
    assert main(["data", "binarise"]) == 2
    assert "did you mean 'binarize'" in capsys.readouterr().err
    recipe = tmp_path / "r.yaml"
    recipe.write_text("dataset_mixr: {a.jsonl: 1.0}\n")
    assert main(["data", "mix", "--config", str(recipe), str(tmp_path / "out")]) == 2
    assert "did you mean 'dataset_mixer'" in capsys.readouterr().err
