"""The Recipe: everything that defines a generation, and nothing else.

A Recipe is immutable. It is the history entry of a version, the metadata
written into exported images, and the key that reproduces an image exactly.
It round-trips through JSON and through AUTOMATIC1111's ``parameters`` text.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Any

BUNDLED_MODEL = "bundled"
MAX_SEED = 2**64 - 1
MAX_STEPS = 1000
MIN_SIDE = 16
MAX_SIDE = 4096
MAX_PROMPT_CHARS = 20_000
MAX_PARAMETERS_CHARS = 64_000
MAX_PARAMETER_LINE_CHARS = 16_000
"""A last line longer than this is never read as A1111's parameter line (it stays prompt text)."""
MAX_PARENTS = 256
MAX_LINEAGE = 10_000
MAX_TEMPERATURE = 2.0
MAX_BATCH = 64
A1111_REQUIRED_KEYS = ("Steps", "Sampler", "Seed")
"""Keys A1111 writes on every parameter line; a lone line is parameters only if it has them all."""

# A1111 spells some of our sampler names as a base name plus "Schedule type".
_A1111_KARRAS_SUFFIX = " Karras"


class RecipeError(ValueError):
    """A recipe field holds a value the engine cannot run; the message says which."""


@dataclass(frozen=True)
class BranchPoint:
    """One ancestor of a branch: ``recipe`` (without a lineage of its own) ran to the end
    of step ``step_index`` (0-based), and the next recipe of the lineage took over there."""

    recipe: Recipe
    step_index: int


@dataclass(frozen=True)
class CrossPoint:
    """Where a crossed child starts: its two ``parents`` ((recipe with its own lineage,
    weight) pairs) each ran to the end of step ``step_index`` (0-based); their latents were
    slerped by the weights and re-noised by ``dose`` of ``seed``'s noise (see
    ``crossing.cross_latents``), and the child's recipe took over from there."""

    parents: tuple[tuple[Recipe, float], ...]
    step_index: int
    seed: int = 0
    dose: float = 0.0


