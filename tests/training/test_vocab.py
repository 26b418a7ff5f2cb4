"""Our word-level CLIP vocabulary loads with the stock CLIPTokenizer and round-trips."""

from __future__ import annotations

from pathlib import Path

from studio.training.vocab import MAX_LENGTH, caption_words, load_tokenizer, write_tokenizer


def test_every_vocabulary_word_is_one_token_and_round_trips(tmp_path: Path) -> None:
    tokenizer = load_tokenizer(write_tokenizer(tmp_path))
    assert tokenizer.model_max_length == MAX_LENGTH
    for word in caption_words():
        ids = tokenizer(word, add_special_tokens=False).input_ids
        assert len(ids) == 1, word
        assert tokenizer.decode(ids).strip() == word


def test_sentences_get_special_tokens_and_unknown_words_degrade_to_characters(
    tmp_path: Path,
) -> None:
    tokenizer = load_tokenizer(write_tokenizer(tmp_path))
    ids = tokenizer("a red car at sunset", padding="max_length", max_length=MAX_LENGTH).input_ids
    assert len(ids) == MAX_LENGTH
    assert ids[0] == tokenizer.bos_token_id and ids[6] == tokenizer.eos_token_id
    assert tokenizer.pad_token_id is not None and ids[-1] == tokenizer.pad_token_id
    unknown = tokenizer("zebra", add_special_tokens=False).input_ids
    assert 1 < len(unknown) <= 5
    assert tokenizer.unk_token_id not in unknown
    assert (
        tokenizer.decode(tokenizer("A Zebra by the sea").input_ids, skip_special_tokens=True)
        == "a zebra by the sea"
    )
