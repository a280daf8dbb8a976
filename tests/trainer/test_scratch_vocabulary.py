"""The scratch model's WordPiece vocabulary is deterministic: the same texts give the same vocabulary in every
process (the `tokenizers` WordPieceTrainer does not: huggingface/tokenizers#1794), so the session's scratch model
(tests/conftest.py) and a retraining run's `--base scratch` model are the same on every run."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from trainer.scratch import learn_wordpiece_vocab

REPO_ROOT = Path(__file__).resolve().parents[2]
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORD_COUNTS = {"hug": 10, "pug": 5, "pun": 12, "bun": 4, "hugs": 5, "gnu": 1}


def test_merges_follow_counts_and_ties_break_by_the_strings():
    vocab = learn_wordpiece_vocab(WORD_COUNTS, vocab_size=100)
    # Special tokens; every character, most frequent first (n and p tie at 17), in both forms; then merged pieces:
    # the most frequent pair first, ties (hug+##s and p+##ug, 5 each) by the smaller strings; no pair seen once.
    assert vocab == [
        *SPECIALS,
        *["u", "g", "n", "p", "h", "s", "b"],
        *["##u", "##g", "##n", "##p", "##h", "##s", "##b"],
        *["##ug", "##un", "hug", "pun", "hugs", "pug", "bun"],
    ]
    # The counts' order does not matter, and vocab_size caps the merges.
    assert learn_wordpiece_vocab(dict(reversed(WORD_COUNTS.items())), vocab_size=100) == vocab
    assert learn_wordpiece_vocab(WORD_COUNTS, vocab_size=21) == vocab[:21]


BUILD_VOCABULARY = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    from trainer.scratch import build_scratch_tokenizer

    lines = Path(sys.argv[1]).read_text(encoding="utf-8").splitlines()[1:3001]
    texts = [line.split("\\t")[1] for line in lines]
    tokenizer = build_scratch_tokenizer(texts, vocab_size=4000, max_length=48)
    tokenizer.save_pretrained(sys.argv[2])
    """
)


def test_the_vocabulary_is_the_same_in_fresh_processes_with_other_hash_seeds(
    korpora_root: Path, tmp_path: Path
):
    folders = []
    for hash_seed in ("1", "2"):
        folder = tmp_path / f"hash-seed-{hash_seed}"
        subprocess.run(
            [
                sys.executable,
                "-c",
                BUILD_VOCABULARY,
                str(korpora_root / "nsmc" / "ratings_train.txt"),
                str(folder),
            ],
            cwd=REPO_ROOT,
            env={**os.environ, "PYTHONHASHSEED": hash_seed, "TOKENIZERS_PARALLELISM": "true"},
            check=True,
            timeout=120,
        )
        folders.append(folder)

    first, second = ((folder / "tokenizer.json").read_bytes() for folder in folders)
    assert first == second  # the vocabulary, its ids and everything else the tokenizer saves

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folders[0])
    assert len(tokenizer) == 4000 and tokenizer.convert_ids_to_tokens(list(range(5))) == SPECIALS
    # A useful vocabulary: frequent words whole, the rest in pieces, no [UNK].
    assert tokenizer.tokenize("정말 재미있는 영화") == ["정말", "재미있는", "영화"]
    assert tokenizer.unk_token not in tokenizer.tokenize("쿵짝쿵짝 결말이 아쉬웠다")
