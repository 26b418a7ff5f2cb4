"""Recipe text from outside: parse time, prompt caps and the parameter-line ambiguity."""

from __future__ import annotations

import json
import time

import pytest

from studio.engine.recipe import MAX_PARAMETER_LINE_CHARS, MAX_PROMPT_CHARS, Recipe

A1111_LINE = "Steps: 12, Sampler: Euler a, CFG scale: 6, Seed: 99, Size: 64x64"


def _best_time(text: str, repeats: int = 7) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        Recipe.from_parameters(text)
        best = min(best, time.perf_counter() - started)
    return best


@pytest.mark.parametrize(
    "unit",
    ["a", "a ", "ab(", "x: ", 'k: "\\', "word, "],
    ids=["letters", "words", "key-chars", "colons", "open-quotes", "commas"],
)
def test_parsing_the_last_line_is_linear_in_its_length(unit):
    # A quadratic parser takes 64 times as long for 8 times the text; a linear one about 8.
    # The best of several runs keeps a busy machine from deciding the ratio.
    short, long = 1_000, 8_000
    assert long <= MAX_PARAMETER_LINE_CHARS
    line = lambda n: "a prompt\n" + (unit * n)[:n]  # noqa: E731
    _best_time(line(short), repeats=2)  # warm up
    ratio = _best_time(line(long)) / _best_time(line(short))
    assert ratio < 24, f"8x the text took {ratio:.0f}x the time"


def test_a_last_line_longer_than_the_cap_stays_prompt_text():
    line = A1111_LINE + ", Junk: " + "a" * MAX_PARAMETER_LINE_CHARS
    recipe = Recipe.from_parameters("a fox\n" + line)
    assert recipe.steps == Recipe.__dataclass_fields__["steps"].default
    assert recipe.prompt.startswith("a fox\nSteps: 12")
    assert Recipe.from_parameters("a fox\n" + A1111_LINE).steps == 12  # under the cap: read


def test_a_one_megabyte_one_word_prompt_is_cut_with_a_warning():
    notes: list[str] = []
    text = json.dumps({"prompt": "a" * 1_000_000, "negative_prompt": "b" * 30_000, "seed": 7})
    recipe = Recipe.from_json(text, notes)
    assert recipe.prompt == "a" * MAX_PROMPT_CHARS and recipe.seed == 7
    assert recipe.negative_prompt == "b" * MAX_PROMPT_CHARS
    assert len(notes) == 2 and "1,000,000" in notes[0] and "negative prompt" in notes[1]
    recipe.validate()  # what was kept is a recipe the engine runs


def test_a_fifty_megabyte_prompt_in_a_recipe_json_is_cut_with_a_warning():
    notes: list[str] = []
    recipe = Recipe.from_json(json.dumps({"prompt": "c" * 50_000_000}), notes)
    assert len(recipe.prompt) == MAX_PROMPT_CHARS
    (note,) = notes
    assert "50,000,000" in note and "\n" not in note
    assert len(Recipe.from_dict({"prompt": "d" * 50_000_000}).prompt) == MAX_PROMPT_CHARS


def test_a_long_prompt_in_parameters_text_is_cut_with_a_warning():
    notes: list[str] = []
    recipe = Recipe.from_parameters("e" * 40_000 + "\n" + A1111_LINE, notes)
    assert len(recipe.prompt) == MAX_PROMPT_CHARS and recipe.steps == 12
    assert len(notes) == 1


@pytest.mark.parametrize(
    "prompt",
    [
        "masterpiece: 1, style: oil painting, mood: calm",
        "subject: a fox, light: golden hour, lens: 85mm, film: portra",
        "Steps: many, Sampler: none here, CFG scale: 3",  # two of the three A1111 keys
    ],
)
def test_a_one_line_prompt_of_key_value_pairs_stays_the_prompt(prompt):
    recipe = Recipe.from_parameters(prompt)
    assert recipe.prompt == prompt
    assert recipe.steps == Recipe.__dataclass_fields__["steps"].default


def test_a_lone_a1111_parameter_line_is_still_read_as_parameters():
    recipe = Recipe.from_parameters(A1111_LINE)
    assert recipe.prompt == "" and recipe.steps == 12 and recipe.seed == 99
