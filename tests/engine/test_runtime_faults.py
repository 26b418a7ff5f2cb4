"""Runtime faults in the engine (issue 7, cases 8-10, 12, 13).

Faults are injected into the tiny model's UNet forward at a chosen step; every
test checks that the steps before the fault stay valid and that the next run
is exactly a clean run.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Any

import pytest
import torch

from studio.engine.errors import DecodeError, NonFiniteError, OutOfMemoryError
from studio.engine.recipe import MAX_SEED, Recipe, RecipeError
from studio.engine.sampler import OOM_ADVICE, Sampler

STEPS = 5


def recipe_for(sampler: str = "Euler a", **changes: Any) -> Recipe:
    base = Recipe(
        "a red car",
        "blurry",
        seed=5,
        steps=STEPS,
        guidance=5.0,
        sampler=sampler,
        width=16,
        height=16,
    )
    return base.with_changes(**changes)


@pytest.fixture
def sampler(tiny_model) -> Sampler:
    return Sampler(tiny_model)


@pytest.fixture(scope="module")
def clean_runs(tiny_model) -> dict[str, list[torch.Tensor]]:
    """Latents of uninterrupted runs, per sampler name, computed on first use."""
    cache: dict[str, list[torch.Tensor]] = {}

    class Runs(dict):
        def __missing__(self, name: str) -> list[torch.Tensor]:
            cache[name] = [s.latent.clone() for s in Sampler(tiny_model).run(recipe_for(name))]
            return cache[name]

    return Runs()


class UnetFault:
    """Wraps the UNet forward; on the chosen call, ``fault(output)`` replaces the result."""

    def __init__(self, model, monkeypatch, at_call: int, fault: Callable[[Any], Any]) -> None:
        self.calls = 0
        self._original = model.unet.forward
        self._at_call = at_call
        self._fault = fault
        monkeypatch.setattr(model.unet, "forward", self)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        index = self.calls
        self.calls += 1
        if index == self._at_call:
            return self._fault(lambda: self._original(*args, **kwargs))
        return self._original(*args, **kwargs)


def collect(iterator, into: list) -> None:
    for step in iterator:
        into.append(step)


def assert_same_as_clean(sampler: Sampler, recipe: Recipe, reference: list[torch.Tensor]) -> None:
    latents = [s.latent for s in sampler.run(recipe)]
    assert len(latents) == len(reference)
    assert all(torch.equal(a, b) for a, b in zip(latents, reference, strict=True))


# ---- case 8: NaN during sampling --------------------------------------------------


def _nan_everywhere(run):
    output = run()
    output.sample.fill_(math.nan)
    return output


def _one_nan(run):
    output = run()
    output.sample[0, 1, 2, 3] = math.nan
    return output


def _one_inf(run):
    output = run()
    output.sample[0, 0, 0, 0] = math.inf
    return output


@pytest.mark.parametrize(
    ("name", "fault"),
    [
        ("Euler a", _nan_everywhere),
        ("DPM++ 2M", _one_nan),
        ("DDIM", _one_inf),
        ("UniPC", _one_nan),
        ("DPM++ 2M SDE", _nan_everywhere),
    ],
)
def test_a_nan_is_reported_with_its_step(sampler, monkeypatch, clean_runs, name, fault):
    k = 2
    recipe = recipe_for(name)
    reference = clean_runs[name]
    UnetFault(sampler.model, monkeypatch, k, fault)
    steps: list = []
    with pytest.raises(NonFiniteError) as error:
        collect(sampler.run(recipe), steps)
    assert error.value.step_index == k
    assert f"step {k + 1} of {STEPS}" in str(error.value)
    assert [s.index for s in steps] == list(range(k))
    assert all(torch.equal(s.latent, reference[s.index]) for s in steps)
    monkeypatch.undo()
    assert_same_as_clean(sampler, recipe, reference)


def test_a_nan_never_becomes_a_finished_image(sampler, monkeypatch):
    UnetFault(sampler.model, monkeypatch, STEPS - 1, _nan_everywhere)
    with pytest.raises(NonFiniteError):
        sampler.render(recipe_for())


def test_decoding_a_nan_latent_is_refused(sampler):
    latent = torch.zeros(sampler.latent_shape(recipe_for()))
    latent[0, 0, 0, 0] = math.nan
    with pytest.raises(DecodeError, match="NaN"):
        sampler.decode(latent)


def test_the_cli_writes_no_image_when_a_nan_appears(tiny_model, monkeypatch, tmp_path, capsys):
    from studio import cli
    from studio.engine import models

    monkeypatch.setattr(models, "load_model", lambda *args, **kwargs: tiny_model)
    UnetFault(tiny_model, monkeypatch, 1, _nan_everywhere)
    out = tmp_path / "image.png"
    code = cli.main(["--prompt", "a red car", "--steps", "3", "--size", "16x16", "--out", str(out)])
    error = capsys.readouterr().err
    assert code != 0
    assert not out.exists() and not list(tmp_path.iterdir())
    assert "step 2 of 3" in error and "Traceback" not in error
    assert error.count("\n") == 1


# ---- case 9: out of memory at step k -------------------------------------------------


def _cuda_oom(run):
    raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")


def _runtime_oom(run):
    raise RuntimeError("CUDA error: out of memory")


def _real_cpu_oom(run):
    torch.empty(2**50, dtype=torch.uint8)  # more than any machine has: the allocator itself fails
    return run()


@pytest.mark.parametrize("fault", [_cuda_oom, _runtime_oom, _real_cpu_oom])
@pytest.mark.parametrize("k", [0, 3])
def test_out_of_memory_fails_with_advice_and_keeps_earlier_steps(
    sampler, monkeypatch, clean_runs, fault, k
):
    recipe = recipe_for("DPM++ 2M")
    reference = clean_runs["DPM++ 2M"]
    UnetFault(sampler.model, monkeypatch, k, fault)
    steps: list = []
    with pytest.raises(OutOfMemoryError) as error:
        collect(sampler.run(recipe), steps)
    message = str(error.value)
    assert error.value.step_index == k
    assert f"step {k + 1} of {STEPS}" in message
    assert OOM_ADVICE in message and "smaller size" in message and "fewer steps" in message
    assert "\n" not in message
    assert [s.index for s in steps] == list(range(k))
    monkeypatch.undo()
    if steps:  # the kept steps are real checkpoints: resuming from the last one finishes the image
        resumed = [s.latent for s in sampler.run(recipe, start=steps[-1].checkpoint)]
        assert torch.equal(resumed[-1], reference[-1])
    assert_same_as_clean(sampler, recipe, reference)


def test_out_of_memory_in_the_text_encoder_gets_advice(sampler, monkeypatch, clean_runs):
    def oom(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory.")

    recipe = recipe_for(prompt="a prompt not encoded before")
    monkeypatch.setattr(sampler.model.text_encoder, "forward", oom)
    with pytest.raises(OutOfMemoryError) as error:
        list(sampler.run(recipe))
    assert OOM_ADVICE in str(error.value)
    monkeypatch.undo()
    assert len(list(sampler.run(recipe))) == STEPS


def test_out_of_memory_while_decoding_gets_advice(sampler, monkeypatch):
    def oom(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory.")

    latent = torch.randn(sampler.latent_shape(recipe_for()))
    monkeypatch.setattr(sampler.model.vae, "decode", oom)
    with pytest.raises(OutOfMemoryError) as error:
        sampler.decode(latent)
    assert OOM_ADVICE in str(error.value)
    monkeypatch.undo()
    assert sampler.decode(latent).shape == (16, 16, 3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_real_cuda_oom_releases_its_memory_and_the_next_run_works(tiny_model_dir, monkeypatch):
    import gc

    from studio.engine.models import load_model

    sampler = Sampler(load_model(str(tiny_model_dir), device="cuda"))
    recipe = recipe_for("Euler")
    clean = [s.latent.float().cpu() for s in sampler.run(recipe)]
    torch.cuda.synchronize()
    baseline = torch.cuda.memory_allocated()

    def exhaust(run):
        held = torch.empty(
            256 * 2**20, dtype=torch.uint8, device="cuda"
        )  # in use when the OOM hits
        impossible = torch.cuda.get_device_properties(0).total_memory * 2
        torch.empty(impossible, dtype=torch.uint8, device="cuda")
        return held

    UnetFault(sampler.model, monkeypatch, 2, exhaust)
    steps: list = []
    with pytest.raises(OutOfMemoryError, match="step 3") as error:
        collect(sampler.run(recipe), steps)
    assert len(steps) == 2
    monkeypatch.undo()
    del error, steps
    gc.collect()
    torch.cuda.synchronize()
    assert torch.cuda.memory_allocated() <= baseline + 2**20
    again = [s.latent.float().cpu() for s in sampler.run(recipe)]
    assert all(torch.allclose(a, b, atol=1e-3) for a, b in zip(again, clean, strict=True))


# ---- case 10: cancel ----------------------------------------------------------------


def test_cancel_at_step_k_stops_before_the_next_step(sampler, monkeypatch, clean_runs):
    k = 2
    recipe = recipe_for()
    reference = clean_runs["Euler a"]
    counter = UnetFault(sampler.model, monkeypatch, -1, lambda run: run())
    cancel = threading.Event()
    steps = []
    for step in sampler.run(recipe, cancel=cancel):
        steps.append(step)
        if step.index == k:
            cancel.set()
            cancel.set()  # a second cancel is harmless
    assert [s.index for s in steps] == list(range(k + 1))
    assert counter.calls == k + 1
    assert all(torch.equal(s.latent, reference[s.index]) for s in steps)
    monkeypatch.undo()
    # continuing the cancelled run from its last step finishes the very same image
    resumed = list(sampler.run(recipe, start=steps[-1].checkpoint, cancel=threading.Event()))
    assert torch.equal(resumed[-1].latent, reference[-1])


def test_cancel_during_a_step_abandons_that_step_and_keeps_the_earlier_ones(
    sampler, monkeypatch, clean_runs
):
    cancel = threading.Event()

    def cancel_then_run(run):
        cancel.set()
        return run()

    UnetFault(sampler.model, monkeypatch, 1, cancel_then_run)
    steps = list(sampler.run(recipe_for(), cancel=cancel))
    assert [s.index for s in steps] == [0]  # the UNet's blocks stop the second evaluation
    assert torch.equal(steps[-1].latent, clean_runs["Euler a"][0])


def test_cancel_before_start_runs_nothing(sampler, monkeypatch):
    counter = UnetFault(sampler.model, monkeypatch, -1, lambda run: run())
    cancel = threading.Event()
    cancel.set()
    assert list(sampler.run(recipe_for(), cancel=cancel)) == []
    assert counter.calls == 0
    steps, image = sampler.render(recipe_for(), cancel=cancel)
    assert steps == [] and image is None


def test_a_new_run_right_after_a_cancel_is_clean(sampler, clean_runs):
    cancel = threading.Event()
    abandoned = sampler.run(recipe_for(), cancel=cancel)
    next(abandoned)
    cancel.set()
    assert list(abandoned) == []
    assert_same_as_clean(sampler, recipe_for(), clean_runs["Euler a"])


def test_an_abandoned_generator_does_not_disturb_the_next_run(sampler, clean_runs):
    """The worker may drop a run mid-way (e.g. on quit) without exhausting it."""
    abandoned = sampler.run(recipe_for())
    next(abandoned)
    abandoned.close()
    assert_same_as_clean(sampler, recipe_for(), clean_runs["Euler a"])


# ---- case 12: a prompt longer than the encoder takes ------------------------------------


def test_a_300_token_prompt_reports_what_was_dropped(sampler):
    prompt = " ".join(["a"] * 300)
    info = sampler.prompt_info(prompt)
    assert info.tokens == 300
    assert info.limit == 75
    assert info.truncated and info.dropped_tokens == 225
    assert info.dropped_text.split() == ["a"] * 225
    assert sampler.prompt_info("a red car").dropped_tokens == 0


def test_the_encoder_receives_exactly_the_reported_text(sampler):
    long = recipe_for(prompt=" ".join(["a"] * 300), steps=1)
    info = sampler.prompt_info(long.prompt)
    received = list(sampler.run(long))[-1].latent
    as_reported = list(sampler.run(long.with_changes(prompt=info.encoded_text)))[-1].latent
    one_fewer = list(sampler.run(long.with_changes(prompt=" ".join(["a"] * 74))))[-1].latent
    assert torch.equal(received, as_reported)
    assert not torch.equal(received, one_fewer)


# ---- case 13: validation before anything reaches the engine -------------------------------


INVALID = {
    "width too small": ({"width": 8}, "width"),
    "width too large": ({"width": 100_000}, "width"),
    "height not a multiple": ({"height": 60}, "multiple of 8"),
    "steps zero": ({"steps": 0}, "Steps"),
    "steps ten thousand": ({"steps": 10_000}, "Steps"),
    "cfg negative": ({"guidance": -1.0}, "CFG"),
    "cfg nan": ({"guidance": math.nan}, "CFG"),
    "cfg infinite": ({"guidance": math.inf}, "CFG"),
    "seed beyond 64 bits": ({"seed": MAX_SEED + 1}, "seed"),
    "seed negative": ({"seed": -1}, "seed"),
    "variation seed beyond 64 bits": (
        {"variation_seed": 2**70, "variation_strength": 0.5},
        "variation seed",
    ),
    "unknown sampler": ({"sampler": "Euler z"}, "sampler"),
}


@pytest.mark.parametrize("case", list(INVALID))
def test_invalid_recipes_get_one_clear_sentence(case):
    changes, expected = INVALID[case]
    with pytest.raises(RecipeError) as error:
        recipe_for(**changes).validate(size_factor=8)
    message = str(error.value)
    assert expected in message
    assert "\n" not in message and message.endswith(".")


@pytest.mark.parametrize("case", list(INVALID))
def test_the_sampler_refuses_invalid_recipes_before_any_work(sampler, monkeypatch, case):
    changes, _ = INVALID[case]
    if "multiple" in case:
        changes = {"height": 17}  # the tiny model's factor is 2
    counter = UnetFault(sampler.model, monkeypatch, -1, lambda run: run())
    with pytest.raises(RecipeError):
        next(sampler.run(recipe_for(**changes)))
    assert counter.calls == 0
