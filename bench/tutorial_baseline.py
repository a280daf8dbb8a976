"""The tutorial's recipe, reproduced faithfully as the baseline every benchmark compares against.

Source: ../shared/seed/tutorial-bert-kor-nsmc.md ("한글 pre-trained BERT 모델로 텍스트 분류하기"): NSMC reviews
longer than 5 characters (1,000 train / 500 test), `TokenDataset` padding every sentence to 512 tokens,
`CustomBertModel` ([CLS] of last_hidden_state -> dropout 0.5 -> Linear(hidden, 2)), `optim.Adam(lr=1e-5)`,
batch 8, a hand-written train/evaluate loop keeping the best validation-loss checkpoint, 10 epochs, then
`CustomPredictor` answering one sentence at a time.

Deliberate deviations, each needed to run it here and none changing its cost:
- the checkpoint is a path (the hub is out of reach), and the tokenizer is `AutoTokenizer` (for
  kykim/bert-kor-base that is the tutorial's `BertTokenizerFast`; the e5 checkpoint ships another class);
- the head is `Linear(hidden_size, 2)` rather than a literal 768 so that a 384-wide encoder fits;
- `pad_to_max_length=False` switches to dynamic padding (used only for the accuracy run: padding changes cost,
  not outputs); `num_workers` defaults to 0 rather than 8 (2-core machines);
- the predictor returns (label, probability) as well as printing when `verbose`.

Run the whole tutorial: `python -m bench.tutorial_baseline --checkpoint DIR [--epochs 10]`.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn, optim
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm
from transformers import AutoTokenizer, BertModel

MAX_LENGTH = 512  # the tutorial's padding='max_length' pads to the tokenizer's 512


def reviews_frame(texts, labels) -> pd.DataFrame:
    """The tutorial's dataframe shape: `document`, `label` columns."""
    return pd.DataFrame({"document": list(texts), "label": list(labels)})


class TokenDataset(Dataset):
    """The tutorial's dataset: tokenises one sentence per item, padded to 512 tokens."""

    def __init__(self, dataframe, tokenizer_pretrained, *, pad_to_max_length: bool = True):
        self.data = dataframe
        self.tokenizer = AutoTokenizer.from_pretrained(tokenizer_pretrained)
        self.pad_to_max_length = pad_to_max_length

    def __len__(self):
        return len(self.data)

    def __getitem__(self, idx):
        sentence = self.data.iloc[idx]["document"]
        label = self.data.iloc[idx]["label"]

        tokens = self.tokenizer(
            sentence,
            return_tensors="pt",
            truncation=True,
            max_length=MAX_LENGTH,
            padding="max_length" if self.pad_to_max_length else False,
            add_special_tokens=True,
        )

        input_ids = tokens["input_ids"].squeeze(0)
        attention_mask = tokens["attention_mask"].squeeze(0)
        token_type_ids = torch.zeros_like(attention_mask)

        return {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "token_type_ids": token_type_ids,
        }, torch.tensor(label)

    def collate_dynamic(self, items):
        """Pads a batch to its longest sentence (only with pad_to_max_length=False)."""
        features = [inputs for inputs, _ in items]
        batch = self.tokenizer.pad(features, padding="longest", return_tensors="pt")
        batch["token_type_ids"] = torch.zeros_like(batch["attention_mask"])
        return dict(batch), torch.stack([label for _, label in items])


def make_loader(dataset: TokenDataset, *, batch_size: int = 8, shuffle: bool = True, num_workers: int = 0):
    collate = None if dataset.pad_to_max_length else dataset.collate_dynamic
    return DataLoader(
        dataset, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers, collate_fn=collate
    )


class CustomBertModel(nn.Module):
    """The tutorial's model: BERT, [CLS] of last_hidden_state, dropout 0.5, a 2-way linear layer."""

    def __init__(self, bert_pretrained, dropout_rate=0.5):
        super().__init__()
        self.bert = BertModel.from_pretrained(bert_pretrained)
        self.dr = nn.Dropout(p=dropout_rate)
        self.fc = nn.Linear(self.bert.config.hidden_size, 2)

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        output = self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
        last_hidden_state = output["last_hidden_state"]
        x = self.dr(last_hidden_state[:, 0, :])
        x = self.fc(x)
        return x


