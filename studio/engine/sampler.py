"""The denoising loop as a generator of Steps, resumable from any Checkpoint.

Exactness contract (checked bit for bit on CPU by the tests):

- the same recipe on the same device and dtype gives the same latents;
- ``run(recipe, start=checkpoint_k)`` with the recipe that produced the
  checkpoint yields exactly the steps k+1 … N-1 of the uninterrupted run, so the
  final latent is identical. The checkpoint carries the scheduler's multistep
  history and counters; ancestral and SDE noise is derived from (seed, step).

Threading: a Sampler is used by one thread at a time (the worker that owns
torch). ``cancel`` is an Event checked before every step and, through forward
pre-hooks, before every block of the text encoder, the UNet and the VAE
decoder, so a cancel takes effect within one block even inside the prompt
encoding, a step of a huge image or the final decode; the Steps already
yielded stay valid.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from studio.engine import batching, crossing, img2img, noise, schedulers
from studio.engine.checkpoint import Checkpoint
from studio.engine.errors import CheckpointError, NonFiniteError, OutOfMemoryError
from studio.engine.memory_saving import tiling_when_short
from studio.engine.models import LoadedModel
from studio.engine.preview import (
    decode,
    decode_batch,
    linear_preview,
    preview_image,
    tiny_previews,
)
from studio.engine.recipe import Recipe, RecipeError

OOM_ADVICE = "Try a smaller size, fewer steps or a smaller model."
PREVIEW_BATCH = 16
"""Latents the tiny decoder takes at once in :meth:`Sampler.tiny_previews`."""
DECODE_BATCH = 8
"""Latents the full VAE decode takes at once in :meth:`Sampler.decode_many` at most."""
WORD_LEVEL_VOCAB = 8192
"""A vocabulary this small holds whole words (plus the 512 byte symbols), not subwords."""


@dataclass(frozen=True)
class PromptInfo:
    """What the text encoder actually receives for a prompt."""

    tokens: int
    limit: int
    encoded_text: str
    dropped_text: str
    unknown_words: tuple[str, ...] = ()

    @property
    def dropped_tokens(self) -> int:
        return max(0, self.tokens - self.limit)

    @property
    def truncated(self) -> bool:
        return self.tokens > self.limit


@dataclass(frozen=True, eq=False)
class Step:
    """One completed denoising step. ``index`` is 0-based; the UI shows "step index+1 of total"."""

    index: int
    total: int
    timestep: float
    sigma: float
    latent: torch.Tensor
    x0_pred: torch.Tensor
    preview_x0: np.ndarray
    preview_xt: np.ndarray
    checkpoint: Checkpoint
    tiny_preview_skipped: bool = False
    """True when the frame gate gave this step the linear map although the model has a
    tiny decoder: :meth:`Sampler.tiny_previews` of ``x0_pred`` makes the better one later."""

    @property
    def is_last(self) -> bool:
        return self.index == self.total - 1


@dataclass(frozen=True, eq=False)
class _Conditioning:
    embeddings: torch.Tensor  # (2, T, D) negative then positive, or (1, T, D) when guidance is 1
    added: dict[str, torch.Tensor] | None


class Sampler:
    """Runs recipes on one loaded model. See the module docstring for the contracts."""

    def __init__(self, model: LoadedModel) -> None:
        self.model = model
        self._conditioning_cache: dict[tuple[Any, ...], _Conditioning] = {}
        self.frame_gate: Callable[[], bool] | None = None
        """Latest wins for the costly preview: when set, a step's x0-hat gets the tiny
        decoder only if ``frame_gate()`` says a frame is wanted (the last step always
        does); other steps keep the linear map. None: every step gets the best preview."""

    def _preview_x0(self, x0_pred: torch.Tensor, last: bool) -> tuple[np.ndarray, bool]:
        """The step's x0-hat preview, and whether the tiny decoder was skipped for it."""
        model = self.model
        gate = self.frame_gate
        if gate is None or last or getattr(model, "preview_decoder", None) is None or gate():
            return preview_image(model, x0_pred), False
        return linear_preview(x0_pred, model.preview_factors, model.preview_bias), True

    def tiny_previews(self, latents: Sequence[torch.Tensor]) -> list[np.ndarray]:
        """The tiny decoder's previews of (1, C, h, w) x0-hat latents, decoded in batches of
        ``PREVIEW_BATCH`` (the images a step's own preview would have been, up to float
        rounding); the linear map's for a model without a tiny decoder."""
        model = self.model
        decoder = getattr(model, "preview_decoder", None)
        if decoder is None:
            return [preview_image(model, latent) for latent in latents]
        images: list[np.ndarray] = []
        for start in range(0, len(latents), PREVIEW_BATCH):
            batch = torch.cat([t.to(model.device) for t in latents[start : start + PREVIEW_BATCH]])
            images.extend(tiny_previews(decoder, batch))
        return images

    # ---- prompts ----------------------------------------------------------

    def prompt_info(self, text: str) -> PromptInfo:
        """Token count, the encoder's limit and what was dropped past it."""
        tokenizer = self.model.tokenizer
        ids = tokenizer(text, truncation=False, add_special_tokens=False).input_ids
        limit = int(tokenizer.model_max_length) - 2
        return PromptInfo(
            tokens=len(ids),
            limit=limit,
            encoded_text=tokenizer.decode(ids[:limit]),
            dropped_text=tokenizer.decode(ids[limit:]) if len(ids) > limit else "",
            unknown_words=self.unknown_words(text),
        )

    def unknown_words(self, text: str) -> tuple[str, ...]:
        """The words of ``text`` the model's vocabulary does not know, in order, once each.

        A word is unknown when the tokenizer maps it to its unknown token, or, for a
        word-level vocabulary (the bundled model's: every word it knows is one token),
        when it falls apart into pieces. A subword BPE vocabulary like CLIP's spells
        any word from pieces it was trained on, so it reports nothing here."""
        tokenizer = self.model.tokenizer
        word_level = len(tokenizer) <= WORD_LEVEL_VOCAB
        unknown_id = tokenizer.unk_token_id
        found: dict[str, None] = {}
        for word in re.findall(r"[^\W\d_]+", text):
            key = word.lower()
            if key in found:
                continue
            ids = tokenizer(word, add_special_tokens=False).input_ids
            if (unknown_id is not None and unknown_id in ids) or (word_level and len(ids) > 1):
                found[key] = None
        return tuple(found)

    def _encode_one(self, text: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        return encode_text(self.model, text)

    def _conditioning(self, recipe: Recipe) -> _Conditioning:
        guided = recipe.guidance != 1.0
        weights = recipe.prompt_weights()
        key = (weights, recipe.negative_prompt, guided, recipe.width, recipe.height)
        cached = self._conditioning_cache.get(key)
        if cached is not None:
            return cached
        positive, pooled = mix_encodings([(self._encode_one(text), w) for text, w in weights])
        added = None
        zeros_for_empty = getattr(self.model, "force_zeros_for_empty_prompt", False)
        if guided and not recipe.negative_prompt and zeros_for_empty:
            # SDXL's force_zeros_for_empty_prompt, as its diffusers pipeline: no negative
            # prompt is zero embeddings, not the encoding of "".
            negative = torch.zeros_like(positive)
            negative_pooled = torch.zeros_like(pooled) if pooled is not None else None
            embeddings = torch.cat([negative, positive])
        elif guided:
            negative, negative_pooled = self._encode_one(recipe.negative_prompt)
            embeddings = torch.cat([negative, positive])
        else:
            embeddings, negative_pooled = positive, None
        if self.model.is_xl:
            pooled_all = torch.cat([negative_pooled, pooled]) if guided else pooled
            size = [recipe.height, recipe.width, 0, 0, recipe.height, recipe.width]
            time_ids = torch.tensor(
                [size] * embeddings.shape[0], device=self.model.device, dtype=embeddings.dtype
            )
            added = {"text_embeds": pooled_all, "time_ids": time_ids}
        conditioning = _Conditioning(embeddings.to(self.model.dtype), added)
        if len(self._conditioning_cache) > 8:
            self._conditioning_cache.clear()
        self._conditioning_cache[key] = conditioning
        return conditioning

    # ---- the loop ---------------------------------------------------------

    def latent_shape(self, recipe: Recipe) -> tuple[int, int, int, int]:
        factor = self.model.size_factor
        return (1, self.model.latent_channels, recipe.height // factor, recipe.width // factor)

    def run(
        self,
        recipe: Recipe,
        start: Checkpoint | None = None,
        cancel: threading.Event | None = None,
        images: Sequence[np.ndarray] = (),
    ) -> Iterator[Step]:
        """Yield one Step per denoising step; from ``start`` on if given (see the module docstring).

        ``images`` holds the pixels the recipe (and its lineage) names by hash: init
        images and masks (see :mod:`studio.engine.img2img`). An image-to-image run
        yields its steps from ``img2img.start_index`` on."""
        model = self.model
        recipe.validate(model.size_factor)
        shape = self.latent_shape(recipe)
        scheduler = schedulers.build_scheduler(
            recipe.sampler, model.scheduler_config, recipe.steps, model.device
        )
        spec = schedulers.sampler_spec(recipe.sampler)
        levels = [
            schedulers.noise_levels(scheduler, recipe.sampler, i) for i in range(recipe.steps + 1)
        ]
        prediction = scheduler.config.get("prediction_type", "epsilon")
        try:
            with _stops_when(cancel, model.text_encoder, model.text_encoder_2):
                conditioning = self._conditioning(recipe)
        except _Cancelled:
            return
        except RuntimeError as exc:
            if not _is_out_of_memory(exc):
                raise
            _release_memory()
            raise OutOfMemoryError(
                f"Out of memory while encoding the prompt. {OOM_ADVICE}"
            ) from exc

        start_noise = _start_latent(recipe, shape)
        init = img2img.init_latents(model, recipe, images, start_noise)
        extra = img2img.inpainting_input(model, recipe, init, shape)
        if start is None and recipe.lineage:
            start = self._lineage_start(recipe, cancel, images)
            if start is None:
                return
        if start is None and recipe.cross is not None:
            crossed = self._cross_start(recipe, levels, cancel, images)
            if crossed is None:
                return
            # A fresh scheduler from the step after the cross: no parent's history.
            first = recipe.cross.step_index + 1
            if hasattr(scheduler, "set_begin_index"):
                scheduler.set_begin_index(first)
            latent = crossed.to(model.device)
        elif start is None:
            first, latent = _first_latent(
                recipe, scheduler, levels, start_noise, init, model.device
            )
        else:
            first, latent = _resumed_latent(recipe, scheduler, levels, start, shape, model.device)

        for index in range(first, recipe.steps):
            if cancel is not None and cancel.is_set():
                return
            timestep = scheduler.timesteps[index]
            try:
                with _stops_when(cancel, model.unet):
                    model_output, x0_pred = self._predict(
                        scheduler,
                        latent,
                        timestep,
                        conditioning,
                        recipe,
                        levels[index],
                        prediction,
                        extra,
                    )
                latent, x0_pred = _advance(
                    scheduler, spec, recipe, index, shape, model_output, timestep, latent,
                    x0_pred, init, levels[index + 1],
                )  # fmt: skip
            except _Cancelled:
                return
            except RuntimeError as exc:
                if not _is_out_of_memory(exc):
                    raise
                _release_memory()
                raise OutOfMemoryError(
                    f"Out of memory at step {index + 1} of {recipe.steps}. {OOM_ADVICE}", index
                ) from exc
            if not bool(torch.isfinite(latent).all()):
                raise NonFiniteError(
                    f"The image became invalid (NaN) at step {index + 1} of {recipe.steps}; "
                    "the steps before it are kept.",
                    index,
                )
            a, s = levels[index + 1]
            checkpoint = Checkpoint(recipe, index, latent, x0_pred, schedulers.snapshot(scheduler))
            preview_x0, skipped = self._preview_x0(x0_pred, last=index == recipe.steps - 1)
            yield Step(
                index=index,
                total=recipe.steps,
                timestep=float(timestep),
                sigma=s / a if a else float("inf"),
                latent=latent,
                x0_pred=x0_pred,
                preview_x0=preview_x0,
                preview_xt=linear_preview(
                    latent / (a * a + s * s) ** 0.5, model.preview_factors, model.preview_bias
                ),
                checkpoint=checkpoint,
                tiny_preview_skipped=skipped,
            )

    def _lineage_start(
        self, recipe: Recipe, cancel: threading.Event | None, images: Sequence[np.ndarray] = ()
    ) -> Checkpoint | None:
        """The checkpoint a branch recipe resumes from, made by replaying its lineage from noise.

        Each hand-over goes through the checkpoint's bytes, as the window's and the CLI's
        branches do (the x0 prediction is kept as float16 there), so the replay resumes
        from bit for bit the checkpoint they resumed from. None when cancelled."""
        checkpoint: Checkpoint | None = None
        for point in recipe.lineage:
            checkpoint = self._checkpoint_at(
                point.recipe, point.step_index, checkpoint, cancel, images
            )
            if checkpoint is None:
                return None
        return checkpoint

    def _cross_start(
        self,
        recipe: Recipe,
        levels: list[tuple[float, float]],
        cancel: threading.Event | None,
        images: Sequence[np.ndarray] = (),
    ) -> torch.Tensor | None:
        """The latent a crossed child starts from: both parents replayed (with their
        lineages) to the cross step, through their checkpoints' bytes as for a branch,
        and crossed there. None when cancelled."""
        point = recipe.cross
        reached = []
        for parent, _ in point.parents:
            checkpoint = self._checkpoint_at(parent, point.step_index, None, cancel, images)
            if checkpoint is None:
                return None
            reached.append(checkpoint)
        return crossing.cross_latents(*reached, point, levels[point.step_index + 1])

    def _checkpoint_at(
        self,
        recipe: Recipe,
        step_index: int,
        start: Checkpoint | None,
        cancel: threading.Event | None,
        images: Sequence[np.ndarray],
    ) -> Checkpoint | None:
        """``recipe``'s checkpoint after ``step_index``, read back from its bytes."""
        reached: Step | None = None
        for step in self.run(recipe, start=start, cancel=cancel, images=images):
            reached = step
            if step.index == step_index:
                break
        if reached is None or reached.index != step_index:
            return None
        return Checkpoint.from_bytes(reached.checkpoint.to_bytes())

    @torch.no_grad()
    def _predict(
        self,
        scheduler: Any,
        latent: torch.Tensor,
        timestep: torch.Tensor,
        conditioning: _Conditioning,
        recipe: Recipe,
        level: tuple[float, float],
        prediction: str,
        extra: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The guided model output for one step, and the x0 prediction it implies.

        ``extra``: a true inpainting UNet's mask and masked-image latent
        (``img2img.inpainting_input``), put after the scaled latent's channels."""
        if recipe.batch > 1:  # computed as in the batch that made the trajectory: same bits
            outputs = self._predict_batch(
                [scheduler], [latent], timestep, [conditioning], [recipe], level, prediction,
                [extra],
            )  # fmt: skip
            return outputs[0]
        batch = conditioning.embeddings.shape[0]
        model_input = torch.cat([latent] * batch) if batch > 1 else latent
        model_input = _with_extra(scheduler.scale_model_input(model_input, timestep), extra)
        output = self.model.unet(
            model_input.to(self.model.dtype),
            timestep,
            encoder_hidden_states=conditioning.embeddings,
            added_cond_kwargs=conditioning.added,
        ).sample.to(torch.float32)
        if batch > 1:
            unconditional, conditional = output.chunk(2)
            output = unconditional + recipe.guidance * (conditional - unconditional)
        return output, _x0_from_output(latent, output, level, prediction)

    @torch.no_grad()
    def _predict_batch(
        self,
        schedulers_: list[Any],
        latents: list[torch.Tensor],
        timestep: torch.Tensor,
        conditionings: list[_Conditioning],
        recipes: list[Recipe],
        level: tuple[float, float],
        prediction: str,
        extras: Sequence[torch.Tensor | None] | None = None,
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """One UNet call for several recipes, padded to their ``batch`` with copies of the
        last recipe's rows: each recipe's output depends on the batch's shape, never on
        its neighbours, so a lone run padded the same way gives the same bits."""
        inputs, embeddings, added, rows = [], [], [], []
        extras = extras if extras is not None else [None] * len(latents)
        for scheduler, latent, conditioning, extra in zip(
            schedulers_, latents, conditionings, extras, strict=True
        ):
            count = conditioning.embeddings.shape[0]
            rows.append(count)
            scaled = scheduler.scale_model_input(torch.cat([latent] * count), timestep)
            inputs.append(_with_extra(scaled, extra))
            embeddings.append(conditioning.embeddings)
            added.append(conditioning.added)
        for _ in range(recipes[0].batch - len(recipes)):
            inputs.append(inputs[-1])
            embeddings.append(embeddings[-1])
            added.append(added[-1])
        extra = None
        if added[0] is not None:
            extra = {key: torch.cat([a[key] for a in added]) for key in added[0]}
        output = self.model.unet(
            torch.cat(inputs).to(self.model.dtype),
            timestep,
            encoder_hidden_states=torch.cat(embeddings),
            added_cond_kwargs=extra,
        ).sample.to(torch.float32)
        results = []
        offset = 0
        for latent, recipe, count in zip(latents, recipes, rows, strict=True):
            part = output[offset : offset + count]
            offset += count
            if count > 1:
                unconditional, conditional = part.chunk(2)
                part = unconditional + recipe.guidance * (conditional - unconditional)
            results.append((part, _x0_from_output(latent, part, level, prediction)))
        return results

    def run_batch(
        self,
        recipes: list[Recipe],
        cancel: threading.Event | None = None,
        images: Sequence[np.ndarray] = (),
        cancels: Sequence[threading.Event] | None = None,
        starts: Sequence[Checkpoint] | None = None,
    ) -> Iterator[tuple[int, Step]]:
        """Run recipes as one UNet batch; yields (position in ``recipes``, Step), every
        running recipe's step k before any step k+1.

        The recipes share steps, sampler, size and whether they are guided, and each
        one's ``batch`` is the batch size used (at least ``len(recipes)``; the rest is
        padding). Their trajectories are those ``run`` gives each recipe alone, bit for
        bit, and so are resumes from their checkpoints: the recipe records the batch.

        ``cancels`` (one event per recipe) drops a recipe from the batch before the next
        step once its event is set; the others run on with the same bits, since a row's
        output depends on the batch's shape only. ``cancel``, or every recipe's event,
        stops the batch within one block. ``starts`` (one checkpoint per recipe, all
        after the same step) resumes each recipe from its checkpoint, as ``run`` does."""
        model = self.model
        if not recipes:
            return
        lead = recipes[0]
        key = batching.batch_key(lead)
        for recipe in recipes:
            recipe.validate(model.size_factor)
            if batching.batch_key(recipe) != key:
                raise RecipeError(
                    "A batch's recipes share steps, sampler, size, batch size and strength."
                )
            if starts is None and not batching.can_batch(recipe):
                raise RecipeError("A branch or a cross runs alone, from its parents' checkpoints.")
        if len(recipes) > lead.batch:
            raise RecipeError(f"A batch of {lead.batch} holds at most {lead.batch} recipes.")
        shape = self.latent_shape(lead)
        spec = schedulers.sampler_spec(lead.sampler)
        runs = [
            schedulers.build_scheduler(r.sampler, model.scheduler_config, r.steps, model.device)
            for r in recipes
        ]
        levels = [schedulers.noise_levels(runs[0], lead.sampler, i) for i in range(lead.steps + 1)]
        prediction = runs[0].config.get("prediction_type", "epsilon")
        try:
            with _stops_when(cancel, model.text_encoder, model.text_encoder_2):
                conditionings = [self._conditioning(r) for r in recipes]
        except _Cancelled:
            return
        noises = [_start_latent(r, shape) for r in recipes]
        inits = [
            img2img.init_latents(model, r, images, n) for r, n in zip(recipes, noises, strict=True)
        ]
        extras = [
            img2img.inpainting_input(model, r, init, shape)
            for r, init in zip(recipes, inits, strict=True)
        ]
        if starts is None:
            firsts = [
                _first_latent(r, run, levels, n, init, model.device)
                for r, run, n, init in zip(recipes, runs, noises, inits, strict=True)
            ]
        else:
            firsts = [
                _resumed_latent(r, run, levels, start, shape, model.device)
                for r, run, start in zip(recipes, runs, starts, strict=True)
            ]
            if len({first for first, _ in firsts}) > 1:
                raise CheckpointError("A batch resumes its recipes from one step.")
        first = firsts[0][0]
        latents = [latent for _, latent in firsts]
        dropped = list(cancels) if cancels is not None else [threading.Event() for _ in recipes]
        every = _EveryEvent(cancel, dropped)
        for index in range(first, lead.steps):
            running = [p for p in range(len(recipes)) if not dropped[p].is_set()]
            if every.is_set() or not running:
                return
            timestep = runs[0].timesteps[index]
            try:
                with _stops_when(every, model.unet):
                    predicted = dict(
                        zip(
                            running,
                            self._predict_batch(
                                [runs[p] for p in running],
                                [latents[p] for p in running],
                                timestep,
                                [conditionings[p] for p in running],
                                [recipes[p] for p in running],
                                levels[index],
                                prediction,
                                [extras[p] for p in running],
                            ),
                            strict=True,
                        )
                    )
            except _Cancelled:
                return
            except RuntimeError as exc:
                if not _is_out_of_memory(exc):
                    raise
                _release_memory()
                raise OutOfMemoryError(
                    f"Out of memory at step {index + 1} of {lead.steps}. {OOM_ADVICE}", index
                ) from exc
            a, s = levels[index + 1]
            for position in running:
                recipe = recipes[position]
                scheduler, (model_output, x0_pred) = runs[position], predicted[position]
                latent, x0_pred = _advance(
                    scheduler, spec, recipe, index, shape, model_output, timestep,
                    latents[position], x0_pred, inits[position], levels[index + 1],
                )  # fmt: skip
                if not bool(torch.isfinite(latent).all()):
                    raise NonFiniteError(
                        f"The image became invalid (NaN) at step {index + 1} of {lead.steps}; "
                        "the steps before it are kept.",
                        index,
                    )
                latents[position] = latent
                checkpoint = Checkpoint(
                    recipe, index, latent, x0_pred, schedulers.snapshot(scheduler)
                )
                preview_x0, skipped = self._preview_x0(x0_pred, last=index == lead.steps - 1)
                yield (
                    position,
                    Step(
                        index=index,
                        total=lead.steps,
                        timestep=float(timestep),
                        sigma=s / a if a else float("inf"),
                        latent=latent,
                        x0_pred=x0_pred,
                        preview_x0=preview_x0,
                        preview_xt=linear_preview(
                            latent / (a * a + s * s) ** 0.5,
                            model.preview_factors,
                            model.preview_bias,
                        ),
                        checkpoint=checkpoint,
                        tiny_preview_skipped=skipped,
                    ),
                )

    def decode(
        self, latent: torch.Tensor, cancel: threading.Event | None = None
    ) -> np.ndarray | None:
        """Full-quality VAE decode to uint8 H×W×3 (raises DecodeError on NaN or black).

        Returns None only when ``cancel`` is set before the decoder's last block."""
        try:
            with (
                _out_of_memory_as(f"Out of memory while decoding the image. {OOM_ADVICE}"),
                _stops_when(cancel, self.model.vae.decoder),
                tiling_when_short(self.model, latent),
            ):
                return decode(self.model.vae, latent)
        except _Cancelled:
            return None

    def decode_many(
        self, latents: Sequence[torch.Tensor], cancel: threading.Event | None = None
    ) -> list[np.ndarray | None] | None:
        """Full-quality VAE decodes of (1, C, H, W) latents, as many at once as
        :meth:`decode_batch_size` allows: uint8 H×W×3 each, None for one that is NaN or
        black. Returns None when ``cancel`` is set before the decoder's last block."""
        images: list[np.ndarray | None] = []
        size = self.decode_batch_size(latents[0]) if latents else 1
        vae = self.model.vae
        try:
            with _out_of_memory_as(f"Out of memory while decoding the images. {OOM_ADVICE}"):
                for start in range(0, len(latents), size):
                    batch = torch.cat(
                        [t.to(self.model.device) for t in latents[start : start + size]]
                    )
                    with _stops_when(cancel, vae.decoder), tiling_when_short(self.model, batch[:1]):
                        images.extend(decode_batch(vae, batch))
        except _Cancelled:
            return None
        return images

    def decode_batch_size(self, latent: torch.Tensor) -> int:
        """How many latents like ``latent`` one VAE decode takes: DECODE_BATCH at most, and
        no more than free memory holds (1 where even one would tile)."""
        from studio.engine.memory import available_bytes
        from studio.engine.memory_saving import decode_bytes

        vae = self.model.vae
        factor = self.model.size_factor
        try:
            need = decode_bytes(vae, latent.shape[-2] * factor, latent.shape[-1] * factor)
            free = available_bytes(next(vae.parameters()).device)
        except (AttributeError, StopIteration, TypeError, ValueError):
            return 1
        if need <= 0 or free <= 0:
            return DECODE_BATCH
        return max(1, min(DECODE_BATCH, free // (2 * need)))

    def finish(
        self,
        recipe: Recipe,
        latent: torch.Tensor | None,
        images: Sequence[np.ndarray] = (),
        cancel: threading.Event | None = None,
    ) -> np.ndarray | None:
        """The result image of a run that ended with ``latent``: its decode, composited
        with the init pixels outside an inpainting mask. ``latent`` None: a run that had
        no step to take (strength 0), whose result is the init image through the VAE."""
        init = img2img.init_latents(
            self.model, recipe, images, _start_latent(recipe, self.latent_shape(recipe))
        )
        if latent is None:
            if init is None:
                raise RecipeError("A text-to-image run has no result before its first step.")
            latent = init.latent
        image = self.decode(latent, cancel)
        if image is None or init is None:
            return image
        return init.finish(image)

    @torch.no_grad()
    def forward_previews(
        self, recipe: Recipe, images: Sequence[np.ndarray] = ()
    ) -> list[np.ndarray]:
        """The forward (noising) half of an image-to-image recipe, as fast previews: the init
        image, then ``a_k·z_0 + s_k·ε`` (the run's own init latent and noise) at each noise
        level from the last step's back to the one its first denoising step starts from,
        brought to unit variance as ``preview_xt`` is. The last frame is the latent the run
        starts denoising from. Empty for a text-to-image recipe. No UNet is run."""
        if not recipe.init_image:
            return []
        model = self.model
        recipe.validate(model.size_factor)
        shape = self.latent_shape(recipe)
        scheduler = schedulers.build_scheduler(
            recipe.sampler, model.scheduler_config, recipe.steps, model.device
        )
        init = img2img.init_latents(model, recipe, images, _start_latent(recipe, shape))
        assert init is not None
        first = img2img.start_index(recipe.steps, recipe.strength)
        frames = [init.image]
        for index in range(recipe.steps - 1, first - 1, -1):
            a, s = schedulers.noise_levels(scheduler, recipe.sampler, index)
            frames.append(preview_image(model, init.noised((a, s)) / (a * a + s * s) ** 0.5))
        return frames

    def render(
        self,
        recipe: Recipe,
        cancel: threading.Event | None = None,
        images: Sequence[np.ndarray] = (),
    ) -> tuple[list[Step], np.ndarray | None]:
        """Run a whole recipe; returns its steps and the result image (None if cancelled)."""
        steps = list(self.run(recipe, cancel=cancel, images=images))
        first = img2img.start_index(recipe.steps, recipe.strength) if recipe.init_image else 0
        if recipe.cross is not None:
            first = recipe.cross.step_index + 1
        if len(steps) < recipe.steps - first or (cancel is not None and cancel.is_set()):
            return steps, None
        return steps, self.finish(recipe, steps[-1].latent if steps else None, images, cancel)


class _Cancelled(Exception):
    """Raised by a block's forward pre-hook once the run's cancel event is set."""


@contextlib.contextmanager
def _stops_when(cancel: threading.Event | None, *modules: Any) -> Iterator[None]:
    """Raise :class:`_Cancelled` before the next block of ``modules`` runs once ``cancel`` is set.

    The blocks are the members of every ModuleList inside the modules (UNet down, mid
    and up blocks and their resnets and attentions, encoder layers, decoder blocks), so
    a cancel waits for at most one block, never for a whole evaluation."""
    if cancel is None:
        yield
        return

    def check(_module: Any, _args: Any) -> None:
        if cancel.is_set():
            raise _Cancelled

    handles = [
        block.register_forward_pre_hook(check)
        for module in modules
        if module is not None
        for child in module.modules()
        if isinstance(child, torch.nn.ModuleList)
        for block in child
        if block is not None  # some diffusers blocks keep None placeholders in their lists
    ]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _with_extra(scaled: torch.Tensor, extra: torch.Tensor | None) -> torch.Tensor:
    """A true inpainting UNet's input: the scaled latent rows, then the mask and the masked
    image's latent (the same for every row, as diffusers repeats them for guidance)."""
    if extra is None:
        return scaled
    rows = extra.to(scaled.device, scaled.dtype).expand(scaled.shape[0], -1, -1, -1)
    return torch.cat([scaled, rows], dim=1)


def _x0_from_output(
    latent: torch.Tensor, output: torch.Tensor, level: tuple[float, float], prediction: str
) -> torch.Tensor:
    a, s = level
    norm = (a * a + s * s) ** 0.5
    alpha, sigma = a / norm, s / norm
    vp_latent = latent / norm
    if prediction == "v_prediction":
        return alpha * vp_latent - sigma * output
    if prediction == "sample":
        return output
    return (vp_latent - sigma * output) / alpha


def _start_latent(recipe: Recipe, shape: tuple[int, ...]) -> torch.Tensor:
    """The recipe's start noise (its genome, variation and mutation) at its temperature."""
    latent = noise.start_noise(
        recipe.seed,
        shape,
        recipe.variation_seed,
        recipe.variation_strength,
        recipe.parents,
        recipe.mutation_seed,
        recipe.mutation_dose,
    )
    return latent * recipe.temperature if recipe.temperature != 1.0 else latent


def _first_latent(
    recipe: Recipe,
    scheduler: Any,
    levels: list[tuple[float, float]],
    start_noise: torch.Tensor,
    init: img2img.InitLatents | None,
    device: torch.device,
) -> tuple[int, torch.Tensor]:
    """The first step a run from scratch takes, and the latent it takes it from: the start
    noise, or (image-to-image below strength 1) the init latent noised to that step."""
    first = 0 if init is None else img2img.start_index(recipe.steps, recipe.strength)
    if first == 0:
        return 0, start_noise.to(device) * scheduler.init_noise_sigma
    if hasattr(scheduler, "set_begin_index"):  # as diffusers' img2img pipelines do
        scheduler.set_begin_index(first)
    return first, init.noised(levels[first])


def _resumed_latent(
    recipe: Recipe,
    scheduler: Any,
    levels: list[tuple[float, float]],
    start: Checkpoint,
    shape: tuple[int, ...],
    device: torch.device,
) -> tuple[int, torch.Tensor]:
    """The first step a run resumed from ``start`` takes, and its latent there (re-noised
    for a branch that asks for it), with ``scheduler`` restored to the checkpoint's state."""
    _check_resumable(start, recipe, shape)
    first = start.step_index + 1
    schedulers.restore(scheduler, start.scheduler_state, device, torch.float32)
    latent = start.latent.to(device)
    if recipe.renoise_strength > 0.0 and first < recipe.steps:
        latent = _renoise(
            latent, start.x0_pred.to(device, latent.dtype), levels[first], recipe, first
        )
    return first, latent


class _EveryEvent:
    """Set once ``cancel`` is, or every one of ``events``: a batch stops mid-block only
    when none of its recipes is left to run."""

    def __init__(self, cancel: threading.Event | None, events: Sequence[threading.Event]) -> None:
        self._cancel, self._events = cancel, events

    def is_set(self) -> bool:
        if self._cancel is not None and self._cancel.is_set():
            return True
        return all(event.is_set() for event in self._events)


def _advance(
    scheduler: Any,
    spec: Any,
    recipe: Recipe,
    index: int,
    shape: tuple[int, ...],
    model_output: torch.Tensor,
    timestep: torch.Tensor,
    latent: torch.Tensor,
    x0_pred: torch.Tensor,
    init: Any,
    level: tuple[float, float],
) -> tuple[torch.Tensor, torch.Tensor]:
    """One scheduler step of ``recipe`` (a lone run's or one row of a batch's): the
    per-step noise drawn from (seed, step) as the sampler takes it, scaled by the
    temperature, and an inpaint's known region put back at ``level``, the noise level
    just reached. Returns the new latent and x0-hat."""
    kwargs: dict[str, Any] = {}
    if spec.noise == "generator":
        kwargs["generator"] = noise.step_generator(recipe.seed, index)
    elif spec.noise == "variance":
        variance = noise.step_noise(recipe.seed, index, shape)
        if recipe.temperature != 1.0:
            variance = variance * recipe.temperature
        kwargs["variance_noise"] = variance.to(latent.device)
    latent = scheduler.step(model_output, timestep, latent, **kwargs).prev_sample
    if spec.noise == "generator" and recipe.temperature != 1.0:
        latent = _ancestral_temperature(latent, scheduler, recipe, index, shape)
    if init is not None:
        latent = init.keep_known(latent, level)
        x0_pred = init.keep_known_x0(x0_pred)
    return latent, x0_pred


def _ancestral_temperature(
    latent: torch.Tensor, scheduler: Any, recipe: Recipe, index: int, shape: tuple[int, ...]
) -> torch.Tensor:
    """Scale the noise an ancestral step just added by the recipe's temperature.

    The scheduler drew ``sigma_up · ε`` from ``step_generator(seed, index)``; the same ε is
    drawn again here, so the step ends with ``temperature · sigma_up · ε`` added."""
    sigma_from, sigma_to = scheduler.sigmas[index], scheduler.sigmas[index + 1]
    sigma_up = (sigma_to**2 * (sigma_from**2 - sigma_to**2) / sigma_from**2) ** 0.5
    drawn = noise.step_noise(recipe.seed, index, shape).to(latent.device)
    return latent + (recipe.temperature - 1.0) * sigma_up.to(latent.device) * drawn


def _renoise(
    latent: torch.Tensor,
    x0_pred: torch.Tensor,
    level: tuple[float, float],
    recipe: Recipe,
    index: int,
) -> torch.Tensor:
    """Replace part of the noise left in ``latent`` with fresh noise from the branch's seed."""
    a, s = level
    if s <= 0.0:
        return latent
    seed = recipe.renoise_seed if recipe.renoise_seed is not None else recipe.seed
    current = (latent - a * x0_pred) / s
    fresh = noise.renoise_noise(seed, index, tuple(latent.shape)).to(latent.device)
    return a * x0_pred + s * noise.slerp(recipe.renoise_strength, current, fresh)


def _check_resumable(start: Checkpoint, recipe: Recipe, shape: tuple[int, ...]) -> None:
    base = start.recipe
    if (base.steps, base.sampler, base.width, base.height) != (
        recipe.steps,
        recipe.sampler,
        recipe.width,
        recipe.height,
    ):
        raise CheckpointError(
            "A branch keeps its parent's steps, sampler and size; change prompt, guidance or noise instead."
        )
    if tuple(start.latent.shape) != shape:
        raise CheckpointError("The checkpoint's latent does not fit this model.")


def _is_out_of_memory(exc: RuntimeError) -> bool:
    """CUDA raises torch.OutOfMemoryError; the CPU allocator raises a plain RuntimeError."""
    text = str(exc).lower()
    return isinstance(exc, torch.OutOfMemoryError) or any(
        phrase in text for phrase in ("out of memory", "can't allocate memory", "not enough memory")
    )


@contextlib.contextmanager
def _out_of_memory_as(message: str) -> Iterator[None]:
    """Turn an allocator failure inside the block into ``OutOfMemoryError(message)``, with
    the memory released first; any other error passes through."""
    try:
        yield
    except RuntimeError as exc:
        if not _is_out_of_memory(exc):
            raise
        _release_memory()
        raise OutOfMemoryError(message) from exc


def _release_memory() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def encode_mix(
    model: LoadedModel, weights: Sequence[tuple[str, float]]
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The conditioning of prompts mixed by ``weights`` ((text, share) pairs, the shares
    summing to 1, as ``Recipe.prompt_weights`` gives them): see :func:`mix_encodings`."""
    return mix_encodings([(encode_text(model, text), share) for text, share in weights])


def mix_encodings(
    encodings: Sequence[tuple[tuple[torch.Tensor, torch.Tensor | None], float]],
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The convex combination ``Σ share·e`` of :func:`encode_text` outputs, per token and
    for the pooled embedding, summed in float32 in the given order; one encoding is
    returned as it is, so a lone prompt keeps its exact bits.

    Convex, not the start noise's ``Σ w·z / sqrt(Σ w²)``: that form keeps the variance of
    independent zero-mean noises, but text embeddings share most of their direction (the
    start token, the padding, the common words), so it would scale two like prompts up
    by up to √2, off the embeddings the UNet was trained on; a convex mix of one prompt
    with itself is that prompt."""
    if len(encodings) == 1:
        return encodings[0][0]
    (first, first_pooled), _ = encodings[0]
    hidden = torch.zeros(first.shape, dtype=torch.float32, device=first.device)
    pooled = None if first_pooled is None else torch.zeros_like(first_pooled, dtype=torch.float32)
    for (states, states_pooled), share in encodings:
        hidden = hidden + share * states.to(torch.float32)
        if pooled is not None:
            pooled = pooled + share * states_pooled.to(torch.float32)
    return hidden.to(first.dtype), None if pooled is None else pooled.to(first_pooled.dtype)


@torch.no_grad()
def encode_text(model: LoadedModel, text: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One text's hidden states for the UNet (and SDXL's pooled embedding), padded and
    truncated to the encoder's length; the one encoding the sampler and the scores share."""

    def tokens(tokenizer: Any) -> torch.Tensor:
        return tokenizer(
            text,
            padding="max_length",
            max_length=tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        ).input_ids.to(model.device)

    if not model.is_xl:
        return model.text_encoder(tokens(model.tokenizer)).last_hidden_state, None
    first = model.text_encoder(tokens(model.tokenizer), output_hidden_states=True)
    second = model.text_encoder_2(tokens(model.tokenizer_2), output_hidden_states=True)
    hidden = torch.cat([first.hidden_states[-2], second.hidden_states[-2]], dim=-1)
    return hidden, second.text_embeds