@dataclass(frozen=True)
class Recipe:
    """One generation, fully specified.

    ``variation_seed``/``variation_strength`` mix a second noise into the start
    noise (A1111's slerp). ``renoise_seed``/``renoise_strength`` only matter when
    a run resumes from a checkpoint: they replace part of the noise left in the
    latent at the branch point, so that a branch from a deterministic sampler
    can vary.

    The noise genome: with ``parents`` ((seed, weight) pairs) the start noise is
    their normalised mix instead of ``seed``'s noise, and a ``mutation_dose`` d
    of ``mutation_seed``'s noise gives ``sqrt(1 - d²)·z + d·ε`` (see
    ``noise.start_noise``). ``seed`` still drives the per-step noise of ancestral
    and SDE samplers. ``temperature`` scales that per-step noise and the start
    noise (1.0: the model's own distribution).

    ``batch`` is the UNet batch size the trajectory is computed in (a brood's
    children run together): a lone run pads its batch to it, because a batch
    gives other low bits than a single image, and so it reproduces exactly.

    ``lineage`` makes the recipe a branch: its ancestors, root first, each run to
    its branch step before the next takes over, this recipe last. Rendering it
    from noise replays them, so a branch reproduces from its recipe alone.
    Fields at their defaults are left out of the JSON, so older recipes keep
    their exact text.

    ``cross`` makes the recipe a crossed child: it starts after step ``cross.step_index``
    from the cross of its two parents' latents there, so rendering it replays both
    parents (and their lineages) to that step. A branch keeps its cross in the first
    recipe of its lineage.

    ``prompt_mix`` makes the recipe a child of prompts as well as of noises: (prompt,
    weight) pairs whose text embeddings (per token, and SDXL's pooled one) are mixed as
    a convex combination, the weights normalised by their sum, and the mix conditions
    the run instead of ``prompt``'s encoding (see ``sampler.encode_mix``). ``prompt``
    then only names the mix for people ("a red fox × a blue owl"); the negative prompt
    is not mixed.
    """

    prompt: str
    negative_prompt: str = ""
    seed: int = 0
    steps: int = 20
    guidance: float = 7.0
    sampler: str = "Euler a"
    width: int = 64
    height: int = 64
    model: str = BUNDLED_MODEL
    variation_seed: int | None = None
    variation_strength: float = 0.0
    renoise_seed: int | None = None
    renoise_strength: float = 0.0
    parents: tuple[tuple[int, float], ...] = ()
    mutation_seed: int | None = None
    mutation_dose: float = 0.0
    temperature: float = 1.0
    lineage: tuple[BranchPoint, ...] = ()
    batch: int = 1
    model_config: str = ""
    """The local config folder a single-file ``model`` loads with ("" for folders)."""
    init_image: str = ""
    """Image-to-image: the init image's content hash (``img2img.image_hash``: sha256 of
    its pixels); a project keeps the image under this hash in its ``images`` table."""
    strength: float = 1.0
    """How far the init image is pushed into noise, 0 to 1 (1: from noise alone)."""
    mask: str = ""
    """Inpainting: the mask's content hash (white repaints), stored like the init image."""
    cross: CrossPoint | None = None
    prompt_mix: tuple[tuple[str, float], ...] = ()

    # ---- JSON -------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        for name, default in _OPTIONAL_DEFAULTS.items():
            if data[name] == default:
                del data[name]
        if "parents" in data:
            data["parents"] = [[seed, weight] for seed, weight in self.parents]
        if "prompt_mix" in data:
            data["prompt_mix"] = [[text, weight] for text, weight in self.prompt_mix]
        if "lineage" in data:
            data["lineage"] = [
                {"recipe": point.recipe.to_dict(), "step_index": point.step_index}
                for point in self.lineage
            ]
        if "cross" in data:
            point = self.cross
            data["cross"] = {
                "parents": [{"recipe": r.to_dict(), "weight": w} for r, w in point.parents],
                "step_index": point.step_index,
                "seed": point.seed,
                "dose": point.dose,
            }
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any], notes: list[str] | None = None) -> Recipe:
        """Build a recipe from a dict; unknown keys are ignored, wrong types raise RecipeError.

        A prompt longer than ``MAX_PROMPT_CHARS`` is cut there (no model reads that far,
        and a longer one would stall the widgets that show it); a sentence saying so
        is appended to ``notes`` when given.
        """
        if not isinstance(data, dict):
            raise RecipeError("A recipe must be a JSON object.")
        known = {f.name: f for f in fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if key in known:
                kwargs[key] = value
        if "prompt" not in kwargs:
            raise RecipeError("The recipe has no prompt.")
        return cls(**_capped(_coerce(kwargs), notes))

    @classmethod
    def from_json(cls, text: str, notes: list[str] | None = None) -> Recipe:
        """Parse our JSON recipe; see :meth:`from_dict` for the prompt cap and ``notes``."""
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise RecipeError(f"The recipe is not valid JSON ({exc}).") from exc
        try:
            return cls.from_dict(data, notes)
        except RecursionError:
            raise RecipeError("The recipe nests its crosses too deeply.") from None

    def with_changes(self, **changes: Any) -> Recipe:
        return replace(self, **changes)

    def prompt_weights(self) -> tuple[tuple[str, float], ...]:
        """The prompts that condition the run, each once, with shares summing to 1:
        ``prompt_mix`` with repeated prompts merged (first appearance first), or the plain
        prompt alone."""
        if not self.prompt_mix:
            return ((self.prompt, 1.0),)
        merged: dict[str, float] = {}
        for text, weight in self.prompt_mix:
            merged[text] = merged.get(text, 0.0) + weight
        total = sum(merged.values())
        return tuple((text, weight / total) for text, weight in merged.items())

    # ---- lineage ----------------------------------------------------------

    def branched_from(self, parent: Recipe, step_index: int) -> Recipe:
        """This recipe as a branch after step ``step_index`` of ``parent`` (itself maybe a branch);
        any lineage this recipe had is replaced by the parent's. A branch that keeps a mixed
        parent's prompt (the mix's name, as the prompt panel shows it) keeps its mix too."""
        point = BranchPoint(parent.with_changes(lineage=()), step_index)
        mix = self.prompt_mix
        if not mix and self.prompt == parent.prompt:
            mix = parent.prompt_mix
        return replace(self, lineage=(*parent.lineage, point), cross=None, prompt_mix=mix)

    @property
    def parent(self) -> Recipe | None:
        """The recipe this one branched from, with its own lineage; None for a root."""
        if not self.lineage:
            return None
        return self.lineage[-1].recipe.with_changes(lineage=self.lineage[:-1])

    @property
    def branch_step(self) -> int | None:
        """The 0-based step of the parent this recipe branched after; None for a root."""
        return self.lineage[-1].step_index if self.lineage else None

    def short_hash(self) -> str:
        """The first 10 hex digits of the sha256 of the JSON recipe (names a parent in text)."""
        return hashlib.sha256(self.to_json().encode("utf-8")).hexdigest()[:10]

    def shared(self) -> Recipe:
        """This recipe as image metadata carries it: models named, never local paths
        (its lineage's recipes too)."""
        config = model_name(self.model_config) if self.model_config else ""
        lineage = tuple(BranchPoint(p.recipe.shared(), p.step_index) for p in self.lineage)
        cross = self.cross
        if cross is not None:
            cross = replace(cross, parents=tuple((r.shared(), w) for r, w in cross.parents))
        return replace(
            self, model=model_name(self.model), model_config=config, lineage=lineage, cross=cross
        )

    # ---- validation -------------------------------------------------------

    def validate(self, size_factor: int = 8) -> Recipe:
        """Raise RecipeError with one clear sentence if a field is out of range."""
        if len(self.prompt) > MAX_PROMPT_CHARS or len(self.negative_prompt) > MAX_PROMPT_CHARS:
            raise RecipeError(f"The prompt is longer than {MAX_PROMPT_CHARS} characters.")
        for name in ("seed", "variation_seed", "renoise_seed", "mutation_seed"):
            value = getattr(self, name)
            if value is None and name != "seed":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEED:
                raise RecipeError(
                    f"The {name.replace('_', ' ')} must be a whole number from 0 to 2^64-1."
                )
        if (
            isinstance(self.steps, bool)
            or not isinstance(self.steps, int)
            or not 1 <= self.steps <= MAX_STEPS
        ):
            raise RecipeError(f"Steps must be a whole number from 1 to {MAX_STEPS}.")
        self._validate_init()
        if not _finite(self.guidance) or not 0.0 <= self.guidance <= 50.0:
            raise RecipeError("CFG scale must be a number from 0 to 50.")
        for name in ("variation_strength", "renoise_strength", "mutation_dose"):
            value = getattr(self, name)
            if not _finite(value) or not 0.0 <= value <= 1.0:
                raise RecipeError(f"The {name.replace('_', ' ')} must be between 0 and 1.")
        self._validate_genome()
        self._validate_prompt_mix()
        for name in ("width", "height"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int)
                or not MIN_SIDE <= value <= MAX_SIDE
            ):
                raise RecipeError(
                    f"The {name} must be a whole number of pixels from {MIN_SIDE} to {MAX_SIDE}."
                )
            if value % size_factor:
                raise RecipeError(
                    f"The {name} ({value}) must be a multiple of {size_factor} for this model."
                )
        from studio.engine.schedulers import SAMPLERS  # local: schedulers pulls in diffusers

        if self.sampler not in SAMPLERS:
            raise RecipeError(
                f"Unknown sampler {self.sampler!r}; choose one of: {', '.join(SAMPLERS)}."
            )
        self._validate_lineage(size_factor)
        self._validate_cross(size_factor)
        if (
            isinstance(self.batch, bool)
            or not isinstance(self.batch, int)
            or not 1 <= self.batch <= MAX_BATCH
        ):
            raise RecipeError(f"The batch size must be a whole number from 1 to {MAX_BATCH}.")
        return self

    def _validate_init(self) -> None:
        if not _finite(self.strength) or not 0.0 <= self.strength <= 1.0:
            raise RecipeError("The strength must be a number from 0 to 1.")
        for name in ("init_image", "mask"):
            value = getattr(self, name)
            if value and not _SHA256.fullmatch(value):
                raise RecipeError(f"The {name.replace('_', ' ')} must be named by a sha256 hash.")
        if not self.init_image and (self.mask or self.strength != 1.0):
            raise RecipeError("A strength below 1 or a mask needs an init image.")

    def _validate_genome(self) -> None:
        if not isinstance(self.parents, tuple) or len(self.parents) > MAX_PARENTS:
            raise RecipeError(f"A recipe has at most {MAX_PARENTS} noise parents.")
        for seed, weight in self.parents:
            if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
                raise RecipeError("A noise parent's seed must be a whole number from 0 to 2^64-1.")
            if not _finite(weight) or weight <= 0.0:
                raise RecipeError("A noise parent's weight must be a number above 0.")
        if self.mutation_dose > 0.0 and self.mutation_seed is None:
            raise RecipeError("A mutation dose needs a mutation seed.")
        if not _finite(self.temperature) or not 0.0 < self.temperature <= MAX_TEMPERATURE:
            raise RecipeError(f"The temperature must be above 0 and at most {MAX_TEMPERATURE:g}.")

    def _validate_prompt_mix(self) -> None:
        if not isinstance(self.prompt_mix, tuple) or len(self.prompt_mix) > MAX_PARENTS:
            raise RecipeError(f"A recipe mixes at most {MAX_PARENTS} prompts.")
        for text, weight in self.prompt_mix:
            if not isinstance(text, str) or len(text) > MAX_PROMPT_CHARS:
                raise RecipeError(f"A mixed prompt is longer than {MAX_PROMPT_CHARS} characters.")
            if not _finite(weight) or weight <= 0.0:
                raise RecipeError("A mixed prompt's weight must be a number above 0.")

    def _validate_lineage(self, size_factor: int) -> None:
        if len(self.lineage) > MAX_LINEAGE:
            raise RecipeError(f"A lineage holds at most {MAX_LINEAGE} branch points.")
        previous = -1
        for point in self.lineage:
            base = point.recipe
            if base.lineage:
                raise RecipeError("A lineage's recipes carry no lineage of their own.")
            if (base.steps, base.sampler, base.width, base.height) != (
                self.steps,
                self.sampler,
                self.width,
                self.height,
            ):
                raise RecipeError("A branch keeps its parent's steps, sampler and size.")
            step = point.step_index
            if (
                isinstance(step, bool)
                or not isinstance(step, int)
                or not previous < step < self.steps
            ):
                raise RecipeError(
                    "A lineage's branch steps must rise, each within the run's steps."
                )
            previous = step
            base.validate(size_factor)

    def _validate_cross(self, size_factor: int) -> None:
        point = self.cross
        if point is None:
            return
        if self.lineage:
            raise RecipeError("A branch keeps its cross in the first recipe of its lineage.")
        if not isinstance(point.parents, tuple) or len(point.parents) != 2:
            raise RecipeError("A cross at a step has exactly two parents.")
        step = point.step_index
        if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step < self.steps - 1:
            raise RecipeError(
                f"The cross step must be from 1 to {self.steps - 1}, leaving a step to run."
            )
        seed = point.seed
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
            raise RecipeError("The cross's noise seed must be a whole number from 0 to 2^64-1.")
        if not _finite(point.dose) or not 0.0 <= point.dose <= 1.0:
            raise RecipeError("The cross's dose must be between 0 and 1.")
        for parent, weight in point.parents:
            if not _finite(weight) or weight <= 0.0:
                raise RecipeError("A crossed parent's weight must be a number above 0.")
            check_crossable(self, parent, step, models=False)
            parent.validate(size_factor)

    # ---- A1111 "parameters" text -----------------------------------------

    def to_parameters(self, model_hash: str | None = None) -> str:
        """Render AUTOMATIC1111's ``parameters`` text (see REFERENCE.md)."""
        lines = [self.prompt]
        if self.negative_prompt:
            lines.append(f"Negative prompt: {self.negative_prompt}")
        sampler, schedule = _a1111_sampler(self.sampler)
        pairs: list[tuple[str, Any]] = [
            ("Steps", self.steps),
            ("Sampler", sampler),
            ("Schedule type", schedule),
            ("CFG scale", _number(self.guidance)),
            ("Seed", self.seed),
            ("Size", f"{self.width}x{self.height}"),
            ("Model hash", model_hash),
            ("Model", self.model),
        ]
        if self.variation_seed is not None and self.variation_strength > 0:
            pairs += [
                ("Variation seed", self.variation_seed),
                ("Variation seed strength", _number(self.variation_strength)),
            ]
        if self.renoise_seed is not None and self.renoise_strength > 0:
            pairs += [
                ("Branch noise seed", self.renoise_seed),
                ("Branch noise strength", _number(self.renoise_strength)),
            ]
        if self.parents:
            pairs.append(("Noise parents", _parents_text(self.parents)))
        if self.mutation_seed is not None and self.mutation_dose > 0:
            pairs += [
                ("Mutation seed", self.mutation_seed),
                ("Mutation dose", _number(self.mutation_dose)),
            ]
        if self.temperature != 1.0:
            pairs.append(("Temperature", _number(self.temperature)))
        if self.prompt_mix:
            weights = ":".join(_number(w) for _, w in self.prompt_mix)
            pairs.append(("Prompt mix", f"{len(self.prompt_mix)} prompts, weights {weights}"))
        if self.init_image:
            pairs += [
                ("Denoising strength", _number(self.strength)),
                ("Init image hash", self.init_image),
                ("Mask hash", self.mask or None),
            ]
        parent = self.parent
        if parent is not None:
            pairs.append(("Branch", f"step {self.branch_step + 1} of {parent.short_hash()}"))
        root = self.lineage[0].recipe if self.lineage else self
        if root.cross is not None:
            first, second = (r.short_hash() for r, _ in root.cross.parents)
            pairs.append(("Cross", f"step {root.cross.step_index + 1} of {first} and {second}"))
        pairs.append(("Version", "Noise Studio"))
        lines.append(", ".join(f"{k}: {_quote(v)}" for k, v in pairs if v is not None))
        return "\n".join(lines)

    @classmethod
    def from_parameters(cls, text: str, notes: list[str] | None = None) -> Recipe:
        """Parse A1111 ``parameters`` text as data. Unknown keys are ignored.

        Linear in the length of the text. The last line is the parameter line when
        it holds three or more ``key: value`` pairs, is at most
        ``MAX_PARAMETER_LINE_CHARS`` long, and (when it is the only line, so it
        could as well be a prompt) names every key of ``A1111_REQUIRED_KEYS``.
        Prompts are capped as in :meth:`from_dict`.
        """
        if not isinstance(text, str):
            raise RecipeError("The parameters text is not a string.")
        if len(text) > MAX_PARAMETERS_CHARS:
            raise RecipeError(
                f"The parameters text is longer than {MAX_PARAMETERS_CHARS} characters."
            )
        lines = text.strip("\n").split("\n")
        params: dict[str, str] = {}
        if len(lines[-1]) <= MAX_PARAMETER_LINE_CHARS:
            pairs = parameter_pairs(lines[-1])
            keys = {k for k, _ in pairs}
            if len(pairs) >= 3 and (len(lines) > 1 or keys.issuperset(A1111_REQUIRED_KEYS)):
                params = {k: _unquote(v) for k, v in pairs}
                lines = lines[:-1]
        prompt_lines: list[str] = []
        negative_lines: list[str] = []
        in_negative = False
        for line in lines:
            if line.startswith("Negative prompt:"):
                in_negative = True
                line = line[len("Negative prompt:") :].lstrip(" ")
            (negative_lines if in_negative else prompt_lines).append(line)
        data: dict[str, Any] = {
            "prompt": "\n".join(prompt_lines).strip(),
            "negative_prompt": "\n".join(negative_lines).strip(),
        }
        if "Steps" in params:
            data["steps"] = params["Steps"]
        if "Sampler" in params:
            data["sampler"] = _our_sampler(params["Sampler"], params.get("Schedule type"))
        if "CFG scale" in params:
            data["guidance"] = params["CFG scale"]
        if "Seed" in params:
            data["seed"] = params["Seed"]
        if "Size" in params:
            match = re.fullmatch(r"\s*(\d+)\s*x\s*(\d+)\s*", params["Size"])
            if not match:
                raise RecipeError(f"The size {params['Size']!r} is not of the form WxH.")
            data["width"], data["height"] = match.group(1), match.group(2)
        if "Model" in params:
            data["model"] = params["Model"]
        if "Variation seed" in params:
            data["variation_seed"] = params["Variation seed"]
            data["variation_strength"] = params.get("Variation seed strength", "0")
        if "Branch noise seed" in params:
            data["renoise_seed"] = params["Branch noise seed"]
            data["renoise_strength"] = params.get("Branch noise strength", "0")
        if "Noise parents" in params:
            data["parents"] = parse_parents(params["Noise parents"])
        if "Mutation seed" in params:
            data["mutation_seed"] = params["Mutation seed"]
            data["mutation_dose"] = params.get("Mutation dose", "0")
        if "Temperature" in params:
            data["temperature"] = params["Temperature"]
        if "Init image hash" in params:
            data["init_image"] = params["Init image hash"]
            data["strength"] = params.get("Denoising strength", "1")
            data["mask"] = params.get("Mask hash", "")
        if "Branch" in params and notes is not None:
            notes.append(
                f"The image is a branch ({params['Branch']}); its parameters text alone does not "
                "reproduce it, its Noise Studio recipe does."
            )
        if "Prompt mix" in params and notes is not None:
            notes.append(
                f"The image mixes prompts ({params['Prompt mix']}); its parameters text alone "
                "does not reproduce it, its Noise Studio recipe does."
            )
        if "Cross" in params and notes is not None:
            notes.append(
                f"The image is a cross ({params['Cross']}); its parameters text alone does not "
                "reproduce it, its Noise Studio recipe does."
            )
        return cls(**_capped(_coerce(data), notes))