def model_train(model, data_loader, loss_fn, optimizer, device, *, progress: bool = True):
    """The tutorial's training epoch; returns (train_loss, train_acc)."""
    model.train()
    running_loss = 0
    corr = 0
    counts = 0
    prograss_bar = tqdm(
        data_loader, unit="batch", total=len(data_loader), mininterval=1, disable=not progress
    )
    for idx, (inputs, labels) in enumerate(prograss_bar):
        inputs = {k: v.to(device) for k, v in inputs.items()}
        labels = labels.to(device)
        optimizer.zero_grad()
        output = model(**inputs)
        loss = loss_fn(output, labels)
        loss.backward()
        optimizer.step()
        _, pred = output.max(dim=1)
        corr += pred.eq(labels).sum().item()
        counts += len(labels)
        running_loss += loss.item() * labels.size(0)
        prograss_bar.set_description(
            f"training loss: {running_loss / (idx + 1):.5f}, training accuracy: {corr / counts:.5f}"
        )
    acc = corr / len(data_loader.dataset)
    return running_loss / len(data_loader.dataset), acc


def model_evaluate(model, data_loader, loss_fn, device):
    """The tutorial's evaluation (also its only batched inference); returns (val_loss, val_acc)."""
    model.eval()
    with torch.no_grad():
        corr = 0
        running_loss = 0
        for inputs, labels in data_loader:
            inputs = {k: v.to(device) for k, v in inputs.items()}
            labels = labels.to(device)
            output = model(**inputs)
            _, pred = output.max(dim=1)
            corr += torch.sum(pred.eq(labels)).item()
            running_loss += loss_fn(output, labels).item() * labels.size(0)
        acc = corr / len(data_loader.dataset)
        return running_loss / len(data_loader.dataset), acc


class CustomPredictor:
    """The tutorial's predictor: one sentence, padded to 512, no batching (and, like the tutorial, no no_grad)."""

    def __init__(self, model, tokenizer, labels: dict, device, *, verbose: bool = False):
        self.model = model
        self.tokenizer = tokenizer
        self.labels = labels
        self.device = device
        self.verbose = verbose

    def predict(self, sentence):
        tokens = self.tokenizer(
            sentence,
            return_tensors="pt",
            truncation=True,
            max_length=MAX_LENGTH,
            padding="max_length",
            add_special_tokens=True,
        )
        tokens.to(self.device)
        prediction = self.model(**tokens)
        prediction = F.softmax(prediction, dim=1)
        output = prediction.argmax(dim=1).item()
        prob, result = prediction.max(dim=1)[0].item(), self.labels[output]
        if self.verbose:
            print(f"[{result}]\n확률은: {prob * 100:.3f}% 입니다.")
        return output, prob


PREDICTOR_LABELS = {0: "부정 리뷰 입니다.", 1: "긍정 리뷰 입니다."}


@dataclass
class TutorialConfig:
    checkpoint: Path
    train_texts: list[str]
    train_labels: list[int]
    test_texts: list[str]
    test_labels: list[int]
    device: str = "cpu"
    epochs: int = 10
    batch_size: int = 8
    learning_rate: float = 1e-5
    pad_to_max_length: bool = True
    num_workers: int = 0
    checkpoint_file: Path | None = (
        None  # the tutorial's `{model_name}.pth`; None keeps the best weights in memory
    )
    progress: bool = True


@dataclass
class TutorialResult:
    model: CustomBertModel
    accuracy: float  # of the best validation-loss checkpoint on the test reviews, as the tutorial reports it
    best_epoch: int
    history: list[dict] = field(default_factory=list)
    wall_time_seconds: float = 0.0
    train_samples_per_second: float = 0.0


