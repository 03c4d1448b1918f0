"""MT-Bench as FastChat's llm_judge runs it: judge prompts byte for byte, ratings, files in FastChat's schemas,
show_result's tables, and the checks of every input file before any model loads.

FastChat itself (`fschat` 0.2.36) is an oracle when it can be imported: `pip download fschat==0.2.36 --no-deps`,
unzip the wheel and point ZEPHYR_FASTCHAT_SRC at the folder (its llm_judge needs openai<1 and anthropic, which
are stubbed here as only the prompt construction and rating are compared)."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import types

import pytest

from tests.fixtures.openai_server import scripted_server
from zephyr.errors import DataError
from zephyr.eval import fastchat_data, mt_bench
from zephyr.eval.cli import EvalConfig, run


@pytest.fixture(scope="module")
def mt(shared_data):
    folder = shared_data / "mt_bench"
    return types.SimpleNamespace(
        folder=folder, questions=fastchat_data.load_questions(folder / "question.jsonl"),
        prompts=fastchat_data.load_judge_prompts(folder / "judge_prompts.jsonl"),
        references=fastchat_data.load_answers(folder / "reference_answer" / "gpt-4.jsonl"))


def by_hand(template: str, **values) -> str:
    """Fill a FastChat template by plain replacement, independently of str.format."""
    for key, value in values.items():
        template = template.replace("{" + key + "}", value)
    return template


def test_judge_requests_are_fastchats_for_every_question_and_turn(mt):
    assert len(mt.questions) == 80
    seen = set()
    for q in mt.questions:
        answer = [f"first {{answer}} of {q['question_id']}", f"second {{x}} of {q['question_id']}"]  # braces stay
        graded = q["category"] in ("math", "reasoning", "coding")
        ref = mt.references[q["question_id"]]["choices"][0]["turns"] if graded else None
        for turn in (1, 2):
            request = mt_bench.judge_request(mt.prompts, q, answer, turn, ref)
            name = ("single-math-v1" if graded else "single-v1") + ("-multi-turn" if turn == 2 else "")
            template = mt.prompts[name]
            if turn == 1:
                user = by_hand(template["prompt_template"], question=q["turns"][0], answer=answer[0],
                               **({"ref_answer_1": ref[0]} if graded else {}))
            else:
                user = by_hand(template["prompt_template"], question_1=q["turns"][0], question_2=q["turns"][1],
                               answer_1=answer[0], answer_2=answer[1],
                               **({"ref_answer_1": ref[0], "ref_answer_2": ref[1]} if graded else {}))
            assert request["prompt_name"] == name and request["user_prompt"] == user
            assert request["messages"] == [{"role": "system", "content": template["system_prompt"]},
                                           {"role": "user", "content": user}]
            assert request["max_tokens"] == 2048 and request["temperature"] == 0
            seen.add(name)
            if graded:
                assert ref[turn - 1] in user
    assert seen == set(fastchat_data.SINGLE_PROMPTS)


def test_ratings_as_fastchat_reads_them():
    cases = {"Fine. Rating: [[7]]": 7, "[[8.5]]": 8.5, "Rating: [6]": 6, "[[11]]": 11, "[[0]]": 0,
             "[[7]] then [[3]]": 7, "[3] before [[9]]": 9, "Rating: 5": -1, "[[ 7 ]]": -1, "no rating": -1,
             "[[8.]]": 8.0}
    for text, expected in cases.items():
        got = mt_bench.parse_rating(text)
        assert got == expected and type(got) is type(expected), text


def fastchat_common(monkeypatch):
    source = os.environ.get("ZEPHYR_FASTCHAT_SRC")
    if source:
        monkeypatch.syspath_prepend(source)
    if importlib.util.find_spec("fastchat") is None:
        pytest.skip("FastChat (fschat 0.2.36) not importable; set ZEPHYR_FASTCHAT_SRC to an unpacked wheel")
    for name in ("openai", "anthropic"):  # imported by common.py, unused by what is compared here: stubbed for
        if importlib.util.find_spec(name) is None:  # this test only when not installed
            monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    from fastchat.llm_judge import common

    return common


@pytest.mark.slow
def test_against_fastchat_itself(mt, monkeypatch):
    common = fastchat_common(monkeypatch)
    sent = []

    def chat_completion_openai(model, conv, temperature, max_tokens, api_dict=None):
        sent.append((conv.to_openai_api_messages(), temperature, max_tokens))
        return judgments[len(sent) % len(judgments)]

    judgments = ["ok [[7]]", "hmm [5]", "none", "[[10.5]]", "x [[3]] y [[4]]"]
    monkeypatch.setattr(common, "chat_completion_openai", chat_completion_openai)
    prompts = common.load_judge_prompts(str(mt.folder / "judge_prompts.jsonl"))
    for q in mt.questions:
        graded = q["category"] in common.NEED_REF_CATS
        answer = {"choices": [{"turns": [f"a1 {q['question_id']}", f"a2 {{b}} {q['question_id']}"]}]}
        ref = mt.references[q["question_id"]] if graded else None
        for turn in (1, 2):
            name = mt_bench.judge_prompt_name(q["category"], turn)
            judge = common.Judge("gpt-4", prompts[name], ref_based=graded, multi_turn=turn == 2)
            score, user_prompt, judgment = common.run_judge_single(q, answer, judge, ref, multi_turn=turn == 2)
            ours = mt_bench.judge_request(mt.prompts, q, answer["choices"][0]["turns"], turn,
                                          ref["choices"][0]["turns"] if ref else None)
            messages, temperature, max_tokens = sent[-1]
            assert ours["messages"] == messages and ours["user_prompt"] == user_prompt
            assert (ours["temperature"], ours["max_tokens"]) == (temperature, max_tokens)
            assert mt_bench.parse_rating(judgment) == score
    assert len(sent) == 160


def small_question_file(mt, tmp_path):
    """Two questions of each category, so reference-graded ones are in."""
    rows = [q for c in sorted({q["category"] for q in mt.questions})
            for q in [q for q in mt.questions if q["category"] == c][:2]]
    path = tmp_path / "question.jsonl"
    path.write_text("".join(json.dumps(q) + "\n" for q in rows))
    return path, rows


def config(mt, tmp_path, data, **overrides):
    values = dict(benchmark="mt_bench", model=str(tmp_path / "my-model"), data=data,
                  judge_prompts=mt.folder / "judge_prompts.jsonl",
                  references=mt.folder / "reference_answer" / "gpt-4.jsonl", output_dir=tmp_path / "out",
                  judge_url="http://127.0.0.1:9/v1", judge_model="gpt-4", judge_concurrency=2)
    return EvalConfig(**{k: str(v) if hasattr(v, "is_file") else v for k, v in {**values, **overrides}.items()})


def test_a_run_writes_fastchats_files_and_tables(mt, tmp_path, capsys):
    data, questions = small_question_file(mt, tmp_path)
    (tmp_path / "my-model").mkdir()
    asked = []

    def generate(conversations, temperature):
        asked.append((temperature, conversations))
        return [f"reply {len(c)} to {c[0]['content'][:12]}" for c in conversations]

    def respond(body):  # turn-1 prompts get 6, turn-2 prompts 8, and one judgment carries no rating
        user = body["messages"][-1]["content"]
        if questions[0]["turns"][1] in user and "### User:" in user:
            return "no verdict"
        return "[[8]]" if "### User:" in user else "Rating: [[6]]"

    with scripted_server(respond) as server:
        report = run(config(mt, tmp_path, data, judge_url=server.url), generate=generate)
    # generation: category temperatures, and turn 2 sees the model's own first answer
    temps = {q["category"]: {t for t, convs in asked for c in convs if c[0]["content"] == q["turns"][0]}
             for q in questions}
    assert temps == {c: {mt_bench.TEMPERATURE[c]} for c in temps}
    second = [c for _, convs in asked for c in convs if len(c) == 3]
    assert len(second) == 16 and all(c[1]["content"] == f"reply 1 to {c[0]['content'][:12]}" for c in second)
    # the judge got FastChat's requests
    assert len(server.requests) == 32
    for r in server.requests:
        body = r["body"]
        assert body["model"] == "gpt-4" and body["temperature"] == 0 and body["max_tokens"] == 2048
        assert body["messages"][0]["role"] == "system"
    # model_answer/<model_id>.jsonl: FastChat's schema, sorted by question id
    answers = [json.loads(line) for line in (tmp_path / "out/model_answer/my-model.jsonl").read_text().splitlines()]
    assert [a["question_id"] for a in answers] == sorted(q["question_id"] for q in questions)
    for a in answers:
        assert list(a) == ["question_id", "answer_id", "model_id", "choices", "tstamp"]
        assert a["model_id"] == "my-model" and isinstance(a["tstamp"], float)
        assert len(a["answer_id"]) == 22 and set(a["answer_id"]) <= set(mt_bench.SHORTUUID_ALPHABET)
        assert a["choices"] == [{"index": 0, "turns": [a["choices"][0]["turns"][0], a["choices"][0]["turns"][1]]}]
    # model_judgment/<judge>_single.jsonl: FastChat's schema and order
    path = tmp_path / "out/model_judgment/gpt-4_single.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(rows) == 32
    for row in rows:
        assert list(row) == ["question_id", "model", "judge", "user_prompt", "judgment", "score", "turn", "tstamp"]
        assert row["model"] == "my-model" and row["judge"][0] == "gpt-4"
        assert row["judge"][1] == mt_bench.judge_prompt_name(
            next(q["category"] for q in questions if q["question_id"] == row["question_id"]), row["turn"])
    assert [r["turn"] for r in rows] == [1] * 16 + [2] * 16
    graded = [r["judge"][1].startswith("single-math") for r in rows[:16]]
    assert graded == sorted(graded)  # general questions first, then the reference-graded ones
    assert [r["score"] for r in rows].count(-1) == 1 and {r["score"] for r in rows} == {6, 8, -1}
    # the report and show_result's tables: -1 left out, the average over all rated turns
    assert report["turn_1"] == 6.0 and report["turn_2"] == 8.0 and report["unrated"] == 1
    assert report["score"] == round((16 * 6 + 15 * 8) / 31, 4)
    assert report["categories"][questions[0]["category"]] == round((2 * 6 + 8) / 3, 4)
    out = capsys.readouterr().out
    assert "########## First turn ##########" in out and "my-model 1       6.0\n" in out
    assert f"my-model  {(16 * 6 + 15 * 8) / 31:.6f}" in out
    # the figure went into the model folder's card
    card = (tmp_path / "my-model" / "README.md").read_text()
    assert "name: MT-Bench" in card and f"value: {round(report['score'], 2)}" in card


def test_another_models_judgments_are_kept(mt, tmp_path):
    data, questions = small_question_file(mt, tmp_path)
    path = tmp_path / "out/model_judgment/gpt-4_single.jsonl"
    path.parent.mkdir(parents=True)
    other = {"question_id": 81, "model": "other", "judge": ["gpt-4", "single-v1"], "user_prompt": "u",
             "judgment": "[[3]]", "score": 3, "turn": 1, "tstamp": 1.0}
    mine = {**other, "model": "my-model", "score": 9}
    path.write_text(json.dumps(other) + "\n" + json.dumps(mine) + "\n")
    with scripted_server(lambda body: "[[5]]") as server:
        run(config(mt, tmp_path, data, judge_url=server.url, update_card=False),
            generate=lambda convs, t: ["a"] * len(convs))
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert rows[0] == other and len(rows) == 33 and {r["score"] for r in rows[1:]} == {5}


SHOW_RESULT = """
########## First turn ##########
              score
