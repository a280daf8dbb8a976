"""`moderator predict` through the real console script, plus the streaming loop in-process."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from classifier import Classifier
from classifier.cli import format_verdict, stream_predictions

MODERATOR = Path(sys.executable).with_name("moderator")
TUTORIAL_LINE = re.compile(r"^\[(긍정|부정) 리뷰 입니다\.\] 확률은: (\d{1,3}\.\d{3})% 입니다\.$")


def moderator(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(MODERATOR), *args],
        check=False,
        input=stdin,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=300,
    )


def test_text_output_matches_the_tutorial(scratch_model_dir: Path, scratch_classifier: Classifier) -> None:
    texts = ["정말 재밌어요 최고의 영화", "시간 낭비, 최악이다"]
    result = moderator("predict", "--model", str(scratch_model_dir), *texts)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    for line, verdict in zip(lines, scratch_classifier.predict(texts), strict=True):
        match = TUTORIAL_LINE.match(line)
        assert match, line
        assert match.group(1) == verdict.label_name
        assert float(match.group(2)) == pytest.approx(verdict.confidence * 100, abs=0.001)


def test_json_lines(scratch_model_dir: Path, scratch_classifier: Classifier) -> None:
    texts = ["배우 연기가 훌륭했다", "😀😀", "별로였음"]
    result = moderator("predict", "--model", str(scratch_model_dir), "--json", *texts)
    assert result.returncode == 0, result.stderr
    assert "\\u" not in result.stdout  # Korean printed as is (ensure_ascii=False)
    records = [json.loads(line) for line in result.stdout.splitlines()]
    verdicts = scratch_classifier.predict(texts)
    assert len(records) == len(texts)
    for record, text, verdict in zip(records, texts, verdicts, strict=True):
        expected = verdict.to_json_dict(text)
        assert record.keys() == expected.keys()
        assert (record["text"], record["label"], record["label_name"]) == (
            text,
            verdict.label,
            verdict.label_name,
        )
        assert record["confidence"] == pytest.approx(expected["confidence"], abs=1e-6)
        assert record["probabilities"] == pytest.approx(expected["probabilities"], abs=1e-6)


def test_stdin_streams_thousands_of_lines_and_reports_blank_ones(scratch_model_dir: Path) -> None:
    reviews = [
        f"{index}번째 리뷰: 배우 연기가 {'좋았다' if index % 2 else '별로였다'}" for index in range(2000)
    ]
    lines = list(reviews)
    lines[10] = ""
    lines[1500] = "   "
    result = moderator(
        "predict",
        "--model",
        str(scratch_model_dir),
        "--json",
        "--batch-size",
        "64",
        stdin="\n".join(lines) + "\n",
    )
    assert result.returncode == 1, result.stderr  # some lines were rejected, the rest went through
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == 2000
    assert [record["text"] for record in records] == lines
    assert "input 11" in records[10]["error"] and "empty" in records[10]["error"]
    assert "input 1501" in records[1500]["error"]
    good = [record for index, record in enumerate(records) if index not in (10, 1500)]
    assert all(record["label_name"] in ("부정", "긍정") and "error" not in record for record in good)


def test_text_mode_reports_blank_lines_on_stderr(scratch_model_dir: Path) -> None:
    result = moderator("predict", "--model", str(scratch_model_dir), stdin="좋은 영화\n\n나쁜 영화\n")
    assert result.returncode == 1
    assert len(result.stdout.splitlines()) == 2
    assert all(TUTORIAL_LINE.match(line) for line in result.stdout.splitlines())
    assert "input 2: empty" in result.stderr


def test_bad_model_dir_exits_2_with_a_clear_message(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    result = moderator("predict", "--model", str(missing), "좋아요")
    assert result.returncode == 2
    assert f"model directory {missing}: directory does not exist" in result.stderr
    assert "Traceback" not in result.stderr


def test_streaming_writes_each_batch_before_reading_further(scratch_classifier: Classifier) -> None:
    out, err = io.StringIO(), io.StringIO()

    def lines() -> Iterator[str]:
        for index in range(25):
            # When line 11 is requested, the first full batch of 10 must already be written.
            if index == 10:
                assert len(out.getvalue().splitlines()) == 10
            if index == 20:
                assert len(out.getvalue().splitlines()) == 20
            yield "좋은 영화" if index % 3 else "나쁜 영화"

    rejected = stream_predictions(
        scratch_classifier, lines(), batch_size=4, chunk_lines=10, as_json=False, out=out, err=err
    )
    assert rejected == 0
    written = out.getvalue().splitlines()
    assert len(written) == 25
    expected = [format_verdict(verdict) for verdict in scratch_classifier.predict(["나쁜 영화", "좋은 영화"])]
    assert written[:3] == [expected[0], expected[1], expected[1]]


def test_predict_serves_a_toxicity_version_with_its_three_labels(toxicity_model_dir: Path) -> None:
    texts = ["배우 연기가 좋았어요", "이 새끼 진짜 죽여버리고 싶네"]
    result = moderator("predict", "--model", str(toxicity_model_dir), "--json", *texts)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [row["text"] for row in rows] == texts
    for row in rows:
        assert list(row["probabilities"]) == ["정상", "공격적", "혐오"]
        assert row["label_name"] in row["probabilities"]
        assert sum(row["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    text = moderator("predict", "--model", str(toxicity_model_dir), texts[1])
    assert text.returncode == 0, text.stderr
    assert re.match(
        r"^\[(정상|공격적|혐오) 표현 입니다\.\] 확률은: \d{1,3}\.\d{3}% 입니다\.$", text.stdout.strip()
    )