def run_tutorial(config: TutorialConfig) -> TutorialResult:
    """The tutorial end to end: build loaders and model, train `epochs`, keep and reload the best val-loss weights."""
    device = torch.device(config.device)
    train_data = TokenDataset(
        reviews_frame(config.train_texts, config.train_labels),
        config.checkpoint,
        pad_to_max_length=config.pad_to_max_length,
    )
    test_data = TokenDataset(
        reviews_frame(config.test_texts, config.test_labels),
        config.checkpoint,
        pad_to_max_length=config.pad_to_max_length,
    )
    train_loader = make_loader(
        train_data, batch_size=config.batch_size, shuffle=True, num_workers=config.num_workers
    )
    test_loader = make_loader(
        test_data, batch_size=config.batch_size, shuffle=True, num_workers=config.num_workers
    )

    bert = CustomBertModel(config.checkpoint).to(device)
    loss_fn = nn.CrossEntropyLoss()
    optimizer = optim.Adam(bert.parameters(), lr=config.learning_rate)

    min_loss = np.inf
    best_state, best_epoch, best_accuracy = None, 0, 0.0
    history = []
    train_seconds = 0.0
    started = time.perf_counter()
    for epoch in range(config.epochs):
        epoch_start = time.perf_counter()
        train_loss, train_acc = model_train(
            bert, train_loader, loss_fn, optimizer, device, progress=config.progress
        )
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        train_seconds += time.perf_counter() - epoch_start
        val_loss, val_acc = model_evaluate(bert, test_loader, loss_fn, device)
        if val_loss < min_loss:
            print(f"[INFO] val_loss has been improved from {min_loss:.5f} to {val_loss:.5f}. Saving Model!")
            min_loss = val_loss
            best_epoch, best_accuracy = epoch + 1, val_acc
            if config.checkpoint_file:
                torch.save(bert.state_dict(), config.checkpoint_file)
            else:
                best_state = copy.deepcopy(bert.state_dict())
        history.append(
            {
                "epoch": epoch + 1,
                "train_loss": train_loss,
                "train_accuracy": train_acc,
                "eval_loss": val_loss,
                "eval_accuracy": val_acc,
            }
        )
        print(
            f"epoch {epoch + 1:02d}, loss: {train_loss:.5f}, acc: {train_acc:.5f}, "
            f"val_loss: {val_loss:.5f}, val_accuracy: {val_acc:.5f}"
        )

    bert.load_state_dict(torch.load(config.checkpoint_file) if config.checkpoint_file else best_state)
    return TutorialResult(
        model=bert,
        accuracy=best_accuracy,
        best_epoch=best_epoch,
        history=history,
        wall_time_seconds=time.perf_counter() - started,
        train_samples_per_second=len(train_data) * config.epochs / train_seconds if train_seconds else 0.0,
    )


def main(argv: list[str] | None = None) -> int:
    from bench.common import base_parser, sample_nsmc, setup_torch

    parser = base_parser("Run the tutorial's recipe end to end on NSMC.")
    parser.add_argument("--checkpoint", type=Path, required=True, help="a BERT checkpoint directory")
    parser.add_argument("--train-size", type=int, default=1000)
    parser.add_argument("--test-size", type=int, default=500)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument(
        "--dynamic-padding", action="store_true", help="pad to the longest in a batch, not 512"
    )
    parser.add_argument("--num-workers", type=int, default=0)
    parser.add_argument(
        "--predict",
        nargs="*",
        default=[
            "이 영화는 정말 더럽게 재미없네... 다신 안보련다 비추!",
            "인생 최고의 영화였다. 진짜 배우들의 명연기가 돋보이는 영화",
        ],
    )
    args = parser.parse_args(argv)
    device = setup_torch(threads=args.threads, device=args.device, seed=args.seed)
    train = sample_nsmc(shared_dir=args.shared_dir, split="train", count=args.train_size, seed=args.seed)
    test = sample_nsmc(shared_dir=args.shared_dir, split="test", count=args.test_size, seed=args.seed)
    result = run_tutorial(
        TutorialConfig(
            checkpoint=args.checkpoint,
            train_texts=train.texts,
            train_labels=train.labels,
            test_texts=test.texts,
            test_labels=test.labels,
            device=str(device),
            epochs=args.epochs,
            pad_to_max_length=not args.dynamic_padding,
            num_workers=args.num_workers,
        )
    )
    print(f"best epoch {result.best_epoch}: accuracy {result.accuracy:.4f}")
    predictor = CustomPredictor(
        result.model, AutoTokenizer.from_pretrained(args.checkpoint), PREDICTOR_LABELS, device, verbose=True
    )
    for sentence in args.predict:
        print(f"문장을 입력해 주세요: {sentence}")
        predictor.predict(sentence)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
