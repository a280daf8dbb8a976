"""`train(config)`: fine-tune an encoder (or a scratch BERT) with Hugging Face `Trainer` into a model version
directory (see docs/architecture.md)."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    EarlyStoppingCallback,
    Trainer,
    TrainingArguments,
    set_seed,
)
from transformers.trainer_utils import EvalPrediction, PredictionOutput

from classifier.confidence_map import save_calibration_set
from trainer.callbacks import AbortOnNonFiniteLoss, JsonProgressCallback
from trainer.config import SCRATCH_DEFAULT_MAX_LENGTH, TrainConfig, TrainingError
from trainer.data import LabelledTexts, TrainingData, load_training_data
from trainer.report import classification_metrics, epoch_history, plot_training_curves
from trainer.scratch import build_scratch_model, build_scratch_tokenizer
from trainer.temperature import (
    bake_temperature,
    calibration_summary,
    confidence_map_summary,
    fit_confidence_map,
    fit_temperature,
)
from trainer.weight_mix import mix_weights, starting_weights

logger = logging.getLogger(__name__)

# Tokenizers without a real limit report a huge sentinel as model_max_length.
_UNBOUNDED_LENGTH = 100_000


def _check_config(config: TrainConfig) -> None:
    if config.output.exists() and (not config.output.is_dir() or any(config.output.iterdir())):
        raise TrainingError(
            f"Output {config.output} already exists and is not empty; choose a new version directory"
        )
    positive = {"epochs": config.epochs, "batch_size": config.batch_size, "extra_weight": config.extra_weight}
    for name, value in positive.items():
        if not value > 0:
            raise TrainingError(f"--{name.replace('_', '-')} must be positive, got {value}")
    local = None if config.is_scratch else _local_base(config.base)
    if local is not None and not local.is_dir():
        raise TrainingError(
            f"Base checkpoint folder not found: {config.base} (pass a folder with config.json, a hub name, or 'scratch')"
        )
    if not 0 <= config.warmup_ratio < 1:
        raise TrainingError(f"--warmup-ratio must be in [0, 1), got {config.warmup_ratio}")
    for name in ("train_size", "eval_size", "max_length"):
        value = getattr(config, name)
        if value is not None and value < 1:
            raise TrainingError(f"--{name.replace('_', '-')} must be at least 1, got {value}")


def _local_base(base: str) -> Path | None:
    """The checkpoint folder `base` names, or None for a hub name."""
    path = Path(base).expanduser()
    return path if base.startswith((".", "/", "~")) or path.exists() else None


def _base_name(base: str) -> str:
    """What `from_pretrained` is given for `base`: its local folder, else the hub name as it is."""
    local = _local_base(base)
    return str(local) if local is not None else base


def _load_pretrained(config: TrainConfig, id2label: dict[int, str]):
    """(tokenizer, model) for a hub name or local checkpoint; an unreachable hub becomes a clear TrainingError."""
    base = _base_name(config.base)
    try:
        tokenizer = AutoTokenizer.from_pretrained(base)
        model, loading = AutoModelForSequenceClassification.from_pretrained(
            base,
            num_labels=len(id2label),
            id2label=id2label,
            label2id={name: label_id for label_id, name in id2label.items()},
            ignore_mismatched_sizes=True,  # a base that is itself a classifier with another head
            output_loading_info=True,
        )
    except (OSError, ValueError) as error:
        offline = (
            " (HF_HUB_OFFLINE is set)"
            if os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes"}
            else ""
        )
        raise TrainingError(
            f"Cannot load base checkpoint {config.base!r}: {error.__class__.__name__}: {str(error).splitlines()[0]} "
            f"The model hub may be unreachable{offline} or the name unknown. Pass a local checkpoint folder, e.g. "
            "--base ../shared/models/multilingual-e5-small-ko, or --base scratch to train a small BERT from scratch."
        ) from error
    # What the checkpoint did not provide starts from random weights (`head_learning_rate`).
    new = {
        key if isinstance(key, str) else key[0]
        for key in [*loading["missing_keys"], *loading["mismatched_keys"]]
    }
    model.newly_initialised = new
    return tokenizer, model


def _new_parameters(model) -> set[str]:
    """Parameters that start from random weights: what a pretrained base lacked; all of a scratch model."""
    new = getattr(model, "newly_initialised", None)
    return {name for name, _ in model.named_parameters()} if new is None else set(new)


def balanced_class_weights(labels: list[int], classes: int) -> list[float]:
    """rows / (classes x the class's rows), per class id; a class without rows gets 0 (it has no loss to weigh)."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=classes)
    return [float(len(labels) / (classes * count)) if count else 0.0 for count in counts]


class _Trainer(Trainer):
    """HF `Trainer` whose optimizer gives the newly initialised layers their own learning rate, and whose loss
    may weigh the classes (`class_weights`, one per class id)."""

    def __init__(
        self, *args, head_learning_rate: float | None, class_weights: list[float] | None = None, **kwargs
    ) -> None:
        super().__init__(*args, **kwargs)
        self._head_learning_rate = head_learning_rate
        self._class_weights = (
            None if class_weights is None else torch.tensor(class_weights, dtype=torch.float32)
        )

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        # Evaluation goes through here too: the epoch kept is the best by the same weighted loss.
        if self._class_weights is None:
            return super().compute_loss(
                model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch
            )
        labels = inputs.pop("labels")
        outputs = model(**inputs)
        loss = torch.nn.functional.cross_entropy(
            outputs.logits.float(), labels, weight=self._class_weights.to(outputs.logits.device)
        )
        return (loss, outputs) if return_outputs else loss

    def create_optimizer(self, model=None):
        if self._head_learning_rate is None or self.optimizer is not None:
            return super().create_optimizer(model)
        model = self.model if model is None else model
        decay, new = set(self.get_decay_parameter_names(model)), _new_parameters(model)
        groups = []
        for is_new in (False, True):
            for decays in (True, False):
                parameters = [
                    parameter
                    for name, parameter in model.named_parameters()
                    if parameter.requires_grad and (name in new) == is_new and (name in decay) == decays
                ]
                if parameters:
                    group = {"params": parameters, "weight_decay": self.args.weight_decay if decays else 0.0}
                    groups.append({**group, "lr": self._head_learning_rate} if is_new else group)
        optimizer_class, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, model)
        self.optimizer = optimizer_class(groups, **optimizer_kwargs)
        return self.optimizer


