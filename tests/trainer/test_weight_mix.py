"""WiSE-FT: the saved weights are a share of the fine-tuned ones and the rest the starting checkpoint's."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file
from transformers import BertConfig, BertForSequenceClassification

from trainer import TrainConfig, train
from trainer.config import TrainingError
from trainer.weight_mix import mix_weights, starting_weights

SENTIMENT = {0: "부정", 1: "긍정"}


def tiny_classifier(seed: int) -> BertForSequenceClassification:
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=50, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16
    )
    return BertForSequenceClassification(config)


def test_each_floating_tensor_is_the_share_of_the_fine_tuned_and_the_rest_of_the_start():
    fine, start = tiny_classifier(1), tiny_classifier(2)
    before = {key: tensor.clone() for key, tensor in fine.state_dict().items()}
    # Layer norms start at 1 and biases at 0 in both: move every tensor of the start so each one differs.
    start_state = {
        key: tensor + torch.randn_like(tensor) if tensor.is_floating_point() else tensor
        for key, tensor in start.state_dict().items()
    }
    mix_weights(fine, start_state, fine_tuned_share=0.25)
    after = fine.state_dict()
    floating = [key for key, tensor in before.items() if tensor.is_floating_point()]
    assert "classifier.weight" in floating and "bert.embeddings.word_embeddings.weight" in floating
    for key in floating:
        assert not torch.equal(before[key], start_state[key])
        torch.testing.assert_close(after[key], 0.25 * before[key] + 0.75 * start_state[key])
    for key in set(before) - set(floating):  # integer buffers (token positions) stay as they were
        assert torch.equal(after[key], before[key])


@pytest.mark.parametrize("share", [0.0, -0.5, 1.5])
def test_a_share_outside_zero_to_one_is_refused(share, tmp_path: Path):
    with pytest.raises(ValueError, match="fine_tuned_share"):
        mix_weights(tiny_classifier(1), tiny_classifier(2).state_dict(), fine_tuned_share=share)
    with pytest.raises(TrainingError, match="--fine-tuned-share"):
        TrainConfig(output=tmp_path / "out", fine_tuned_share=share)


def test_only_a_classifier_over_the_same_labels_gives_starting_weights(scratch_model_dir, e5_model_dir):
    model = BertForSequenceClassification.from_pretrained(scratch_model_dir)
    state = starting_weights(str(scratch_model_dir), SENTIMENT, model)
    assert isinstance(state, dict) and torch.equal(state["classifier.weight"], model.classifier.weight)

    toxicity = starting_weights(str(scratch_model_dir), {0: "정상", 1: "공격적", 2: "혐오"}, model)
    assert isinstance(toxicity, str) and "not a classifier over" in toxicity
    bare_encoder = starting_weights(str(e5_model_dir), SENTIMENT, model)
    assert isinstance(bare_encoder, str) and "not a classifier over" in bare_encoder


def test_a_run_from_a_classifier_saves_the_mix_and_fits_its_calibration_to_it(
    scratch_model_dir, nsmc_train_frame, tmp_path: Path
):
    rows = nsmc_train_frame.sample(n=700, random_state=3)
    data = tmp_path / "reviews.csv"
    pd.DataFrame({"text": rows["document"], "label": rows["label"]}).to_csv(data, index=False)

    def run(share: float) -> tuple[dict, dict[str, torch.Tensor]]:
        output = tmp_path / f"share-{share}"
        metrics = train(
            TrainConfig(
                output=output,
                base=str(scratch_model_dir),
                data=data,
                train_size=500,
                eval_size=200,
                epochs=1,
                batch_size=32,
                learning_rate=1e-3,  # far enough from the start that the mix is unlike either end
                fine_tuned_share=share,
                seed=5,
            )
        )
        return metrics, load_file(output / "model.safetensors")

    fine_metrics, fine = run(1.0)
    mixed_metrics, mixed = run(0.4)
    start = load_file(scratch_model_dir / "model.safetensors")
    assert fine_metrics["weight_mix"] == {"requested": 1.0, "applied": 1.0}
    assert mixed_metrics["weight_mix"] == {"requested": 0.4, "applied": 0.4}
    # The encoder is the mix; the head too, but each run bakes its own fitted temperature into it.
    encoder = [key for key in start if not key.startswith("classifier.") and start[key].is_floating_point()]
    assert encoder
    moved = 0
    for key in encoder:
        torch.testing.assert_close(mixed[key], 0.4 * fine[key] + 0.6 * start[key], rtol=1e-4, atol=1e-5)
        moved += int(not torch.allclose(fine[key], start[key]))
    assert moved > len(encoder) // 2  # training moved the weights, so the check above is not start == fine
    # The temperature and held-out figures are the saved weights', not the fine-tuned ones'.
    assert mixed_metrics["calibration"]["temperature"] != fine_metrics["calibration"]["temperature"]
    assert mixed_metrics["loss"] != fine_metrics["loss"]


def test_a_bare_encoder_base_trains_as_before_and_says_why_nothing_was_mixed(e5_model_dir, tmp_path: Path):
    from trainer.training import _mix_with_base

    config = TrainConfig(output=tmp_path / "out", base=str(e5_model_dir), fine_tuned_share=0.6)
    model = BertForSequenceClassification.from_pretrained(e5_model_dir, num_labels=2)
    record = _mix_with_base(config, SENTIMENT, model)
    assert record["applied"] == 1.0 and record["requested"] == 0.6
    assert record["not_applied"].startswith("the base checkpoint cannot be mixed: it is not a classifier")
    scratch = _mix_with_base(
        TrainConfig(output=tmp_path / "o", base="scratch", fine_tuned_share=0.5), SENTIMENT, model
    )
    assert scratch == {
        "requested": 0.5,
        "applied": 1.0,
        "not_applied": "a scratch model has no starting weights",
    }
