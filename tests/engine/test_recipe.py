from __future__ import annotations

import math

import pytest

from studio.engine.recipe import MAX_SEED, Recipe, RecipeError

A1111_TEXT = (
    "a red car, mountain road, sunset\n"
    "Negative prompt: blurry, low quality\n"
    "Steps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7.5, Seed: 965400086, "
    "Size: 512x768, Model hash: 45dee52b, Model: sd15, Variation seed: 42, Variation seed strength: 0.25, "
    "Version: v1.10.1"
)


def test_json_round_trip_keeps_every_field():
    recipe = Recipe(
        "a boat", "fog", 12345678901234567890, 30, 6.5, "UniPC", 96, 64, "bundled", 7, 0.3, 9, 0.4
    )
    assert Recipe.from_json(recipe.to_json()) == recipe


def test_parameters_round_trip():
    recipe = Recipe(
        "a red car,\non a road: at dusk",
        "ugly",
        5,
        25,
        4.0,
        "DPM++ 2M Karras",
        64,
        128,
        variation_seed=3,
        variation_strength=0.5,
    )
    text = recipe.to_parameters(model_hash="abc123")
    assert "Schedule type: Karras" in text and "Model hash: abc123" in text
    assert Recipe.from_parameters(text) == recipe


def test_parses_a1111_text():
    recipe = Recipe.from_parameters(A1111_TEXT)
    assert recipe.prompt == "a red car, mountain road, sunset"
    assert recipe.negative_prompt == "blurry, low quality"
    assert (recipe.steps, recipe.sampler, recipe.guidance, recipe.seed) == (
        20,
        "DPM++ 2M Karras",
        7.5,
        965400086,
    )
    assert (recipe.width, recipe.height, recipe.model) == (512, 768, "sd15")
    assert (recipe.variation_seed, recipe.variation_strength) == (42, 0.25)


def test_values_with_commas_are_quoted_as_json():
    text = Recipe("x", model="my, model: v2").to_parameters()
    assert 'Model: "my, model: v2"' in text
    assert Recipe.from_parameters(text).model == "my, model: v2"


def test_text_without_parameter_line_is_all_prompt():
    assert (
        Recipe.from_parameters("just a prompt\nsecond line").prompt == "just a prompt\nsecond line"
    )


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"width": 65}, "multiple of 8"),
        ({"height": 8}, "height"),
        ({"steps": 0}, "Steps"),
        ({"steps": 10_000}, "Steps"),
        ({"guidance": -1.0}, "CFG"),
        ({"guidance": math.nan}, "CFG"),
        ({"seed": MAX_SEED + 1}, "seed"),
        ({"seed": -1}, "seed"),
        ({"sampler": "Warp drive"}, "Unknown sampler"),
        ({"variation_strength": 2.0}, "variation strength"),
    ],
)
def test_validate_gives_one_clear_sentence(changes, words):
    with pytest.raises(RecipeError, match=words):
        Recipe("x").with_changes(**changes).validate()


def test_validate_accepts_a_good_recipe():
    assert Recipe("x", width=64, height=128, seed=MAX_SEED).validate() is not None


def test_bad_json_is_a_recipe_error():
    with pytest.raises(RecipeError):
        Recipe.from_json("{not json")
    with pytest.raises(RecipeError):
        Recipe.from_json('{"prompt": "x", "steps": "many"}')
