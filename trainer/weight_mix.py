"""The saved model as a mix of the fine-tuned weights and the starting checkpoint's (WiSE-FT).

Fine-tuned on a few hundred corrections, a classifier learns what they teach and, with it, the words they share
("1점 -> 긍정"), breaking the reviews of the other class that hold them. Averaging the weights of the start and the
end of the run (Wortsman et al., "Robust fine-tuning of zero-shot models", CVPR 2022) measured better than either
end on the learning-loop benchmark's candidates: part of the way back gave back more of the 부정 reviews naming 1점
than it lost of the pattern the run fixed (docs/benchmarks.md, the learning loop; bench/bench_weight_mix.py).

Only when the starting checkpoint is itself a classifier over the same labels, with the same parameters: a bare
encoder's new head has nothing to be averaged with.
"""

from __future__ import annotations

import logging

import torch

logger = logging.getLogger(__name__)


def starting_weights(
    base: str, id2label: dict[int, str], model: torch.nn.Module
) -> dict[str, torch.Tensor] | str:
    """The state of checkpoint `base` when it is a classifier over exactly `id2label` with `model`'s parameters
    (names and shapes); otherwise a sentence saying why the weights cannot be mixed."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    try:
        config = AutoConfig.from_pretrained(base)
    except (OSError, ValueError) as error:
        return f"its config cannot be read ({error.__class__.__name__})"
    labels = {int(key): name for key, name in (getattr(config, "id2label", None) or {}).items()}
    if labels != id2label:
        return (
            f"it is not a classifier over {sorted(id2label.values())} (its labels: {sorted(labels.values())})"
        )
    state = AutoModelForSequenceClassification.from_pretrained(base).state_dict()
    own = model.state_dict()
    if state.keys() != own.keys() or any(state[key].shape != own[key].shape for key in own):
        return "its parameters differ from the trained model's"
    return state


def mix_weights(model: torch.nn.Module, start: dict[str, torch.Tensor], *, fine_tuned_share: float) -> None:
    """In place: every floating-point tensor of `model` becomes share x its own + (1 - share) x `start`'s.
    Integer buffers (token positions, ids) are the same in both and stay."""
    if not 0.0 < fine_tuned_share <= 1.0:
        raise ValueError(f"fine_tuned_share must be in (0, 1], got {fine_tuned_share}")
    mixed: set[int] = set()  # tied parameters share one storage: mix it once
    with torch.no_grad():
        for key, tensor in model.state_dict().items():
            if tensor.is_floating_point() and tensor.data_ptr() not in mixed:
                mixed.add(tensor.data_ptr())
                tensor.mul_(fine_tuned_share).add_(
                    start[key].to(tensor.device, tensor.dtype), alpha=1.0 - fine_tuned_share
                )