def check_crossable(child: Recipe, parent: Recipe, step_index: int, models: bool = True) -> None:
    """Raise RecipeError unless ``parent`` can be crossed into ``child`` after ``step_index``:
    the same model, size, steps and sampler, and a run that computes that step itself.

    ``models`` False skips the model names, as a lineage's check does: a recipe read
    from an image names its models, and whoever runs it loads one for all."""
    if (
        parent.model if models else "",
        parent.width,
        parent.height,
        parent.steps,
        parent.sampler,
    ) != (
        child.model if models else "",
        child.width,
        child.height,
        child.steps,
        child.sampler,
    ):
        raise RecipeError(
            "Two versions cross at a step only with the same model, size, steps and sampler."
        )
    first = parent.branch_step + 1 if parent.lineage else 0
    if parent.init_image:
        from studio.engine.init_pixels import start_index

        first = max(first, start_index(parent.steps, parent.strength))
    if parent.cross is not None:
        first = max(first, parent.cross.step_index + 1)
    if step_index < first:
        raise RecipeError(
            f"A crossed parent starts at step {first + 1}, after the cross step {step_index + 1}."
        )


def image_hash(pixels: Any) -> str:
    """The content hash a recipe names an image (H×W×3) or mask (H×W) by."""
    import numpy as np

    array = np.ascontiguousarray(pixels, dtype=np.uint8)
    if array.ndim == 3 and array.shape[2] == 3:
        kind = "RGB"
    elif array.ndim == 2:
        kind = "L"
    else:
        raise RecipeError(
            "An init image is RGB (height×width×3) and a mask is grey (height×width)."
        )
    header = f"{kind} {array.shape[1]}x{array.shape[0]}\n".encode("ascii")
    return hashlib.sha256(header + array.tobytes()).hexdigest()


