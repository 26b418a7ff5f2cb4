"""Cancel takes effect within one block: inside the prompt encoding, a UNet evaluation and
the final decode, not only between steps. Counted in module calls, never in time."""

from __future__ import annotations

import json
import threading
from types import SimpleNamespace

import pytest

from studio.engine.models import BUNDLED_PATH
from studio.engine.recipe import Recipe
from studio.engine.sampler import Sampler

BUNDLED_TOKENIZER = BUNDLED_PATH / "tokenizer"


def big_recipe() -> Recipe:
    return Recipe("a red car", "blurry", seed=3, steps=4, guidance=5.0, width=256, height=256)


class Calls:
    """Counts forward calls of a module; ``on_call`` runs inside the n-th one."""

    def __init__(self, module, on_call=None, at: int = 0) -> None:
        self.count = 0

        def hook(_module, _args, _output):
            self.count += 1
            if on_call is not None and self.count == at + 1:
                on_call()

        self.handle = module.register_forward_hook(hook)


@pytest.fixture
def sampler(tiny_model):
    return Sampler(tiny_model)


def test_cancel_inside_the_text_encoder_runs_no_unet_evaluation(sampler, tiny_model):
    cancel = threading.Event()
    layers = tiny_model.text_encoder.encoder.layers
    Calls(layers[0], cancel.set)
    later_layer = Calls(layers[1])
    unet = Calls(tiny_model.unet)
    try:
        steps = list(sampler.run(big_recipe().with_changes(prompt="cancel me"), cancel=cancel))
    finally:
        _clear_hooks(tiny_model)
    assert steps == []
    assert later_layer.count == 0  # stopped before the encoder's next layer
    assert unet.count == 0


def test_cancel_inside_the_first_unet_evaluation_stops_before_its_next_block(sampler, tiny_model):
    cancel = threading.Event()
    unet = tiny_model.unet
    first_block = Calls(unet.down_blocks[0], cancel.set)
    up_blocks = [Calls(block) for block in unet.up_blocks]
    mid = Calls(unet.mid_block)
    try:
        steps = list(sampler.run(big_recipe(), cancel=cancel))
    finally:
        _clear_hooks(tiny_model)
    assert steps == []
    assert first_block.count == 1
    assert mid.count == 0 and all(block.count == 0 for block in up_blocks)
    # The sampler is clean afterwards: a new run is the same as ever.
    assert len(list(sampler.run(big_recipe().with_changes(steps=1)))) == 1


def test_cancel_inside_the_final_decode_stops_between_decoder_blocks(sampler, tiny_model):
    recipe = big_recipe().with_changes(steps=1, width=64, height=64)
    (step,) = sampler.run(recipe)
    decoder = tiny_model.vae.decoder
    cancel = threading.Event()
    Calls(decoder.up_blocks[0], cancel.set)
    last_block = Calls(decoder.up_blocks[-1])
    try:
        image = sampler.decode(step.latent, cancel)
    finally:
        _clear_hooks(tiny_model)
    assert image is None
    assert len(decoder.up_blocks) > 1 and last_block.count == 0
    assert sampler.decode(step.latent, threading.Event()) is not None


def test_unknown_words_of_a_word_level_vocabulary_are_named(tmp_path):
    from studio.training.vocab import load_tokenizer

    tokenizer = load_tokenizer(BUNDLED_TOKENIZER)
    sampler = Sampler(SimpleNamespace(tokenizer=tokenizer))
    info = sampler.prompt_info("A red Dragon by the sea, a dragon and a wyvern")
    assert info.unknown_words == ("dragon", "wyvern")
    assert sampler.unknown_words("a red car by the sea") == ()


def test_a_subword_vocabulary_reports_no_unknown_words(tmp_path):
    from transformers import CLIPTokenizer

    from tests.tiny_models import write_char_tokenizer

    write_char_tokenizer(tmp_path)
    vocab = json.loads((tmp_path / "vocab.json").read_text())
    letters = "abcdefghijklmnopqrstuvwxyz"
    for a in letters:  # pieces enough to look like CLIP's 49k subwords
        for b in letters:
            for c in letters[:14]:
                vocab.setdefault(a + b + c, len(vocab))
    (tmp_path / "vocab.json").write_text(json.dumps(vocab))
    tokenizer = CLIPTokenizer.from_pretrained(str(tmp_path), local_files_only=True)
    assert len(tokenizer) > 8192
    sampler = Sampler(SimpleNamespace(tokenizer=tokenizer))
    assert sampler.unknown_words("a dragon over xqzv mountains") == ()


def _clear_hooks(model) -> None:
    for module in (model.unet, model.vae, model.text_encoder):
        for child in module.modules():
            child._forward_hooks.clear()
