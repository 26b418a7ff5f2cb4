"""Prompt crossing: a child's conditioning is the convex mix of its parents' text embeddings."""

from __future__ import annotations

import json

import pytest
import torch

from studio.engine.batching import with_batches
from studio.engine.breeding import brood_of, cross_at, mixed_prompts
from studio.engine.models import load_model
from studio.engine.recipe import Recipe, RecipeError
from studio.engine.sampler import Sampler, encode_mix, encode_text

FOX, OWL, FROG = "a red fox", "a blue owl", "a green frog"


def _recipe(prompt: str = FOX, **changes) -> Recipe:
    fields = {"seed": 3, "steps": 4, "width": 16, "height": 16, "sampler": "Euler a"}
    return Recipe(prompt, **{**fields, **changes})


def _final(sampler: Sampler, recipe: Recipe) -> torch.Tensor:
    return list(sampler.run(recipe))[-1].latent


@pytest.fixture(scope="module")
def xl_sampler(tiny_xl_model_dir):
    return Sampler(load_model(str(tiny_xl_model_dir), device="cpu"))


def test_the_mix_is_the_weighted_mean_of_encode_text(tiny_sampler):
    model = tiny_sampler.model
    fox, _ = encode_text(model, FOX)
    owl, _ = encode_text(model, OWL)
    recipe = _recipe("fox × owl", prompt_mix=((FOX, 1.0), (OWL, 3.0)), negative_prompt="blur")
    conditioning = tiny_sampler._conditioning(recipe)
    negative, positive = conditioning.embeddings
    assert torch.allclose(positive, 0.25 * fox[0] + 0.75 * owl[0], atol=1e-6)
    assert not torch.allclose(positive, fox[0]) and not torch.allclose(positive, owl[0])
    assert torch.equal(negative, encode_text(model, "blur")[0][0])  # the negative is not mixed
    assert torch.equal(encode_mix(model, recipe.prompt_weights())[0][0], positive)


def test_sdxl_mixes_the_pooled_embedding_with_the_same_weights(xl_sampler):
    model = xl_sampler.model
    (fox, fox_pooled), (owl, owl_pooled) = encode_text(model, FOX), encode_text(model, OWL)
    recipe = _recipe("fox × owl", prompt_mix=((FOX, 2.0), (OWL, 2.0)))
    conditioning = xl_sampler._conditioning(recipe)
    assert torch.allclose(conditioning.embeddings[1], 0.5 * fox[0] + 0.5 * owl[0], atol=1e-6)
    pooled = conditioning.added["text_embeds"][1]
    assert torch.allclose(pooled, 0.5 * fox_pooled[0] + 0.5 * owl_pooled[0], atol=1e-6)
    assert not torch.allclose(pooled, fox_pooled[0])


def test_one_prompt_or_identical_prompts_are_the_plain_prompt_bit_for_bit(tiny_sampler, xl_sampler):
    for sampler in (tiny_sampler, xl_sampler):
        plain = _recipe(FOX)
        for mix in (((FOX, 0.3),), ((FOX, 1.0), (FOX, 2.0))):
            mixed = plain.with_changes(prompt="label only", prompt_mix=mix)
            a, b = sampler._conditioning(plain), sampler._conditioning(mixed)
            assert torch.equal(a.embeddings, b.embeddings)
            if a.added is not None:
                assert torch.equal(a.added["text_embeds"], b.added["text_embeds"])
    mixed = _recipe("label only", prompt_mix=((FOX, 1.0), (FOX, 1.0)))
    assert torch.equal(_final(tiny_sampler, mixed), _final(tiny_sampler, _recipe(FOX)))


def test_breeding_mixes_differing_prompts_and_can_keep_the_first():
    fox, owl = _recipe(FOX), _recipe(OWL, seed=9)
    (child,) = brood_of([fox, owl], 1, 0.2, brood_seed=5)
    assert child.prompt_mix == ((FOX, 1.0), (OWL, 1.0)) and child.prompt == f"{FOX} × {OWL}"
    (kept,) = brood_of([fox, owl], 1, 0.2, brood_seed=5, mix_prompts=False)
    assert kept.prompt == FOX and kept.prompt_mix == ()
    assert kept.parents == child.parents and kept.mutation_seed == child.mutation_seed
    (same,) = brood_of([fox, fox.with_changes(seed=9)], 1, 0.2, brood_seed=5)
    assert same.prompt == FOX and same.prompt_mix == ()  # like prompts: no mix recorded
    # a grandchild weighs its mixed parent's prompts by their shares: linear in the prompts
    (grandchild,) = brood_of([child, _recipe(FROG, seed=4)], 1, 0.2, brood_seed=6)
    assert dict(grandchild.prompt_weights()) == {FOX: 0.25, OWL: 0.25, FROG: 0.5}
    assert mixed_prompts([(child, 1.0), (child, 1.0)]) == ((FOX, 1.0), (OWL, 1.0))