def model_name(ref: str) -> str:
    """The name a model reference is shown and shared by, never a local path.

    "bundled" stays; "hf:org/name" and a folder inside the Hugging Face cache
    (``…/models--org--name/snapshots/<hash>``) are "org/name"; a file is its stem
    ("sd15.safetensors" → "sd15") and a folder its name, as A1111 names models.
    """
    if ref == BUNDLED_MODEL or not ref:
        return ref
    if ref.startswith("hf:"):
        return ref[3:]
    parts = re.split(r"[\\/]+", ref.rstrip("/\\"))
    for part in reversed(parts):
        if part.startswith("models--") and part.count("--") >= 2:
            return part.removeprefix("models--").replace("--", "/", 1)
    last = parts[-1] if parts else ref
    return re.sub(r"\.safetensors$", "", last, flags=re.IGNORECASE) or ref


def parameter_pairs(line: str) -> list[tuple[str, str]]:
    """The ``key: value`` pairs of an A1111 parameter line, in one pass (linear time).

    A value is a JSON string followed by a comma or the end, or else runs to the
    next comma. A key is the run of key characters just before a colon, starting
    at a word character; text before it is skipped, as A1111's own reader does.
    Values are returned as written (quoted ones still quoted).
    """
    pairs: list[tuple[str, str]] = []
    pos, end = 0, len(line)
    while pos < end:
        colon = line.find(":", pos)
        if colon < 0:
            break
        run = len(_KEY_RUN_REVERSED.match(line[colon - 1 : pos - 1 if pos else None : -1])[0])
        first_word = _WORD.search(line, colon - run, colon)
        if first_word is None:
            pos = colon + 1  # no key before this colon: look for one after it
            continue
        key = line[first_word.start() : colon].strip()
        start = colon + 1
        while start < end and line[start].isspace():
            start += 1
        quoted = _QUOTED.match(line, start)
        if quoted and (quoted.end() == end or line[quoted.end()] == ","):
            value, pos = quoted[0], quoted.end() + 1
        else:
            comma = line.find(",", start)
            comma = end if comma < 0 else comma
            value, pos = line[start:comma], comma + 1
        pairs.append((key, value))
    return pairs


