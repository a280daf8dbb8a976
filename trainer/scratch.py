"""A small BERT from scratch: a WordPiece vocabulary trained on the training texts and a randomly initialised
`BertForSequenceClassification`. For tests and for machines without a model hub."""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from itertools import pairwise

from trainer.config import TrainConfig

SPECIAL_TOKENS = {
    "pad_token": "[PAD]",
    "unk_token": "[UNK]",
    "cls_token": "[CLS]",
    "sep_token": "[SEP]",
    "mask_token": "[MASK]",
}


CONTINUING_PREFIX = "##"
# The WordPiece model's own default: a longer word becomes [UNK].
MAX_INPUT_CHARS_PER_WORD = 100


def _bert_pre_tokenizer():
    """Tokenizer with the scratch model's normalizer and pre-tokenizer (and no vocabulary yet)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

    tokenizer = Tokenizer(models.WordPiece(unk_token=SPECIAL_TOKENS["unk_token"]))
    # No lowercasing/accent stripping: BERT's accent stripping decomposes Hangul syllables into jamo.
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=False, strip_accents=False, clean_text=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    return tokenizer


def count_words(texts: Iterable[str]) -> Counter[str]:
    """How often each pre-tokenised word occurs in `texts` (the scratch tokenizer's normalizer and pre-tokenizer)."""
    tokenizer = _bert_pre_tokenizer()
    normalize = tokenizer.normalizer.normalize_str
    pre_tokenize = tokenizer.pre_tokenizer.pre_tokenize_str
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(word for word, _ in pre_tokenize(normalize(text)))
    return counts


def learn_wordpiece_vocab(
    word_counts: Mapping[str, int],
    *,
    vocab_size: int,
    min_frequency: int = 2,
    special_tokens: Sequence[str] = tuple(SPECIAL_TOKENS.values()),
) -> list[str]:
    """A WordPiece vocabulary (tokens in id order) learnt from word counts, deterministically.

    The same algorithm as the `tokenizers` WordPieceTrainer (BPE merges over "##"-prefixed continuation symbols),
    but every tie is broken by the strings themselves, never by hash-map order, so the same counts give the same
    vocabulary in every process (the library's trainer does not: huggingface/tokenizers#1794). The vocabulary
    holds the special tokens, then every character in both forms (word-initial and "##" continuation, most
    frequent first, so a character never makes a whole word [UNK]), then merged pieces in merge order: the most
    frequent adjacent pair first (ties: the smaller pair of strings), while a pair occurs `min_frequency` times.
    """
    vocab: list[str] = []
    known: set[str] = set()

    def add(token: str) -> None:
        if token not in known:
            known.add(token)
            vocab.append(token)

    for token in special_tokens:
        add(token)
    entries = sorted(((word, count) for word, count in word_counts.items() if word and count > 0))
    char_counts: Counter[str] = Counter()
    for word, count in entries:
        for char in word:
            char_counts[char] += count
    alphabet = sorted(char_counts, key=lambda char: (-char_counts[char], char))
    for char in alphabet:
        add(char)
    for char in alphabet:
        add(CONTINUING_PREFIX + char)

    words = [[word[0], *(CONTINUING_PREFIX + char for char in word[1:])] for word, _ in entries]
    counts = [count for _, count in entries]
    pair_counts: dict[tuple[str, str], int] = {}
    where: dict[tuple[str, str], set[int]] = {}
    for index, symbols in enumerate(words):
        for pair in pairwise(symbols):
            pair_counts[pair] = pair_counts.get(pair, 0) + counts[index]
            where.setdefault(pair, set()).add(index)
    # Max-heap by count, then the smallest (left, right) strings; entries whose count changed since are stale.
    heap = [(-count, pair) for pair, count in pair_counts.items()]
    heapq.heapify(heap)
    while len(vocab) < vocab_size and heap:
        negative_count, pair = heapq.heappop(heap)
        count = pair_counts.get(pair, 0)
        if count != -negative_count or count == 0:
            continue  # stale: the pair's current count has its own entry
        if count < min_frequency:
            break
        left, right = pair
        merged = left + right[len(CONTINUING_PREFIX) :]
        add(merged)
        changed: set[tuple[str, str]] = set()
        for index in sorted(where.pop(pair, ())):
            symbols = words[index]
            rewritten: list[str] = []
            position = 0
            while position < len(symbols):
                if (
                    position + 1 < len(symbols)
                    and symbols[position] == left
                    and symbols[position + 1] == right
                ):
                    rewritten.append(merged)
                    position += 2
                else:
                    rewritten.append(symbols[position])
                    position += 1
            if len(rewritten) == len(symbols):
                continue  # no longer holds the pair
            for old in pairwise(symbols):
                pair_counts[old] -= counts[index]
                changed.add(old)
            for new in pairwise(rewritten):
                pair_counts[new] = pair_counts.get(new, 0) + counts[index]
                where.setdefault(new, set()).add(index)
                changed.add(new)
            words[index] = rewritten
        pair_counts.pop(pair, None)
        for changed_pair in sorted(changed - {pair}):
            changed_count = pair_counts.get(changed_pair, 0)
            if changed_count > 0:
                heapq.heappush(heap, (-changed_count, changed_pair))
            else:
                pair_counts.pop(changed_pair, None)
                where.pop(changed_pair, None)
    return vocab


def build_scratch_tokenizer(texts: Sequence[str], *, vocab_size: int, max_length: int):
    """A BERT-style `PreTrainedTokenizerFast` whose WordPiece vocabulary is learnt from `texts`.

    Deterministic: the same texts give the same vocabulary (and token ids) in every process and on every machine.
    """
    from tokenizers import decoders, models, processors
    from transformers import PreTrainedTokenizerFast

    vocab = learn_wordpiece_vocab(count_words(texts), vocab_size=vocab_size)
    tokenizer = _bert_pre_tokenizer()
    tokenizer.model = models.WordPiece(
        {token: token_id for token_id, token in enumerate(vocab)},
        unk_token=SPECIAL_TOKENS["unk_token"],
        continuing_subword_prefix=CONTINUING_PREFIX,
        max_input_chars_per_word=MAX_INPUT_CHARS_PER_WORD,
    )
    tokenizer.decoder = decoders.WordPiece(prefix=CONTINUING_PREFIX)
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