def test_a_cross_at_a_step_runs_on_the_mix_by_its_weights(tiny_sampler):
    fox, owl = _recipe(FOX, steps=6), _recipe(OWL, seed=9, steps=6)
    child = cross_at(fox, owl, 2, dose=0.3, seed=5, weights=(1.0, 3.0))
    assert dict(child.prompt_weights()) == {FOX: 0.25, OWL: 0.75}
    alone = cross_at(fox, owl, 2, dose=0.3, seed=5, weights=(1.0, 3.0), mix_prompts=False)
    assert alone.prompt == FOX and alone.prompt_mix == ()
    steps, image = tiny_sampler.render(Recipe.from_json(child.to_json()))
    again, image_again = tiny_sampler.render(child)
    assert torch.equal(steps[-1].latent, again[-1].latent) and (image == image_again).all()
    assert not torch.equal(steps[-1].latent, _final(tiny_sampler, alone))


def test_a_mixed_child_reproduces_from_its_json_and_differs_from_either_prompt(tiny_sampler):
    (child,) = brood_of([_recipe(FOX), _recipe(OWL, seed=9)], 1, 0.2, brood_seed=5)
    again = Recipe.from_json(child.to_json())
    assert again == child
    steps, image = tiny_sampler.render(again)
    _, image_again = tiny_sampler.render(child)
    assert (image == image_again).all()
    for prompt in (FOX, OWL, child.prompt):
        plain = child.with_changes(prompt=prompt, prompt_mix=())
        assert not torch.equal(_final(tiny_sampler, plain), steps[-1].latent), prompt


def test_batched_mixed_children_equal_their_lone_renders(tiny_sampler):
    parents = [_recipe(FOX), _recipe(OWL, seed=9)]
    children = with_batches(
        brood_of(parents, 2, 0.3, brood_seed=5) + brood_of(parents, 1, 0.3, 7, False), 3
    )
    assert [bool(c.prompt_mix) for c in children] == [True, True, False]
    finals: dict[int, torch.Tensor] = {}
    for position, step in tiny_sampler.run_batch(children):
        finals[position] = step.latent
    for position, child in enumerate(children):
        assert child.batch == 3
        lone = Recipe.from_json(child.to_json())
        assert torch.equal(_final(tiny_sampler, lone), finals[position]), position


def test_the_mix_round_trips_and_old_recipes_keep_their_text():
    recipe = _recipe(f"{FOX} × {OWL}", prompt_mix=((FOX, 1.0), (OWL, 0.5)))
    data = json.loads(recipe.to_json())
    assert data["prompt_mix"] == [[FOX, 1.0], [OWL, 0.5]]
    assert Recipe.from_json(recipe.to_json()) == recipe
    plain = _recipe(FOX)
    assert "prompt_mix" not in plain.to_json()
    assert plain.to_json() == json.dumps(
        {
            "prompt": FOX,
            "negative_prompt": "",
            "seed": 3,
            "steps": 4,
            "guidance": 7.0,
            "sampler": "Euler a",
            "width": 16,
            "height": 16,
            "model": "bundled",
            "variation_seed": None,
            "variation_strength": 0.0,
            "renoise_seed": None,
            "renoise_strength": 0.0,
            "model_config": "",
        },
        sort_keys=True,
    )


def test_a1111_text_notes_the_mix_and_reading_it_back_says_the_json_reproduces_it():
    recipe = _recipe(f"{FOX} × {OWL}", prompt_mix=((FOX, 1.0), (OWL, 0.5)))
    text = recipe.to_parameters()
    assert 'Prompt mix: "2 prompts, weights 1:0.5"' in text
    notes: list[str] = []
    read = Recipe.from_parameters(text, notes)
    assert read.prompt == recipe.prompt and read.seed == 3 and read.prompt_mix == ()
    assert any("mixes prompts" in n and "Noise Studio recipe does" in n for n in notes)


@pytest.mark.parametrize(
    ("mix", "words"),
    [
        (((FOX, 0.0),), "weight must be a number above 0"),
        (((FOX, float("nan")),), "weight must be a number above 0"),
        ((("x" * 20_001, 1.0),), "longer than"),
    ],
)
def test_a_bad_mix_is_refused_in_one_sentence(mix, words):
    with pytest.raises(RecipeError, match=words):
        _recipe(prompt_mix=mix).validate()
    with pytest.raises(RecipeError, match="prompt_mix"):
        Recipe.from_dict({"prompt": FOX, "prompt_mix": [["a", "heavy"]]})


def test_a_branch_that_keeps_the_mixs_name_keeps_the_mix_and_an_edit_drops_it():
    (child,) = brood_of([_recipe(FOX), _recipe(OWL, seed=9)], 1, 0.2, brood_seed=5)
    panel = Recipe(child.prompt, seed=3, steps=4, width=16, height=16, guidance=5.0)
    assert panel.branched_from(child, 1).prompt_mix == child.prompt_mix
    edited = panel.with_changes(prompt=FROG).branched_from(child, 1)
    assert edited.prompt_mix == () and edited.prompt_weights() == ((FROG, 1.0),)


def test_a_prompt_axis_replaces_words_in_the_mixed_prompts_too():
    from studio.engine.grid import Axis, grid_cells

    (child,) = brood_of([_recipe(FOX), _recipe(OWL, seed=9)], 1, 0.2, brood_seed=5)
    cells = grid_cells(child, [3], [Axis.parse("prompt=red,green")])
    assert [c.recipe.prompt_mix[0][0] for c in cells] == [FOX, "a green fox"]