def _model_max_length(tokenizer, model) -> int:
    limits = [getattr(model.config, "max_position_embeddings", None), tokenizer.model_max_length]
    limits = [limit for limit in limits if isinstance(limit, int) and 0 < limit < _UNBOUNDED_LENGTH]
    # RoBERTa-style position ids start after the padding index, so they leave two positions unused.
    if getattr(model.config, "model_type", "") in {"roberta", "xlm-roberta", "camembert"}:
        limits = [limit - 2 if limit == model.config.max_position_embeddings else limit for limit in limits]
    return min(limits) if limits else 512


def _encode(tokenizer, data: LabelledTexts, max_length: int) -> list[dict]:
    """Tokenised examples (no padding: the collator pads each batch to its own longest row)."""
    encoded = tokenizer(data.texts, truncation=True, max_length=max_length)
    rows = [dict(zip(encoded.keys(), values)) for values in zip(*encoded.values())]
    for row, label in zip(rows, data.labels):
        row["labels"] = label
    return rows


def _device_description() -> str:
    if torch.cuda.is_available():
        count = torch.cuda.device_count()
        return f"cuda ({torch.cuda.get_device_name(0)}) x{count}"
    return "cpu"


def _build_model(config: TrainConfig, data: TrainingData):
    if config.is_scratch:
        max_length = config.max_length or SCRATCH_DEFAULT_MAX_LENGTH
        logger.warning(
            "Using a SCRATCH model (base=scratch): a tiny randomly initialised BERT (hidden %d, %d layers, vocab %d, "
            "max_length %d) with a WordPiece vocabulary trained on the %d training texts; far weaker than a "
            "pretrained checkpoint, meant for tests and machines without a model hub.",
            config.scratch_hidden,
            config.scratch_layers,
            config.scratch_vocab_size,
            max_length,
            len(data.train),
        )
        tokenizer = build_scratch_tokenizer(
            data.train.texts, vocab_size=config.scratch_vocab_size, max_length=max_length
        )
        model = build_scratch_model(config, tokenizer, max_length=max_length, id2label=data.id2label)
        return tokenizer, model, max_length
    tokenizer, model = _load_pretrained(config, data.id2label)
    model_limit = _model_max_length(tokenizer, model)
    max_length = min(config.max_length, model_limit) if config.max_length else model_limit
    return tokenizer, model, max_length


