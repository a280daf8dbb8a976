"""A small BERT from scratch: a WordPiece vocabulary trained on the training texts and a randomly initialised
`BertForSequenceClassification`. For tests and for machines without a model hub."""

from __future__ import annotations

from collections.abc import Sequence

from trainer.config import TrainConfig

SPECIAL_TOKENS = {
    "pad_token": "[PAD]",
    "unk_token": "[UNK]",
    "cls_token": "[CLS]",
    "sep_token": "[SEP]",
    "mask_token": "[MASK]",
}


def build_scratch_tokenizer(texts: Sequence[str], *, vocab_size: int, max_length: int):
    """A BERT-style `PreTrainedTokenizerFast` whose WordPiece vocabulary is learnt from `texts`."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.WordPiece(unk_token=SPECIAL_TOKENS["unk_token"]))
    # No lowercasing/accent stripping: BERT's accent stripping decomposes Hangul syllables into jamo.
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=False, strip_accents=False, clean_text=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    wordpiece_trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=list(SPECIAL_TOKENS.values()),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=wordpiece_trainer)
    cls_id = tokenizer.token_to_id(SPECIAL_TOKENS["cls_token"])
    sep_id = tokenizer.token_to_id(SPECIAL_TOKENS["sep_token"])
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, model_max_length=max_length, **SPECIAL_TOKENS)


def build_scratch_model(config: TrainConfig, tokenizer, *, max_length: int, id2label: dict[int, str]):
    """A randomly initialised tiny `BertForSequenceClassification` sized by `config.scratch_*`."""
    from transformers import BertConfig, BertForSequenceClassification

    bert_config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=config.scratch_hidden,
        num_hidden_layers=config.scratch_layers,
        num_attention_heads=config.scratch_heads,
        intermediate_size=4 * config.scratch_hidden,
        max_position_embeddings=max_length,
        pad_token_id=tokenizer.pad_token_id,
        num_labels=len(id2label),
        id2label=id2label,
        label2id={name: label_id for label_id, name in id2label.items()},
    )
    return BertForSequenceClassification(bert_config)
