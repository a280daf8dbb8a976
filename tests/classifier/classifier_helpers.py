"""Shared helpers for the classifier tests (imported by basename; tests/ has no __init__.py)."""

from __future__ import annotations

from pathlib import Path

ID2LABEL = {0: "부정", 1: "긍정"}

# Short, varied reviews: their probabilities differ, so a mix-up in output order is visible.
REVIEWS = [
    "정말 재밌어요",
    "최악의 영화. 시간 낭비였다",
    "배우들 연기가 훌륭하고 스토리도 탄탄해서 두 시간이 금방 지나갔습니다",
    "그냥 그랬음",
    "감독의 전작보다 훨씬 나아졌지만 결말이 아쉽다",
    "ㅋㅋㅋㅋ",
    "돈 아깝다 진짜",
    "올해 본 영화 중 최고! 꼭 보세요",
    "지루하고 뻔한 전개, 중간에 잠들었다",
    "음악이 좋았다",
]


def build_e5_classifier_dir(
    e5_model_dir: Path, output: Path, *, num_hidden_layers: int = 2, head_scale: float = 20.0, seed: int = 0
) -> Path:
    """The real e5 encoder with a fresh 2-label head, saved with its tokenizer like a model version.

    Only the first `num_hidden_layers` pretrained layers are kept: the mechanics under test (batching,
    order, truncation, threads) do not depend on depth, and 2 of 12 layers keep the tests fast on 2 cores.
    """
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as transformers_logging

    transformers_logging.set_verbosity_error()  # "newly initialized classifier weights" is expected here
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_pretrained(
        e5_model_dir,
        num_labels=len(ID2LABEL),
        id2label=ID2LABEL,
        label2id={name: label for label, name in ID2LABEL.items()},
        num_hidden_layers=num_hidden_layers,
        local_files_only=True,
    )
    with torch.no_grad():
        # A larger random head spreads the probabilities, so each test text gets clearly its own.
        model.classifier.weight.mul_(head_scale)
    model.save_pretrained(output)
    AutoTokenizer.from_pretrained(e5_model_dir, local_files_only=True).save_pretrained(output)
    return output
