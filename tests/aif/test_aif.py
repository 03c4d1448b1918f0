"""`zephyr aif` end to end on a pool of one tiny model at four sampling settings and the scripted UltraFeedback
judge: who answered under which principle, the judge's prompts, the scores, the pairs (trainable: read by the
DPO stage's loader), multi-turn context, resume after a kill at every stage, and clear errors."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from tests.aif.conftest import GARBLE, RESCORE_ANSWER, aspect_rating, overall
from zephyr.aif import cli as aif
from zephyr.aif.cli import AIFConfig, run
from zephyr.data import DataConfig, load_preference_splits
from zephyr.errors import ConfigError, DataError

PROMPTS = [
    {"prompt": "Tell me about topic zero.", "source": "sharegpt"},
    {"prompt": f"Name the {GARBLE} colour.", "source": "evol_instruct"},
    {"messages": [{"role": "system", "content": "Answer tersely."},
                  {"role": "user", "content": "What is two plus two?"},
                  {"role": "assistant", "content": "Four."},
                  {"role": "user", "content": "And times three?"}], "source": "flan"},
    {"prompt": "Is the moon made of cheese?", "source": "truthful_qa",
     "correct_answers": ["No"], "incorrect_answers": ["Yes"]},
]


def read(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def write_prompts(path, rows=PROMPTS):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def config(tmp_path, model, judge_url, uf_dir, out="aif", batch_size=2, **extra):
    pool = [f"model={model},name=t{t},temperature={t},engine=transformers" for t in (0, 0.7, 1.0)] + \
        [f"{model},name=hot,top_k=5,engine=transformers"]
    return AIFConfig(prompts=str(tmp_path / "prompts.jsonl"), pool=pool, judge_url=judge_url, judge_model="gpt-4",
                     output_dir=str(tmp_path / out), max_new_tokens=6, batch_size=batch_size, ultrafeedback_dir=str(uf_dir),
                     **extra)


def expected_overall(completion: dict) -> float:
    """The scripted judge's overall_score after UltraFeedback's fix, recomputed from the texts."""
    score = overall(completion["response"])
    ratings = [int(a["Rating"]) for a in completion["annotations"].values() if a["Rating"] != "N/A"]
    fine = sum(ratings) / len(ratings)
    if score == 10 and fine <= 2:
        return 1.0
    if score == 10 and fine <= 4:
        return float(RESCORE_ANSWER)
    return float(score)


@pytest.mark.slow
def test_pool_judge_pairs_and_resume(tiny_model_dir, uf_judge, uf_dir, tmp_path, monkeypatch):
    write_prompts(tmp_path / "prompts.jsonl")
    model = tiny_model_dir("mistral")
    report = run(config(tmp_path, model, uf_judge.url, uf_dir))
    out = tmp_path / "aif"

    # pool: 4 distinct answerers per prompt, principles by source, the system prompt before the conversation
    completions = read(out / "completions.jsonl")
    principles = json.loads((uf_dir / "principles.json").read_text())
    assert len(completions) == 16
    for i in range(4):
        mine = [c for c in completions if c["prompt_index"] == i]
        assert len({c["model"] for c in mine}) == 4
        for c in mine:
            assert c["custom_system_prompt"] in principles[c["principle"]]
    assert {c["principle"] for c in completions if c["prompt_index"] == 1} == {"helpfulness"}  # evol_instruct
    assert {c["principle"] for c in completions if c["prompt_index"] == 3} <= {"honesty", "truthfulness",
                                                                               "verbalized_calibration"}

    # the judge: every aspect call saw the 4 completions of one prompt; truthfulness got the reference answers
    aspect_calls = [s for s in uf_judge.judge.seen if s["kind"] == "aspect"]
    assert len(aspect_calls) == 16
    rated = read(out / "rated.jsonl")
    for row in rated:
        calls = [s for s in aspect_calls if s["instruction"] == row["instruction"]]
        assert sorted(s["aspect"] for s in calls) == sorted(("instruction_following", "honesty", "truthfulness",
                                                             "helpfulness"))
        responses = sorted(c["response"] for c in row["completions"])
        assert all(sorted(s["texts"]) == responses for s in calls)
    multi = next(r for r in rated if r["index"] == 2)
    assert multi["messages"] == PROMPTS[2]["messages"]
    assert "Four." in multi["instruction"] and "Answer tersely." in multi["instruction"]
    truthful = next(s for s in aspect_calls if s["aspect"] == "truthfulness" and "cheese" in s["instruction"])
    assert truthful["world_knowledge"] == "a subset of correct answers: ['No']\na subset of incorrect_answers: ['Yes']"
    critiques = [s for s in uf_judge.judge.seen if s["kind"] == "critique"]
    assert len(critiques) == 16
    zero = next(c for c in completions if c["prompt_index"] == 0)
    assert any(s["instruction"] == "Tell me about topic zero.\nNote: " + zero["custom_system_prompt"]
               for s in critiques)

    # ratings and overall scores as the judge gave them (mapped back through the shuffles), the fix applied
    for row in rated:
        for c in row["completions"]:
            for aspect, annotation in c["annotations"].items():
                assert annotation["Rating"] == str(aspect_rating(aspect, c["response"]))
            assert c["overall_score"] == expected_overall(c)
    garbled = next(r for r in rated if r["index"] == 1)
    assert all(c["unparsable"] == ["honesty"] and "honesty" not in c["annotations"] for c in garbled["completions"])
    assert report["aif_aspect_calls"] == 16 and report["aif_aspect_calls_unparsable"] == 1
    assert report["aif_critiques"] == 16 and report["aif_critiques_unparsable"] == 0
    rescores = [s for s in uf_judge.judge.seen if s["kind"] == "rescore"]
    assert report.get("aif_overall_score_10_rescored", 0) == len(rescores) > 0

    # pairs: H4's rule on overall_score, full message lists, provenance; the DPO loader reads them
    pairs = read(out / "pairs.jsonl")
    assert report["aif_pairs_written"] == len(pairs) == 4
    for pair in pairs:
        row = next(r for r in rated if r["messages"] == pair["prompt"] or
                   (len(pair["prompt"]) == 1 and r["instruction"] == pair["prompt"][0]["content"]))
        best = max(row["completions"], key=lambda c: c["overall_score"])
        assert pair["chosen"] == [*pair["prompt"], {"role": "assistant", "content": best["response"]}]
        assert pair["score_chosen"] == best["overall_score"] >= pair["score_rejected"]
        assert pair["provenance"]["chosen"]["model"] == best["model"]
        assert pair["provenance"]["rule"] == "overall_score"
    assert any(p["prompt"] == PROMPTS[2]["messages"] for p in pairs)
    splits = load_preference_splits(DataConfig(dataset_mixer={str(out / "pairs.jsonl"): 1.0}, test_split_size=0))
    assert len(splits.train) == 4

    # resume after a kill in every stage: kept rows stay, missing ones are made, nothing is asked twice.
    # (Sampled replies are not bitwise reproducible across runs of the batched engine, so the judge stages are
    # killed on a copy of this run's completions and must then give exactly this run's ratings and pairs.)
    for stage in ("replies", "aspect_rows", "critique_rows", "rescore_rows"):
        folder = tmp_path / f"killed-{stage}"
        if stage != "replies":
            folder.mkdir()
            for file in ("settings.json", "completions.jsonl"):
                (folder / file).write_bytes((out / file).read_bytes())
        calls = Counter()
        real = getattr(aif, stage)

        def dies_on_second(*args, _real=real, _stage=stage, **kwargs):  # the rescores fit in one call
            calls[_stage] += 1
            if calls[_stage] == (1 if _stage == "rescore_rows" else 2):
                raise KeyboardInterrupt
            return _real(*args, **kwargs)

        monkeypatch.setattr(aif, stage, dies_on_second)
        cfg = config(tmp_path, model, uf_judge.url, uf_dir, out=folder.name)
        with pytest.raises(KeyboardInterrupt):
            run(cfg)
        monkeypatch.setattr(aif, stage, real)
        kept = {p.name: p.read_text() for p in folder.glob("*.jsonl")}
        for path in folder.glob("*.jsonl"):  # a torn last line, as a kill in mid-write leaves
            with open(path, "a") as handle:
                handle.write('{"index": 99, "trunc')
        before = len(uf_judge.judge.seen)
        again = run(cfg)
        for name, text in kept.items():
            assert (folder / name).read_text().startswith(text), (stage, name)  # nothing done was redone
        indices = [row["index"] for row in read(folder / "completions.jsonl")]
        assert sorted(indices) == list(range(16))
        assert again["aif_pairs_written"] == 4 and again["aif_completions"] == 16
        if stage != "replies":
            for file in ("aspects.jsonl", "critiques.jsonl", "rated.jsonl", "pairs.jsonl"):
                assert sorted(map(json.dumps, read(folder / file))) == \
                    sorted(map(json.dumps, read(out / file))), (stage, file)
            assert len(uf_judge.judge.seen) - before < 16 + 16 + len(rescores)  # only what was missing
    before = len(uf_judge.judge.seen)
    assert run(config(tmp_path, model, uf_judge.url, uf_dir)) == report  # all done: nothing asked again
    assert len(uf_judge.judge.seen) == before


def test_config_and_input_errors(tmp_path, uf_dir):
    prompts = write_prompts(tmp_path / "prompts.jsonl", PROMPTS[:1])
    base = dict(prompts=str(prompts), judge_url="http://127.0.0.1:9/v1", ultrafeedback_dir=str(uf_dir))
    with pytest.raises(ConfigError, match="--pool: 2 answerers"):
        AIFConfig(pool=["a", "b"], **base)
    with pytest.raises(ConfigError, match="exactly 4"):
        AIFConfig(pool=list("abcde"), completions_per_prompt=3, **base)
    with pytest.raises(ConfigError, match="unknown setting 'temp'"):
        AIFConfig(pool=["a,temp=1", "b", "c", "d"], **base)
    with pytest.raises(ConfigError, match="--rule"):
        AIFConfig(pool=list("abcd"), rule="best", **base)
    with pytest.raises(ConfigError, match="exactly one of --judge"):
        AIFConfig(pool=list("abcd"), prompts=str(prompts))
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(DataError, match="empty.jsonl: (holds no rows|no prompts)"):
        run(AIFConfig(pool=list("abcd"), **{**base, "prompts": str(empty)}))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "ok"}\n{"messages": [{"role": "assistant", "content": "x"}]}\n')
    with pytest.raises(DataError, match=r"bad.jsonl:2: field 'messages\[0\]': message 0 has role 'assistant'"):
        run(AIFConfig(pool=list("abcd"), **{**base, "prompts": str(bad)}))


def test_a_folder_of_another_run_is_refused(tmp_path, uf_dir):
    prompts = write_prompts(tmp_path / "prompts.jsonl", PROMPTS[:1])
    cfg = AIFConfig(prompts=str(prompts), pool=list("abcd"), judge_url="http://127.0.0.1:9/v1",
                    ultrafeedback_dir=str(uf_dir), output_dir=str(tmp_path / "out"))
    aif.claim_folder(tmp_path / "out", cfg)
    aif.claim_folder(tmp_path / "out", cfg)  # the same settings: resuming is fine
    other = AIFConfig(**{**{f: getattr(cfg, f) for f in ("prompts", "judge_url", "ultrafeedback_dir",
                                                         "output_dir")}, "pool": list("abcd"), "seed": 7})
    with pytest.raises(ConfigError, match=r"other settings \(seed\)"):
        aif.claim_folder(tmp_path / "out", other)


def test_endpoint_answerers(uf_judge, uf_dir, tmp_path):
    """A pool of OpenAI-compatible endpoints: each gets the principle as system message, the prompt, its model
    name and UltraFeedback's sampling; their replies go through judging into pairs."""
    from tests.fixtures.openai_server import scripted_server

    def answer(body):
        return f"{body['model']} says {len(body['messages'][-1]['content'])}"

    write_prompts(tmp_path / "prompts.jsonl", PROMPTS[:3])
    with scripted_server(answer) as answerers:
        pool = [f"url={answerers.url},model=m{i}" for i in range(4)] + [f"url={answerers.url},model=m4,temperature=0.5"]
        report = run(AIFConfig(prompts=str(tmp_path / "prompts.jsonl"), pool=pool, judge_url=uf_judge.url,
                               output_dir=str(tmp_path / "out"), ultrafeedback_dir=str(uf_dir)))
        bodies = [r["body"] for r in answerers.requests]
    principles = json.loads((uf_dir / "principles.json").read_text())
    assert len(bodies) == 12
    for body in bodies:
        system, *rest = body["messages"]
        assert body["max_tokens"] == 1024 and body["temperature"] == (0.5 if body["model"] == "m4" else 1)
        if len(rest) == 1:
            assert system["role"] == "system" and any(system["content"] in v for v in principles.values())
            assert rest[0]["content"] in (PROMPTS[0]["prompt"], PROMPTS[1]["prompt"])
        else:  # the multi-turn prompt: its own system text first, then the principle; every turn kept
            own, *turns = PROMPTS[2]["messages"]
            assert rest == turns and system["content"].startswith(own["content"] + " ")
            assert system["content"][len(own["content"]) + 1:] in principles["helpfulness"] + \
                principles["verbalized_calibration"]  # flan's principles
    completions = read(tmp_path / "out" / "completions.jsonl")
    assert all(c["response"].startswith(c["model"].split("model=")[1].split(",")[0]) for c in completions)
    assert report["aif_completions"] == 12 and report["aif_pairs_written"] == 3
    pairs = read(tmp_path / "out" / "pairs.jsonl")
    assert [p["prompt"] for p in pairs if len(p["prompt"]) > 1] == [PROMPTS[2]["messages"]]


