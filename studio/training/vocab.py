"""A small word-level vocabulary in CLIP BPE format (vocab.json + merges.txt).

The files load with the stock ``CLIPTokenizer``, so the bundled model goes through the
same code path as any Stable Diffusion model. Every word of the world's captions is one
token: merges are generated so that BPE assembles each word completely. All 256 byte
symbols (alone and word-final) are in the vocabulary too, so an unknown word degrades to
characters instead of failing.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable
from pathlib import Path

from transformers import CLIPTokenizer

from studio.training.world import ATTRIBUTES, PLACE_PHRASES, TEMPLATES, TIME_PHRASES

BOS = "<|startoftext|>"
EOS = "<|endoftext|>"
MAX_LENGTH = 77

# Words a user is likely to type beyond the captions; cheap to include as whole tokens.
EXTRA_WORDS = [
    "an",
    "the",
    "of",
    "with",
    "and",
    "on",
    "in",
    "at",
    "by",
    "under",
    "photo",
    "picture",
    "painting",
    "image",
    "a",
    "big",
    "small",
    "bright",
    "dark",
    "sky",
    "sun",
    "moon",
    "sea",
    "road",
    "mountains",
    "mountain",
    "trees",
    "water",
    "sand",
    "stars",
    "morning",
    "evening",
    "day",
    "blurry",
    "ugly",
    "bad",
    "low",
    "quality",
]


def _bytes_to_unicode() -> dict[int, str]:
    """The GPT-2/CLIP byte-to-printable-character table."""
    bs = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs), strict=True))


def caption_words() -> list[str]:
    """Every word the world's captions can contain, plus ``EXTRA_WORDS``, sorted."""
    text = " ".join(
        [*(v for values in ATTRIBUTES.values() for v in values), *TEMPLATES, *EXTRA_WORDS]
        + [p for phrases in PLACE_PHRASES.values() for p in phrases]
        + [p for phrases in TIME_PHRASES.values() for p in phrases]
    )
    for mark in "{},.":
        text = text.replace(mark, " ")
    words = {w for w in text.lower().split() if w not in {"colour", "subject", "place", "time"}}
    return sorted(words)


def _apply_merges(symbols: list[str], ranks: dict[tuple[str, str], int]) -> list[str]:
    """Plain BPE: repeatedly merge the lowest-ranked adjacent pair."""
    while len(symbols) > 1:
        pairs = [(ranks.get((a, b)), i) for i, (a, b) in enumerate(itertools.pairwise(symbols))]
        pairs = [(r, i) for r, i in pairs if r is not None]
        if not pairs:
            break
        _, i = min(pairs)
        symbols = [*symbols[:i], symbols[i] + symbols[i + 1], *symbols[i + 2 :]]
    return symbols


def build_vocab(words: Iterable[str]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Vocabulary and merges in which each of ``words`` becomes a single token.

    Each new merge is ranked after all earlier ones, so it only fires where no earlier
    merge applies; words already handled keep their single-token encoding.
    """
    base = list(_bytes_to_unicode().values())
    vocab: list[str] = base + [c + "</w>" for c in base]
    known = set(vocab)
    merges: list[tuple[str, str]] = []
    ranks: dict[tuple[str, str], int] = {}
    for word in words:
        symbols = [*word[:-1], word[-1] + "</w>"]
        while len(symbols := _apply_merges(symbols, ranks)) > 1:
            pair = (symbols[0], symbols[1])
            ranks[pair] = len(merges)
            merges.append(pair)
            merged = pair[0] + pair[1]
            if merged not in known:
                known.add(merged)
                vocab.append(merged)
    vocab += [BOS, EOS]
    return {token: i for i, token in enumerate(vocab)}, merges


def write_tokenizer(directory: str | Path, words: Iterable[str] | None = None) -> Path:
    """Write vocab.json, merges.txt and the tokenizer configs into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    vocab, merges = build_vocab(caption_words() if words is None else words)
    (directory / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    lines = ["#version: 0.2"] + [f"{a} {b}" for a, b in merges]
    (directory / "merges.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    special = {"bos_token": BOS, "eos_token": EOS, "unk_token": EOS, "pad_token": EOS}
    (directory / "special_tokens_map.json").write_text(
        json.dumps(special, indent=2), encoding="utf-8"
    )
    config = {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": MAX_LENGTH,
        "do_lower_case": True,
        "clean_up_tokenization_spaces": False,
        **special,
    }
    (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    return directory


def load_tokenizer(directory: str | Path) -> CLIPTokenizer:
    return CLIPTokenizer.from_pretrained(str(directory), local_files_only=True)
