"""tests/fixtures/tiny.py: the tokenizer learns its merges from the corpus it is given."""

from tests.fixtures.tiny import tiny_tokenizer


def test_tokenizer_trained_on_a_given_corpus_learns_its_words():
    word = " anemometer"  # byte-level BPE: a word after a space is one token "Ġanemometer"
    fixed = tiny_tokenizer(vocab_size=400)
    trained = tiny_tokenizer(vocab_size=400, corpus=[f"the {word} spins in the wind"] * 50)
    # the fixed paragraph never says the word, so it falls apart into pieces; the given corpus makes it one token
    assert len(fixed(word, add_special_tokens=False).input_ids) > 1
    assert trained(word, add_special_tokens=False).input_ids == [trained.convert_tokens_to_ids("Ġanemometer")]
    assert trained(word).input_ids[0] == trained.bos_token_id
    assert trained.convert_tokens_to_ids("<|im_start|>") != trained.unk_token_id