def _training_arguments(
    config: TrainConfig, checkpoint_dir: str, *, steps_per_epoch: int
) -> TrainingArguments:
    use_cuda = torch.cuda.is_available()
    bf16 = use_cuda and torch.cuda.is_bf16_supported()
    best_by_loss = config.best_metric == "loss"
    return TrainingArguments(
        output_dir=checkpoint_dir,
        num_train_epochs=config.epochs,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=max(config.batch_size, 64),
        learning_rate=config.effective_learning_rate,
        weight_decay=config.weight_decay,
        warmup_steps=config.warmup_ratio,  # transformers 5: a float below 1 is a ratio of the total steps
        lr_scheduler_type="linear",
        optim="adamw_torch",
        eval_strategy="epoch",
        save_strategy="epoch",
        save_total_limit=1,  # the best checkpoint is kept as well
        save_only_model=True,
        load_best_model_at_end=True,
        metric_for_best_model="eval_loss" if best_by_loss else "eval_accuracy",
        greater_is_better=not best_by_loss,
        logging_strategy="steps",
        logging_steps=max(1, min(50, steps_per_epoch // 5)),
        logging_nan_inf_filter=False,  # a NaN loss must be seen, not averaged away
        train_sampling_strategy="group_by_length",
        bf16=bf16,
        fp16=use_cuda and not bf16,
        seed=config.seed,
        data_seed=config.seed,
        report_to="none",
        dataloader_num_workers=0,
        dataloader_pin_memory=use_cuda,
        disable_tqdm=False,
    )


def _best_evaluation(state, evaluations: dict[int, EvalPrediction]) -> PredictionOutput | None:
    """The held-out logits of the checkpoint training ended on (the best, loaded at the end), from its epoch's
    evaluation: that checkpoint was saved right after it, so predicting the held-out rows again would only compute
    the same logits a second time. None when there is no such record (then the caller predicts them)."""
    step = state.best_global_step
    found = evaluations.get(step) if step is not None else None
    loss = next(
        (row["eval_loss"] for row in state.log_history if row.get("step") == step and "eval_loss" in row),
        None,
    )
    if found is None or loss is None:
        return None
    return PredictionOutput(
        predictions=found.predictions, label_ids=found.label_ids, metrics={"eval_loss": loss}
    )


def _mix_with_base(config: TrainConfig, id2label: dict[int, str], model) -> dict:
    """Mix the trained `model` with the base checkpoint per `config.fine_tuned_share` (trainer/weight_mix.py);
    the record of what was done: the share asked for, the share applied and, when it could not be, why."""
    record: dict = {"requested": config.fine_tuned_share, "applied": 1.0}
    if config.fine_tuned_share == 1.0:
        return record
    if config.is_scratch:
        record["not_applied"] = "a scratch model has no starting weights"
    else:
        start = starting_weights(_base_name(config.base), id2label, model)
        if isinstance(start, str):
            record["not_applied"] = f"the base checkpoint cannot be mixed: {start}"
        else:
            mix_weights(model, start, fine_tuned_share=config.fine_tuned_share)
            record["applied"] = config.fine_tuned_share
    if "not_applied" in record:
        logger.warning("Saving the fine-tuned weights as they are: %s", record["not_applied"])
    else:
        logger.info(
            "Saved weights: %.2f of the fine-tuned ones, the rest the base checkpoint's", record["applied"]
        )
    return record


@contextlib.contextmanager
def _checkpoint_folder(requested: Path | None):
    """The folder for epoch checkpoints, removed on the way out: the caller's (a retraining run's own folder, so it
    can clean up even after a kill) or a temporary one."""
    if requested is None:
        with tempfile.TemporaryDirectory(prefix="moderator-train-") as folder:
            yield folder
        return
    requested.mkdir(parents=True, exist_ok=True)
    try:
        yield str(requested)
    finally:
        shutil.rmtree(requested, ignore_errors=True)


def train(config: TrainConfig) -> dict:
    """Train per `config`, write the model version directory `config.output`, return its metrics."""
    started = time.perf_counter()
    _check_config(config)
    json_stream = sys.stdout
    # With --progress-json, stdout carries only JSON lines: everything else that prints goes to stderr.
    redirect = contextlib.redirect_stdout(sys.stderr) if config.progress_json else contextlib.nullcontext()
    with redirect:
        metrics = _train(config, started=started, json_stream=json_stream if config.progress_json else None)
    if config.progress_json:
        json_stream.write(
            json.dumps({"event": "done", "output": str(config.output)}, ensure_ascii=False) + "\n"
        )
        json_stream.flush()
    return metrics


def _train(config: TrainConfig, *, started: float, json_stream) -> dict:
    data = load_training_data(config)
    logger.info(
        "Training on %d examples, evaluating on %d; labels %s", len(data.train), len(data.eval), data.id2label
    )
    set_seed(
        config.seed
    )  # before the model is built: the new head (or the scratch model) is initialised randomly
    tokenizer, model, max_length = _build_model(config, data)
    train_rows = _encode(tokenizer, data.train, max_length)
    eval_rows = _encode(tokenizer, data.eval, max_length)
    num_labels = len(data.id2label)

    evaluations: dict[int, EvalPrediction] = {}  # each evaluation during training, by global step

    def compute_metrics(prediction: EvalPrediction) -> dict:
        evaluations[trainer.state.global_step] = prediction
        found = classification_metrics(
            np.argmax(prediction.predictions, axis=-1), prediction.label_ids, num_labels
        )
        return {"accuracy": found["accuracy"], "macro_f1": found["macro_f1"]}

    callbacks = [AbortOnNonFiniteLoss()]
    if config.early_stopping_patience > 0:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=config.early_stopping_patience))
    if json_stream is not None:
        callbacks.append(JsonProgressCallback(json_stream))

    steps_per_epoch = math.ceil(len(train_rows) / config.batch_size)
    output = config.output.resolve()
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = output.parent / f".{output.name}.partial-{uuid.uuid4().hex[:8]}"
    with _checkpoint_folder(config.checkpoint_dir) as checkpoint_dir:
        trainer = _Trainer(
            model=model,
            head_learning_rate=config.head_learning_rate,
            class_weights=balanced_class_weights(data.train.labels, num_labels)
            if config.balanced_class_weights
            else None,
            args=_training_arguments(config, checkpoint_dir, steps_per_epoch=steps_per_epoch),
            train_dataset=train_rows,
            eval_dataset=eval_rows,
            processing_class=tokenizer,
            data_collator=DataCollatorWithPadding(tokenizer),
            compute_metrics=compute_metrics,
            callbacks=callbacks,
        )
        train_output = trainer.train()
        weight_mix = _mix_with_base(config, data.id2label, trainer.model)
        prediction = _best_evaluation(trainer.state, evaluations) if weight_mix["applied"] == 1.0 else None
        # Mixed weights (or no record of the epoch): the held-out logits of the weights that are saved.
        if prediction is None:
            prediction = trainer.predict(eval_rows, metric_key_prefix="eval")
        if not math.isfinite(prediction.metrics["eval_loss"]):
            raise TrainingError(f"Evaluation loss is {prediction.metrics['eval_loss']}; the model diverged")

        # Held-out logits -> one temperature, baked into the head before saving (trainer/temperature.py).
        eval_logits = np.asarray(prediction.predictions, dtype=np.float64)
        eval_labels = np.asarray(prediction.label_ids, dtype=np.int64)
        temperature = fit_temperature(eval_logits, eval_labels)
        calibration = calibration_summary(eval_logits, eval_labels, temperature)
        bake_temperature(trainer.model, temperature)
        # ... then the confidence map on the same verdicts, saved beside the weights.
        confidence_map = fit_confidence_map(eval_logits, eval_labels, temperature)
        calibration["confidence_map"] = confidence_map_summary(
            eval_logits, eval_labels, temperature, confidence_map
        )
        logger.info(
            "Temperature %.3f fitted on %d held-out examples: ECE %.4f -> %.4f (%.4f after the confidence map, "
            "%d knots), NLL %.4f -> %.4f",
            temperature,
            calibration["fitted_on"],
            calibration["ece_before"],
            calibration["ece_after"],
            calibration["confidence_map"]["ece_after_map_in_sample"],
            calibration["confidence_map"]["knots"],
            calibration["nll_before"],
            calibration["nll_after"],
        )

        history = epoch_history(trainer.state.log_history)
        final = classification_metrics(
            np.argmax(prediction.predictions, axis=-1), prediction.label_ids, num_labels
        )
        best_key = "eval_loss" if config.best_metric == "loss" else "eval_accuracy"
        best_row = (min if config.best_metric == "loss" else max)(
            history, key=lambda row: row[best_key], default=None
        )
        metrics = {
            "accuracy": final["accuracy"],
            "macro_f1": final["macro_f1"],
            "loss": float(prediction.metrics["eval_loss"]),  # before the temperature
            "calibration": calibration,
            "confusion_matrix": final["confusion_matrix"],
            "labels": [data.id2label[label_id] for label_id in range(num_labels)],
            "history": history,
            "best_epoch": best_row["epoch"] if best_row else None,
            "best_metric": config.best_metric,
            "weight_mix": weight_mix,
            "data": {
                **data.sizes,
                "extra_size": data.extra_size,
                "extra_weight": data.extra_weight,
                "extra_oversampled": sum(mix["rows"] for mix in data.extra_class_mix.values()),
                "extra_class_mix": data.extra_class_mix,
                "excluded": data.excluded,
                "source": str(config.data)
                if config.data
                else {"sentiment": "nsmc", "toxicity": "beep"}[config.task],
                "kmhas_rows": config.kmhas_rows,
                "task": config.task,
            },
            "base_checkpoint": config.base,
            "max_length": max_length,
            "epochs_trained": round(float(trainer.state.epoch or 0.0), 4),
            "learning_rate": config.effective_learning_rate,
            "head_learning_rate": config.head_learning_rate,
            "balanced_class_weights": config.balanced_class_weights,
            "batch_size": config.batch_size,
            "train_samples_per_second": float(train_output.metrics.get("train_samples_per_second", 0.0)),
            "seed": config.seed,
            "device": _device_description(),
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }

        try:
            staging.mkdir()
            trainer.model.save_pretrained(staging)
            tokenizer.save_pretrained(staging)
            confidence_map.save(staging)
            # The verdicts the map was fitted on: building the int8 fast path fits that path its own map on them.
            save_calibration_set(staging, list(data.eval.texts), [int(label) for label in data.eval.labels])
            plot_training_curves(
                history,
                staging / "training_curves.png",
                title=f"{config.base} on {metrics['data']['source']}",
            )
            metrics["wall_time_seconds"] = round(time.perf_counter() - started, 2)
            (staging / "metrics.json").write_text(
                json.dumps(metrics, ensure_ascii=False, indent=2), encoding="utf-8"
            )
            if output.exists():
                output.rmdir()  # checked empty up front; a rename cannot replace a non-empty folder
            staging.rename(output)  # atomic: readers see either no version or a complete one
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    logger.info(
        "Saved model version %s: accuracy %.4f, macro F1 %.4f",
        output,
        metrics["accuracy"],
        metrics["macro_f1"],
    )
    return metrics