@pytest.mark.slow
def test_gguf_answerers_through_llama_cpp(uf_judge, uf_dir, tmp_path, monkeypatch):
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (pip install 'zephyr[gguf]')")
    from tests.fixtures.tiny_gemma import tiny_gemma3_real_vocab
    from zephyr.aif import answer
    from zephyr.quantize.gguf import write_gguf

    gguf, _ = write_gguf(tiny_gemma3_real_vocab(tmp_path / "tiny-gemma3", embedding_scale=4.0), tmp_path / "gguf",
                         "f16", "zephyr")
    loaded = []
    real = answer.Engines._make
    monkeypatch.setattr(answer.Engines, "_make", lambda self, a: loaded.append(real(self, a)) or loaded[-1])
    write_prompts(tmp_path / "prompts.jsonl", PROMPTS[:2])
    pool = [f"{gguf},name=g{t},temperature={t},engine=llama.cpp" for t in (0, 0.5, 1.0, 1.5)]
    report = run(AIFConfig(prompts=str(tmp_path / "prompts.jsonl"), pool=pool, judge_url=uf_judge.url,
                           output_dir=str(tmp_path / "out"), max_new_tokens=6, ultrafeedback_dir=str(uf_dir)))
    assert [engine.name for engine in loaded] == ["llama.cpp"]  # one engine for the four settings
    assert report["aif_completions"] == 8 and report["aif_pairs_written"] == 2


