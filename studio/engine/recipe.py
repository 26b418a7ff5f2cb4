"""The Recipe: everything that defines a generation, and nothing else.

A Recipe is immutable. It is the history entry of a version, the metadata
written into exported images, and the key that reproduces an image exactly.
It round-trips through JSON and through AUTOMATIC1111's ``parameters`` text.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, fields, replace
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
A1111_REQUIRED_KEYS = ("Steps", "Sampler", "Seed")
"""Keys A1111 writes on every parameter line; a lone line is parameters only if it has them all."""

# A1111 spells some of our sampler names as a base name plus "Schedule type".
_A1111_KARRAS_SUFFIX = " Karras"


class RecipeError(ValueError):
    """A recipe field holds a value the engine cannot run; the message says which."""


@dataclass(frozen=True)
class Recipe:
    """One generation, fully specified.

    ``variation_seed``/``variation_strength`` mix a second noise into the start
    noise (A1111's slerp). ``renoise_seed``/``renoise_strength`` only matter when
    a run resumes from a checkpoint: they replace part of the noise left in the
    latent at the branch point, so that a branch from a deterministic sampler
    can vary.
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

    # ---- JSON -------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

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
        return cls.from_dict(data, notes)

    def with_changes(self, **changes: Any) -> Recipe:
        return replace(self, **changes)

    # ---- validation -------------------------------------------------------

    def validate(self, size_factor: int = 8) -> Recipe:
        """Raise RecipeError with one clear sentence if a field is out of range."""
        if len(self.prompt) > MAX_PROMPT_CHARS or len(self.negative_prompt) > MAX_PROMPT_CHARS:
            raise RecipeError(f"The prompt is longer than {MAX_PROMPT_CHARS} characters.")
        for name in ("seed", "variation_seed", "renoise_seed"):
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
        if not _finite(self.guidance) or not 0.0 <= self.guidance <= 50.0:
            raise RecipeError("CFG scale must be a number from 0 to 50.")
        for name in ("variation_strength", "renoise_strength"):
            value = getattr(self, name)
            if not _finite(value) or not 0.0 <= value <= 1.0:
                raise RecipeError(f"The {name.replace('_', ' ')} must be between 0 and 1.")
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
        return self

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
        return cls(**_capped(_coerce(data), notes))


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


# Read backwards from a colon: the characters a key may hold. Both patterns can
# only advance, so each character of a line is looked at a bounded number of times.
_KEY_RUN_REVERSED = re.compile(r"[\w \-/+().]*")
_WORD = re.compile(r"\w")
_QUOTED = re.compile(r'"(?:\\.|[^\\"])*"')

_INT_FIELDS = {"seed", "steps", "width", "height", "variation_seed", "renoise_seed"}
_FLOAT_FIELDS = {"guidance", "variation_strength", "renoise_strength"}
_STR_FIELDS = {"prompt", "negative_prompt", "sampler", "model"}


def _coerce(data: dict[str, Any]) -> dict[str, Any]:
    """Turn text or JSON numbers into the field types, with one clear error."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        try:
            if value is None and key in {"variation_seed", "renoise_seed"}:
                out[key] = None
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