model   turn       
model-a 1       7.5
model-b 1       4.0

########## Second turn ##########
              score
model   turn       
model-b 2       6.0
model-a 2       5.0

########## Average ##########
            score
model            
model-a  6.666667
model-b  5.000000
"""


def test_judgments_file_prints_show_results_tables(tmp_path, capsys):
    rows = [("model-a", 1, 7), ("model-a", 1, 8), ("model-a", 2, 5), ("model-a", 2, -1),
            ("model-b", 1, 4), ("model-b", 2, 6), ("model-b", 1, -1)]
    path = tmp_path / "gpt-4_single.jsonl"
    path.write_text("".join(json.dumps({"question_id": 81 + i, "model": m, "judge": ["gpt-4", "single-v1"],
                                        "user_prompt": "", "judgment": "", "score": s, "turn": t, "tstamp": 0.0})
                            + "\n" for i, (m, t, s) in enumerate(rows)))
    report = run(EvalConfig(benchmark="mt_bench", judgments=str(path), output_dir=str(tmp_path / "o")))
    assert capsys.readouterr().out == SHOW_RESULT + "\n"
    assert report["models"]["model-a"] == {"score": round(20 / 3, 4), "turn_1": 7.5, "turn_2": 5.0, "judged": 3,
                                           "unrated": 1}
    assert report["models"]["model-b"]["score"] == 5.0


@pytest.mark.slow
def test_judgments_table_equals_fastchats_show_result(tmp_path, capsys, monkeypatch):
    fastchat_common(monkeypatch)
    from fastchat.llm_judge import show_result

    rows = [("a", 1, 7), ("a", 2, 8.5), ("b", 1, 3), ("b", 2, -1), ("c", 1, 10), ("c", 2, 2), ("a", 1, 11)]
    path = tmp_path / "j.jsonl"
    path.write_text("".join(json.dumps({"question_id": i, "model": m, "judge": ["gpt-4", "single-v1"],
                                        "score": s, "turn": t}) + "\n" for i, (m, t, s) in enumerate(rows)))
    show_result.display_result_single(types.SimpleNamespace(input_file=str(path), bench_name="mt_bench",
                                                            model_list=None))
    theirs = capsys.readouterr().out.split("\n", 1)[1]  # after "Input file: ..."
    print(mt_bench.show_result(fastchat_data.load_judgments(path)), end="")
    assert capsys.readouterr().out == theirs


def write(tmp_path, name, rows):
    path = tmp_path / name
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_bad_inputs_stop_before_any_model_loads(mt, tmp_path):
    good, _ = small_question_file(mt, tmp_path)
    prompts = [json.loads(line) for line in (mt.folder / "judge_prompts.jsonl").read_text().splitlines()]

    def fails(match, **overrides):
        # the model does not exist: getting past the checks would fail differently
        with pytest.raises(DataError, match=match):
            run(config(mt, tmp_path, overrides.pop("data", good), model=str(tmp_path / "missing"), **overrides))

    q = {"question_id": 1, "category": "writing", "turns": ["a", "b"]}
    fails(r"q\.jsonl:2: field 'turns': must hold 2 turns",
          data=write(tmp_path, "q.jsonl", [q, {**q, "question_id": 2, "turns": ["a"]}]))
    fails(r"q\.jsonl:2: field 'question_id': question 1 appears twice", data=write(tmp_path, "q.jsonl", [q, q]))
    fails(r"q\.jsonl:1: field 'question_id': must be an integer",
          data=write(tmp_path, "q.jsonl", [{**q, "question_id": "1"}]))
    fails(r"q\.jsonl:1: field 'category'", data=write(tmp_path, "q.jsonl", [{**q, "category": None}]))
    fails(r"empty\.jsonl: holds no rows", data=write(tmp_path, "empty.jsonl", []))
    fails(r"q\.jsonl:2: not valid JSON", data=write(tmp_path, "q.jsonl", [q, "{oops"]))
    fails(r"p\.jsonl: has no judge prompt named single-math-v1",
          judge_prompts=write(tmp_path, "p.jsonl", [p for p in prompts if p["name"] != "single-math-v1"]))
    bad = [{**p, "prompt_template": p["prompt_template"] + "{answer_2}"} if p["name"] == "single-v1" else p
           for p in prompts]
    fails(r"p\.jsonl:\d+: field 'prompt_template': refers to \['answer_2'\]",
          judge_prompts=write(tmp_path, "p.jsonl", bad))
    bad = [{**p, "output_format": "[[A]]"} if p["name"] == "single-v1" else p for p in prompts]
    fails(r"p\.jsonl:\d+: field 'output_format'", judge_prompts=write(tmp_path, "p.jsonl", bad))
    refs = [json.loads(line) for line in (mt.folder / "reference_answer/gpt-4.jsonl").read_text().splitlines()]
    fails(r"r\.jsonl: no two-turn reference answer for question 1\d\d", references=write(tmp_path, "r.jsonl", refs[5:]))
    fails(r"r\.jsonl:1: field 'choices\[0\]\.turns'",
          references=write(tmp_path, "r.jsonl", [{**refs[0], "choices": [{"turns": [1]}]}]))
    judgment = {"question_id": 81, "model": "m", "score": 5, "turn": 1}
    for row, field in (({**judgment, "turn": 3}, "turn"), ({**judgment, "score": "5"}, "score"),
                       ({**judgment, "model": None}, "model")):
        with pytest.raises(DataError, match=rf"j\.jsonl:2: field '{field}'"):
            run(EvalConfig(benchmark="mt_bench", judgments=str(write(tmp_path, "j.jsonl", [judgment, row])),
                           output_dir=str(tmp_path / "o")))
    with pytest.raises(DataError, match="no rows"):
        run(EvalConfig(benchmark="mt_bench", judgments=str(write(tmp_path, "j.jsonl", [])),
                       output_dir=str(tmp_path / "o")))


def test_pinned_files_are_checked(tmp_path, monkeypatch, shared_data):
    """A cached copy with the pinned digest is used as is; one that differs is fetched again and checked."""
    monkeypatch.setenv("ZEPHYR_CACHE", str(tmp_path))
    cached = tmp_path / "fastchat" / fastchat_data.FASTCHAT_COMMIT / "judge_prompts.jsonl"
    cached.parent.mkdir(parents=True)
    cached.write_bytes((shared_data / "mt_bench" / "judge_prompts.jsonl").read_bytes())
    assert fastchat_data.pinned_file("judge_prompts.jsonl") == cached
    cached.write_text("tampered\n")
    monkeypatch.setattr(fastchat_data.urllib.request, "urlopen", lambda url, timeout: io_bytes(b"tampered\n"))
    with pytest.raises(Exception, match="pinned sha256"):
        fastchat_data.pinned_file("judge_prompts.jsonl")


def io_bytes(payload):
    import io

    return io.BytesIO(payload)


@pytest.mark.slow
def test_a_tiny_model_answers_with_fastchats_generation_settings(mt, tiny_model_dir, tmp_path, monkeypatch):
    from zephyr.eval import cli

    questions = [next(q for q in mt.questions if q["category"] == c) for c in ("writing", "math")]
    data = write(tmp_path, "q.jsonl", questions)
    used = []
    make_generator = cli.make_generator
    monkeypatch.setattr(cli, "make_generator", lambda sampling: used.append(sampling) or make_generator(sampling))
    with scripted_server(lambda body: "[[4]]") as server:
        report = run(config(mt, tmp_path, data, model=str(tiny_model_dir("llama")), judge_url=server.url,
                            mt_bench_max_new_tokens=3, update_card=False))
    (sampling,) = used
    assert (sampling.max_new_tokens, sampling.top_p, sampling.top_k) == (3, 1.0, 50)
    rows = [json.loads(line) for line in (tmp_path / "out/model_answer" /
                                          f"{tiny_model_dir('llama').name}.jsonl").read_text().splitlines()]
    assert [r["question_id"] for r in rows] == [q["question_id"] for q in questions]
    assert all(len(r["choices"][0]["turns"]) == 2 for r in rows)
    assert report["score"] == 4 and report["judged"] == 4


def test_given_answers_are_judged_without_a_model(mt, tmp_path):
    data, questions = small_question_file(mt, tmp_path)
    answers = [{"question_id": q["question_id"], "answer_id": "x", "model_id": "published",
                "choices": [{"index": 0, "turns": [f"A1 {q['question_id']}", f"A2 {q['question_id']}"]}],
                "tstamp": 0.0} for q in questions]
    path = write(tmp_path, "published-model.jsonl", answers)
    with scripted_server(lambda body: "[[7]]") as server:
        report = run(config(mt, tmp_path, data, model=str(tmp_path / "missing"), answers=path,
                            judge_url=server.url))
    assert report["model_id"] == "published-model" and report["score"] == 7 and report["judged"] == 32
    sent = [r["body"]["messages"][-1]["content"] for r in server.requests]
    assert sum(f"A2 {questions[0]['question_id']}" in s for s in sent) == 1  # the turn-2 prompt
    rows = [json.loads(line) for line in (tmp_path / "out/model_judgment/gpt-4_single.jsonl").read_text().splitlines()]
    assert {r["model"] for r in rows} == {"published-model"}
    assert not (tmp_path / "out/model_answer").exists()
    with pytest.raises(DataError, match=r"published-model\.jsonl: no answer to question \d+ \(1 missing\)"):
        run(config(mt, tmp_path, data, answers=write(tmp_path, "published-model.jsonl", answers[1:])))
    with pytest.raises(DataError, match=r"published-model\.jsonl:1: field 'choices\[0\]\.turns': must hold 2"):
        bad = [{**answers[0], "choices": [{"index": 0, "turns": ["only one"]}]}] + answers[1:]
        run(config(mt, tmp_path, data, answers=write(tmp_path, "published-model.jsonl", bad)))
