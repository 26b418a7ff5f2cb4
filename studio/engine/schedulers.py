"""Sampler names → diffusers schedulers, and exact snapshots of scheduler state.

A diffusers scheduler keeps mutable state between ``step`` calls: the step
counter and, for multistep solvers, a history of model outputs. ``set_timesteps``
resets all of it, so resuming exactly means restoring that state verbatim
(see REFERENCE.md, "Diffusers facts"). ``snapshot`` takes it after a step and
``restore`` puts it back into a freshly built scheduler.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from studio.engine.errors import CheckpointError

if TYPE_CHECKING:  # diffusers is imported only when a scheduler is built: the names stay cheap
    import torch
    from diffusers.schedulers.scheduling_utils import SchedulerMixin


@dataclass(frozen=True)
class SamplerSpec:
    """How one user-facing sampler name maps onto a diffusers scheduler."""

    scheduler: str  # a diffusers scheduler class name
    options: tuple[tuple[str, Any], ...] = ()
    noise: str | None = (
        None  # "generator": ancestral noise via a per-step generator; "variance": SDE noise passed in
    )
    sigma_space: bool = (
        False  # latents live in sigma space (x = x0 + sigma * eps) rather than VP space
    )


_SPECS: dict[str, SamplerSpec] = {
    "Euler": SamplerSpec("EulerDiscreteScheduler", sigma_space=True),
    "Euler a": SamplerSpec("EulerAncestralDiscreteScheduler", noise="generator", sigma_space=True),
    "DDIM": SamplerSpec("DDIMScheduler", (("set_alpha_to_one", False), ("clip_sample", False))),
    "DPM++ 2M": SamplerSpec(
        "DPMSolverMultistepScheduler", (("algorithm_type", "dpmsolver++"), ("solver_order", 2))
    ),
    "DPM++ 2M Karras": SamplerSpec(
        "DPMSolverMultistepScheduler",
        (("algorithm_type", "dpmsolver++"), ("solver_order", 2), ("use_karras_sigmas", True)),
    ),
    "UniPC": SamplerSpec("UniPCMultistepScheduler"),
    "DPM++ 2M SDE": SamplerSpec(
        "DPMSolverMultistepScheduler",
        (("algorithm_type", "sde-dpmsolver++"), ("solver_order", 2)),
        noise="variance",
    ),
    "DPM++ 2M SDE Karras": SamplerSpec(
        "DPMSolverMultistepScheduler",
        (("algorithm_type", "sde-dpmsolver++"), ("solver_order", 2), ("use_karras_sigmas", True)),
        noise="variance",
    ),
}

SAMPLERS: tuple[str, ...] = tuple(_SPECS)
DEFAULT_SAMPLER = "Euler a"

# Attributes that diffusers schedulers change between steps. Everything else is
# rebuilt identically by ``set_timesteps``.
_STATE_KEYS = (
    "_step_index",
    "_begin_index",
    "model_outputs",
    "lower_order_nums",
    "timestep_list",
    "last_sample",
    "this_order",
    "sample",
    "prev_derivative",
    "dt",
)
# Not changed by a step, but recorded so that a resume can tell a run of another length.
_RUN_LENGTH = "num_inference_steps"
# What a multistep solver first sets in ``step``, so a fresh one lacks it.
_SET_BY_STEP = ("this_order", "last_sample", "sample", "prev_derivative", "dt")
STATE_KEYS: tuple[str, ...] = (*_STATE_KEYS, _RUN_LENGTH)
"""Every key a scheduler snapshot may hold."""


def sampler_spec(name: str) -> SamplerSpec:
    try:
        return _SPECS[name]
    except KeyError:
        raise ValueError(
            f"Unknown sampler {name!r}; choose one of: {', '.join(SAMPLERS)}."
        ) from None


def build_scheduler(
    name: str, base_config: dict[str, Any], steps: int, device: torch.device
) -> SchedulerMixin:
    """A fresh scheduler for ``name`` built from the model's scheduler config, with timesteps set."""
    spec = sampler_spec(name)
    config = {k: v for k, v in base_config.items() if not k.startswith("_")}
    # Options a model's config may carry that would change the named sampler's maths.
    for key in (
        "use_karras_sigmas",
        "algorithm_type",
        "solver_order",
        "use_exponential_sigmas",
        "use_beta_sigmas",
    ):
        config.pop(key, None)
    config.update(dict(spec.options))
    import diffusers

    scheduler = getattr(diffusers, spec.scheduler).from_config(config)
    scheduler.set_timesteps(steps, device=device)
    return scheduler