def parse_parents(text: str) -> tuple[tuple[int, float], ...]:
    """Noise parents written as ``seed:weight`` pairs, joined by commas ("11:1,22:0.5")."""
    parents = []
    for item in text.replace(" ", "").split(","):
        seed, sep, weight = item.partition(":")
        try:
            parents.append((int(seed), float(weight) if sep else 1.0))
        except ValueError:
            raise RecipeError(
                f"Noise parents are seed:weight pairs like 11:1,22:0.5, not {text[:40]!r}."
            ) from None
    return tuple(parents)


def _parents_text(parents: tuple[tuple[int, float], ...]) -> str:
    return ",".join(f"{seed}:{_number(weight)}" for seed, weight in parents)


# Read backwards from a colon: the characters a key may hold. Both patterns can
# only advance, so each character of a line is looked at a bounded number of times.
_KEY_RUN_REVERSED = re.compile(r"[\w \-/+().]*")
_WORD = re.compile(r"\w")
_QUOTED = re.compile(r'"(?:\\.|[^\\"])*"')

_INT_FIELDS = {
    "seed",
    "steps",
    "width",
    "height",
    "variation_seed",
    "renoise_seed",
    "mutation_seed",
    "batch",
}
_FLOAT_FIELDS = {
    "guidance",
    "variation_strength",
    "renoise_strength",
    "mutation_dose",
    "temperature",
    "strength",
}
_OPTIONAL_DEFAULTS: dict[str, Any] = {
    "parents": (),
    "mutation_seed": None,
    "mutation_dose": 0.0,
    "temperature": 1.0,
    "lineage": (),
    "batch": 1,
    "init_image": "",
    "strength": 1.0,
    "mask": "",
    "cross": None,
    "prompt_mix": (),
}
"""Fields added after recipes were first written: left out of the JSON at these values."""
_STR_FIELDS = {
    "prompt",
    "negative_prompt",
    "sampler",
    "model",
    "model_config",
    "init_image",
    "mask",
}
_SHA256 = re.compile(r"[0-9a-f]{64}")