def test_judge_grammar_goes_with_every_judge_request(uf_judge, uf_dir, tmp_path):
    """--judge_grammar: every aspect call carries its aspect's grammar, every critique the critique grammar and
    every re-asked score the score grammar; the prompts stay UltraFeedback's (the scripted judge checks them)."""
    from tests.fixtures.openai_server import scripted_server
    from zephyr.aif import rubric

    write_prompts(tmp_path / "prompts.jsonl", PROMPTS[:3])
    with pytest.raises(ConfigError, match="--judge_grammar: needs a judge behind --judge_url"):
        AIFConfig(prompts=str(tmp_path / "prompts.jsonl"), pool=list("abcd"), judge="embedded", judge_grammar=True)
    with scripted_server(lambda body: f"{body['model']} says {len(body['messages'][-1]['content'])}") as answerers:
        pool = [f"url={answerers.url},model=m{i}" for i in range(4)]
        report = run(AIFConfig(prompts=str(tmp_path / "prompts.jsonl"), pool=pool, judge_url=uf_judge.url,
                               output_dir=str(tmp_path / "out"), ultrafeedback_dir=str(uf_dir), judge_grammar=True,
                               judge_rationale_chars=30))
    kinds = Counter()
    for body in (r["body"] for r in uf_judge.requests):
        user = body["messages"][1]["content"]
        aspect = next((a for (a, _), p in uf_judge.judge.patterns.items() if p.fullmatch(user)), None)
        if aspect is not None:
            assert body["grammar"] == rubric.aspect_grammar(aspect, 30)
            kinds[aspect] += 1
        elif uf_judge.judge.rescore.fullmatch(user):
            assert body["grammar"] == rubric.RESCORE_GRAMMAR
            kinds["rescore"] += 1
        else:
            assert uf_judge.judge.critique.fullmatch(user) and body["grammar"] == rubric.critique_grammar(30)
            kinds["critique"] += 1
    assert [kinds[a] for a in rubric.ASPECTS] == [3] * 4 and kinds["critique"] == 12 and kinds["rescore"] >= 1
    assert report["aif_pairs_written"] == 3 and report["aif_aspect_calls_unparsable"] == 1  # the garbled call
    with pytest.raises(ConfigError, match=r"other settings \(judge_grammar_chars\)"):  # not mixed in one folder
        aif.claim_folder(tmp_path / "out", AIFConfig(prompts=str(tmp_path / "prompts.jsonl"), pool=pool,
                                                     judge_url=uf_judge.url, output_dir=str(tmp_path / "out"),
                                                     ultrafeedback_dir=str(uf_dir)))