def snapshot(scheduler: SchedulerMixin) -> dict[str, Any]:
    """The scheduler's mutable state, by reference (diffusers never mutates these tensors in place)."""
    state: dict[str, Any] = {}
    for key in STATE_KEYS:
        if key in scheduler.__dict__:
            value = scheduler.__dict__[key]
            state[key] = list(value) if isinstance(value, list) else value
    return state


def restore(
    scheduler: SchedulerMixin, state: dict[str, Any], device: torch.device, dtype: torch.dtype
) -> None:
    """Put a snapshot back into a scheduler that was freshly built with the same steps.

    Raises ``CheckpointError`` (see ``check_state``) before changing anything."""
    check_state(scheduler, state)
    for key, value in state.items():
        if key != _RUN_LENGTH:
            setattr(scheduler, key, _to_device(value, device))


def check_state(scheduler: SchedulerMixin, state: dict[str, Any]) -> None:
    """Refuse a snapshot that this freshly built scheduler could not have made.

    Every key must be one the scheduler keeps, the run length and step counter must
    fit its timesteps, and a multistep history must have the solver's length.
    Shapes and values against the latent are ``Checkpoint``'s to check."""
    import torch

    fresh = scheduler.__dict__
    steps = len(scheduler.timesteps)

    def refuse(detail: str) -> CheckpointError:
        return CheckpointError(f"The checkpoint's sampler state does not fit this run ({detail}).")

    for key, value in state.items():
        made_by_a_step = key in _SET_BY_STEP and "model_outputs" in fresh
        if key not in STATE_KEYS or (key not in fresh and not made_by_a_step):
            raise refuse(f"{str(key)[:40]!r} is not kept by {type(scheduler).__name__}")
        if key == _RUN_LENGTH and value != steps:
            raise refuse(f"it was made for {value} steps, not {steps}")
        if key in ("_step_index", "lower_order_nums", "this_order", "_begin_index"):
            if value is None and key in ("_begin_index", "_step_index"):
                continue
            if not _is_int(value) or not 0 <= value <= steps:
                raise refuse(f"{key} is {str(value)[:20]}")
        elif key in ("model_outputs", "timestep_list"):
            history = fresh[key]
            if not isinstance(value, list) or len(value) != len(history):
                length = len(value) if isinstance(value, list) else "no"
                raise refuse(f"{key} holds {length} entries, not {len(history)}")
            if not all(v is None or isinstance(v, torch.Tensor) for v in value):
                raise refuse(f"{key} holds something other than tensors")
        elif key in ("last_sample", "sample", "prev_derivative") and not (
            value is None or isinstance(value, torch.Tensor)
        ):
            raise refuse(f"{key} is not a tensor")
    order = scheduler.config.get("solver_order")
    for key in ("lower_order_nums", "this_order"):
        if order is not None and _is_int(state.get(key)) and state[key] > order:
            raise refuse(f"{key} is {state[key]}, above the solver order {order}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _to_device(value: Any, device: torch.device) -> Any:
    import torch

    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, list):
        return [_to_device(v, device) for v in value]
    return value


def noise_levels(scheduler: SchedulerMixin, sampler: str, index: int) -> tuple[float, float]:
    """(a, s) such that the latent at timestep ``index`` is ``a * x0 + s * eps``.

    ``index == len(timesteps)`` means the end of the run (no noise left).
    """
    spec = sampler_spec(sampler)
    sigmas = getattr(scheduler, "sigmas", None)
    if sigmas is not None and index < len(sigmas):
        sigma = float(sigmas[index])
        if spec.sigma_space:
            return 1.0, sigma
        alpha = 1.0 / (sigma * sigma + 1.0) ** 0.5
        return alpha, sigma * alpha
    if index >= len(scheduler.timesteps):
        return 1.0, 0.0
    alpha_bar = float(scheduler.alphas_cumprod[int(scheduler.timesteps[index])])
    return alpha_bar**0.5, (1.0 - alpha_bar) ** 0.5