def _coerce(data: dict[str, Any]) -> dict[str, Any]:
    """Turn text or JSON numbers into the field types, with one clear error."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        try:
            if value is None and key in {"variation_seed", "renoise_seed", "mutation_seed"}:
                out[key] = None
            elif key == "parents":
                out[key] = _coerce_parents(value)
            elif key == "lineage":
                out[key] = _coerce_lineage(value)
            elif key == "cross":
                out[key] = _coerce_cross(value)
            elif key == "prompt_mix":
                out[key] = _coerce_prompt_mix(value)
            elif key in _INT_FIELDS:
                if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                    raise ValueError
                out[key] = int(str(value).strip()) if isinstance(value, str) else int(value)
            elif key in _FLOAT_FIELDS:
                if isinstance(value, bool):
                    raise ValueError
                out[key] = float(value)
            elif key in _STR_FIELDS:
                if not isinstance(value, str):
                    raise ValueError
                out[key] = value
            else:
                out[key] = value
        except (TypeError, ValueError, OverflowError):
            raise RecipeError(
                f"The recipe field {key!r} has an invalid value {str(value)[:40]!r}."
            ) from None
    return out


def _coerce_parents(value: Any) -> tuple[tuple[int, float], ...]:
    return _weighted_pairs(value, lambda seed: isinstance(seed, int) and not isinstance(seed, bool))


def _coerce_prompt_mix(value: Any) -> tuple[tuple[str, float], ...]:
    return _weighted_pairs(value, lambda text: isinstance(text, str))


def _weighted_pairs(value: Any, key_ok: Callable[[Any], bool]) -> tuple[tuple[Any, float], ...]:
    """(key, weight) pairs from a tuple of pairs or their JSON lists (at most MAX_PARENTS);
    raises ValueError for any other shape, a key ``key_ok`` refuses or a weight not a number."""
    if isinstance(value, tuple) and all(isinstance(p, tuple) for p in value):
        pairs = value
    elif isinstance(value, list) and len(value) <= MAX_PARENTS:
        pairs = tuple(tuple(p) if isinstance(p, list) else p for p in value)
    else:
        raise ValueError
    out = []
    for pair in pairs:
        if not isinstance(pair, tuple) or len(pair) != 2:
            raise ValueError
        key, weight = pair
        if not key_ok(key):
            raise ValueError
        if isinstance(weight, bool) or not isinstance(weight, (int, float)):
            raise ValueError
        out.append((key, float(weight)))
    return tuple(out)


def _coerce_lineage(value: Any) -> tuple[BranchPoint, ...]:
    if isinstance(value, tuple) and all(isinstance(p, BranchPoint) for p in value):
        return value
    if not isinstance(value, list) or len(value) > MAX_LINEAGE:
        raise ValueError
    points = []
    for item in value:
        if not isinstance(item, dict) or set(item) != {"recipe", "step_index"}:
            raise ValueError
        step = item["step_index"]
        if isinstance(step, bool) or not isinstance(step, int):
            raise ValueError
        recipe = item["recipe"]
        if not isinstance(recipe, dict) or "lineage" in recipe:
            raise ValueError
        points.append(BranchPoint(Recipe.from_dict(recipe), step))
    return tuple(points)


def _coerce_cross(value: Any) -> CrossPoint | None:
    if value is None or isinstance(value, CrossPoint):
        return value
    if not isinstance(value, dict) or set(value) != {"parents", "step_index", "seed", "dose"}:
        raise ValueError
    parents = value["parents"]
    if not isinstance(parents, list) or len(parents) != 2:
        raise ValueError
    pairs = []
    for item in parents:
        if not isinstance(item, dict) or set(item) != {"recipe", "weight"}:
            raise ValueError
        weight = item["weight"]
        if isinstance(weight, bool) or not isinstance(weight, (int, float)):
            raise ValueError
        pairs.append((Recipe.from_dict(item["recipe"]), float(weight)))
    step, seed, dose = value["step_index"], value["seed"], value["dose"]
    for number in (step, seed):
        if isinstance(number, bool) or not isinstance(number, int):
            raise ValueError
    if isinstance(dose, bool) or not isinstance(dose, (int, float)):
        raise ValueError
    return CrossPoint(tuple(pairs), step, seed, float(dose))


def _capped(data: dict[str, Any], notes: list[str] | None) -> dict[str, Any]:
    for key, label in (("prompt", "prompt"), ("negative_prompt", "negative prompt")):
        value = data.get(key)
        if isinstance(value, str) and len(value) > MAX_PROMPT_CHARS:
            data[key] = value[:MAX_PROMPT_CHARS]
            if notes is not None:
                notes.append(
                    f"The {label} was {len(value):,} characters long; "
                    f"only its first {MAX_PROMPT_CHARS:,} were kept."
                )
    return data


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _number(value: float) -> str:
    return f"{value:g}"


def _quote(value: Any) -> str:
    text = str(value)
    if any(ch in text for ch in ',:\n"') or text != text.strip():
        return json.dumps(text, ensure_ascii=False)
    return text


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        try:
            decoded = json.loads(value)
        except ValueError:
            return value
        return decoded if isinstance(decoded, str) else value
    return value


def _a1111_sampler(name: str) -> tuple[str, str | None]:
    if name.endswith(_A1111_KARRAS_SUFFIX):
        return name[: -len(_A1111_KARRAS_SUFFIX)], "Karras"
    return name, None


def _our_sampler(name: str, schedule: str | None) -> str:
    name = name.strip()
    if name.endswith(_A1111_KARRAS_SUFFIX):  # older A1111 spelled it "DPM++ 2M Karras"
        return name
    if schedule and schedule.strip().lower() == "karras":
        return name + _A1111_KARRAS_SUFFIX
    return name
