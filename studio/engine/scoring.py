"""Fidelity and novelty from the diffusion model's own denoising errors.

No downloaded scorer is involved, so these work offline with any loaded model.

- **Fidelity** (prompt agreement) is the diffusion classifier of Li et al. (2023):
  the image's latent is noised at fixed timesteps with fixed noises, and the
  UNet's noise-prediction error with the prompt is compared with its error
  without it. ``fidelity = 1 − E_cond / E_uncond``: the share of the
  unconditional error the prompt explains (0: the prompt does not help; higher:
  the image agrees with it). Alternative prompts are scored on the same draws,
  so an image's fidelity under each can be compared exactly.
- **Novelty** is an ELBO-style surprisal (Kingma & Gao 2023: diffusion
  objectives are weighted ELBOs): ``½ ∫ ‖ε − ε̂‖² dλ`` over log-SNR λ, a
  quadrature over the same draws, in bits per latent dimension, under the
  prompt (how surprising the image is as an answer to it). The
  prompt-free surprisal is kept too (``novelty_unconditional``).
- **Context novelty** is relative to the other candidates: in the space of the
  UNet's mid-block features, each candidate's leave-one-out contribution to the
  Vendi score (Friedman & Dieng 2022) and its distance to its nearest neighbour
  (:func:`studio.taste.context_novelty`, re-exported here).

Exactness: the draws are derived from ``ScoreCost.seed`` alone, each image is
evaluated on its own in batches whose layout depends only on the cost and the
number of prompts, so on CPU the same image, prompts and cost give the same
scores bit for bit whichever batch of images it was scored in.

Threading: a Scorer belongs to the thread that owns torch, like the Sampler.
``score`` is a generator of one :class:`ImageScore` per image; ``cancel`` is
checked before every UNet batch (one timestep of one image) and a cancelled run
simply stops yielding.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from studio.engine import noise
from studio.engine.errors import EngineError
from studio.engine.models import LoadedModel
from studio.engine.sampler import encode_text
from studio.taste import ContextNovelty, context_novelty, vendi_score

__all__ = [
    "ContextNovelty",
    "ImageScore",
    "ScoreCost",
    "ScoreError",
    "Scorer",
    "context_novelty",
    "vendi_score",
]

_SCORE_NOISE = 7
"""The ``derived_seed`` purpose of scoring draws (the sampler's purposes are 1 and 2)."""
MAX_TIMESTEPS = 100
MAX_NOISES = 32
FEATURE_SIDE = 4
"""Mid-block features are pooled to at most this many cells a side before comparison."""


class ScoreError(EngineError):
    """An input that cannot be scored; the message is one sentence for the user."""


@dataclass(frozen=True)
class ScoreCost:
    """How many (timestep, noise) draws a score averages: the cost knob.

    One image costs ``timesteps × noises × (prompts + 1)`` UNet evaluations (the
    prompt, any alternatives, and the unconditional pass)."""

    timesteps: int = 8
    noises: int = 2
    seed: int = 0

    def validate(self) -> None:
        if not 1 <= self.timesteps <= MAX_TIMESTEPS:
            raise ScoreError(f"Timesteps must be from 1 to {MAX_TIMESTEPS}, not {self.timesteps}.")
        if not 1 <= self.noises <= MAX_NOISES:
            raise ScoreError(f"Noises must be from 1 to {MAX_NOISES}, not {self.noises}.")

    def evaluations(self, prompts: int = 1) -> int:
        """UNet evaluations for one image scored against ``prompts`` prompts."""
        return self.timesteps * self.noises * (prompts + 1)


@dataclass(frozen=True, eq=False)
class ImageScore:
    """The scores of one image, with the raw errors they came from.

    ``errors`` has shape (1 + prompts, timesteps, noises): the mean squared
    noise-prediction error per latent dimension, unconditional first, then the
    prompt, then each alternative. ``features`` are the pooled mid-block
    features (float32, one vector) that :func:`context_novelty` compares."""

    fidelity: float
    novelty: float
    novelty_unconditional: float
    alternative_fidelities: tuple[float, ...]
    errors: np.ndarray
    features: np.ndarray
    evaluations: int


class Scorer:
    """Scores latents or images with one loaded model at one cost. See the module docstring."""

    def __init__(self, model: LoadedModel, cost: ScoreCost | None = None) -> None:
        from diffusers import DDPMScheduler

        self.model = model
        self.cost = cost or ScoreCost()
        self.cost.validate()
        config = dict(model.scheduler_config)
        self.prediction = config.get("prediction_type", "epsilon")
        schedule = DDPMScheduler.from_config(config)
        alphas = schedule.alphas_cumprod.double()
        train_steps = len(alphas)
        count = self.cost.timesteps
        self.timesteps = [int((i + 0.5) * train_steps / count) for i in range(count)]
        self._alpha_bar = [float(alphas[t]) for t in self.timesteps]
        log_snr = torch.log(alphas / (1.0 - alphas))
        edges = [min(train_steps - 1, round(i * train_steps / count)) for i in range(count + 1)]
        # Each timestep stands for the band of log-SNR around it: dλ in the ELBO's integral.
        self._log_snr_widths = [
            float(log_snr[edges[i]] - log_snr[edges[i + 1]]) for i in range(count)
        ]
        self._embeddings: dict[str, tuple[torch.Tensor, torch.Tensor | None]] = {}

    # ---- inputs -----------------------------------------------------------

    @torch.no_grad()
    def encode(self, image: np.ndarray) -> torch.Tensor:
        """The VAE latent (posterior mean, UNet space) of a uint8 H×W×3 image, shape (1, C, h, w).

        An image whose sides are not multiples of the VAE factor is cropped to them."""
        if image.ndim != 3 or image.shape[2] not in (3, 4) or image.dtype != np.uint8:
            raise ScoreError("An image to score must be 8-bit RGB.")
        factor = self.model.size_factor
        height, width = (image.shape[0] // factor) * factor, (image.shape[1] // factor) * factor
        if height < factor or width < factor:
            raise ScoreError(f"An image to score must be at least {factor} pixels a side.")
        pixels = np.array(image[:height, :width, :3], copy=True)
        x = torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 127.5 - 1.0
        vae = self.model.vae
        mean = vae.encode(x.to(self.model.device, vae.dtype)).latent_dist.mean
        shift = getattr(vae.config, "shift_factor", None) or 0.0
        return ((mean.float() - shift) * vae.config.scaling_factor).cpu()

    # ---- scores -----------------------------------------------------------

    def score(
        self,
        latents: Sequence[torch.Tensor],
        prompt: str,
        alternatives: Sequence[str] = (),
        cancel: threading.Event | None = None,
    ) -> Iterator[ImageScore]:
        """Yield one ImageScore per latent (each (1, C, h, w) in the UNet's space), in order."""
        prompts = [prompt, *alternatives]
        for latent in latents:
            result = self._score_one(latent, prompts, cancel)
            if result is None:
                return
            yield result

    def score_images(
        self,
        images: Sequence[np.ndarray],
        prompt: str,
        alternatives: Sequence[str] = (),
        cancel: threading.Event | None = None,
    ) -> Iterator[ImageScore]:
        """Like :meth:`score`, for uint8 images (each encoded by the VAE just before it is scored)."""
        for image in images:
            if cancel is not None and cancel.is_set():
                return
            yield from self.score([self.encode(image)], prompt, alternatives, cancel)

    @torch.no_grad()
    def _score_one(
        self, latent: torch.Tensor, prompts: list[str], cancel: threading.Event | None
    ) -> ImageScore | None:
        model = self.model
        x0 = latent.detach().to(torch.float32).cpu()
        if x0.ndim == 3:
            x0 = x0[None]
        if x0.ndim != 4 or x0.shape[0] != 1 or x0.shape[1] != model.latent_channels:
            raise ScoreError("The latent to score does not fit this model.")
        if not bool(torch.isfinite(x0).all()):
            raise ScoreError("The latent to score holds invalid values (NaN).")
        cost = self.cost
        shape = tuple(x0.shape)
        embeddings, pooled = self._conditioning(["", *prompts], shape)
        rows = len(prompts) + 1
        errors = np.zeros((rows, cost.timesteps, cost.noises), dtype=np.float64)
        features: np.ndarray | None = None
        feature_step = cost.timesteps // 2
        captured: list[torch.Tensor] = []
        mid_block = getattr(model.unet, "mid_block", None)
        for i, t in enumerate(self.timesteps):
            if cancel is not None and cancel.is_set():
                return None
            a = self._alpha_bar[i]
            eps = torch.cat(
                [
                    noise.seeded_noise(
                        noise.derived_seed(cost.seed, _SCORE_NOISE, i * cost.noises + j), shape
                    )
                    for j in range(cost.noises)
                ]
            )
            x_t = math.sqrt(a) * x0 + math.sqrt(1.0 - a) * eps  # (noises, C, h, w)
            # Batch rows: for each prompt row (unconditional first), every noise.
            batch = torch.cat([x_t] * rows).to(model.device, model.dtype)
            hidden = embeddings.repeat_interleave(cost.noises, dim=0)
            added = None
            if pooled is not None:
                added = self._added_conditioning(pooled.repeat_interleave(cost.noises, 0), shape)
            handle = None
            if i == feature_step and mid_block is not None:
                handle = mid_block.register_forward_hook(
                    lambda _m, _args, out: captured.append(out[0:1].detach())
                )
            try:
                output = model.unet(
                    batch,
                    torch.full((batch.shape[0],), t, device=model.device),
                    encoder_hidden_states=hidden,
                    added_cond_kwargs=added,
                ).sample.to(torch.float32)
            finally:
                if handle is not None:
                    handle.remove()
            predicted = self._predicted_noise(output.cpu(), torch.cat([x_t] * rows), a)
            target = torch.cat([eps] * rows)
            mse = ((predicted - target) ** 2).flatten(1).mean(1).double()
            errors[:, i, :] = mse.reshape(rows, cost.noises).numpy()
        if captured:
            features = _pooled_features(captured[0].float().cpu())
        else:
            features = _pooled_features(x0)
        return self._result(errors, features, shape)

    def _result(self, errors: np.ndarray, features: np.ndarray, shape: tuple) -> ImageScore:
        per_prompt = errors.mean(axis=(1, 2))
        unconditional = float(per_prompt[0])
        fidelities = [
            1.0 - float(e) / unconditional if unconditional > 0 else 0.0 for e in per_prompt[1:]
        ]
        return ImageScore(
            fidelity=fidelities[0],
            novelty=self._surprisal(errors[1]),
            novelty_unconditional=self._surprisal(errors[0]),
            alternative_fidelities=tuple(fidelities[1:]),
            errors=errors,
            features=features,
            evaluations=int(errors.size),
        )

    def _surprisal(self, errors: np.ndarray) -> float:
        """½ Σ dλ · E‖ε − ε̂‖², per latent dimension, in bits (the ELBO's diffusion term)."""
        per_step = errors.mean(axis=1)
        nats = 0.5 * float(np.dot(self._log_snr_widths, per_step))
        return nats / math.log(2.0)

    def _predicted_noise(self, output: torch.Tensor, x_t: torch.Tensor, a: float) -> torch.Tensor:
        alpha, sigma = math.sqrt(a), math.sqrt(1.0 - a)
        if self.prediction == "v_prediction":
            return sigma * x_t + alpha * output
        if self.prediction == "sample":
            return (x_t - alpha * output) / sigma
        return output

    def _conditioning(
        self, texts: list[str], shape: tuple
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        hidden, pooled = [], []
        for text in texts:
            if text not in self._embeddings:
                if len(self._embeddings) > 64:
                    self._embeddings.clear()
                self._embeddings[text] = self._encode_text(text)
            h, p = self._embeddings[text]
            hidden.append(h)
            pooled.append(p)
        stacked_pooled = torch.cat(pooled) if pooled[0] is not None else None
        return torch.cat(hidden).to(self.model.dtype), stacked_pooled

    def _encode_text(self, text: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The prompt's hidden states (and SDXL's pooled embedding), as the Sampler encodes them."""
        return encode_text(self.model, text)

    def _added_conditioning(self, pooled: torch.Tensor, shape: tuple) -> dict[str, torch.Tensor]:
        factor = self.model.size_factor
        height, width = shape[2] * factor, shape[3] * factor
        size = [height, width, 0, 0, height, width]
        time_ids = torch.tensor([size] * pooled.shape[0], device=self.model.device)
        return {
            "text_embeds": pooled.to(self.model.dtype),
            "time_ids": time_ids.to(self.model.dtype),
        }


def _pooled_features(tensor: torch.Tensor) -> np.ndarray:
    side = min(FEATURE_SIDE, tensor.shape[-1], tensor.shape[-2])
    pooled = torch.nn.functional.adaptive_avg_pool2d(tensor, (side, side))
    return pooled.flatten().numpy().astype(np.float32)
