"""Benchmark: does the toxicity model learn what people correct? The real bot, through the stand-in.

The systematic error: the first toxicity model (`make run`'s: multilingual-e5-small-ko fine-tuned one epoch on
3,000 BEEP! comments, entertainment news, where complaints and abuse go together) flags **harsh but clean reviews**.
Those are rated 1-4 Naver movie reviews outside NSMC (`data/naver_movie_reviews.tsv.gz`) that complain
(`COMPLAINT`: 지루, 아깝, 실망, 최악, ...) and hold no word of the profanity and insult list `PROFANE`; by that
construction their true label is 정상 (a rude review the list misses counts against every model alike).

Through the real python-telegram-bot stack, the runner, a real SQLite file and the retraining service, with the
DEFAULT settings (only where things live and who the admin and the reviewer are, and no scheduled runs; `--smoke`
shrinks the run to check the plumbing), from the quick-start models and a fresh database:
- 12 users, each in a private chat with the bot, send 300 such reviews and 60 toxic comments (K-MHaS's training
  part: never in the toxicity gate set). K-MHaS names hate categories, not BEEP!'s classes; the users read a
  comment that targets origin, age, gender, race or religion as 혐오 and any other toxic one (physical, politics,
  profanity) as 공격적 (`trainer.toxicity.kmhas_as_beep`), BEEP!'s own distinction. Under a comment the bot flags, a user presses
  ⚠️ 맞아요 when its class is the right one, else ⚠️ 아니에요 and then the right class (the `label:<verdict>:<id>`
  button the bot offers); under a harsh but clean review it flags, ⚠️ 아니에요 and then 정상.
- A reviewer (REVIEWER_IDS) works `/review` in a private chat, answering each disputed item with its true label,
  for at most 40 answers or until no disputed item is left; the admin sends `/retrain 표현`.

Measured: the labels given and what the bot answered, the reviewer's answers, the labels the run counted; the
pattern error (share of 600 held-out pattern reviews, never sent, flagged 공격적 or 혐오; 95% Wilson intervals)
before and after; per-class errors and macro-F1 on BEEP! dev (three classes, the gate set's part), with a paired
bootstrap interval of the macro-F1 change; per-class errors on K-MHaS's held-out fifth (binary); the gate's record.
Goal (issue 15): the run is promoted with default settings, the pattern's error falls >= 50%, no class's error rises
more than 10 points, and macro-F1 on the gate set does not fall.

    .venv/bin/python -m bench.bench_toxicity_loop [--workdir DIR] [--smoke]

Writes bench/results/toxicity_loop.json (with --smoke: only under the work folder). About 15 min on 2 quiet cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import random
import shutil
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.bot_under_test import (
    ADMIN,
    REVIEWER,
    SETTINGS_REPORTED,
    SHARED_DIR,
    SMOKE,
    BotUnderTest,
    ensure_quickstart_model,
    plain,
    review_item_verdict_id,
)
from bench.learning_loop_data import DEFAULT_MODEL_DIR, load_rated_reviews, wilson_ci

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS = REPO_ROOT / "bench" / "results" / "toxicity_loop.json"
SEED = 20261205
USERS = tuple(range(7300, 7312))
SENT_PATTERN, HELD_OUT_PATTERN, SENT_TOXIC = 300, 600, 60
REVIEW_BOUND = 40
COMPLAINT = r"지루|아깝|실망|졸려|졸았|별로|재미없|노잼|최악|유치|엉성|허술|뻔하|어색"
PROFANE = (
    r"씨발|시발|ㅅㅂ|ㅆㅂ|병신|ㅂㅅ|ㅄ|븅신|새끼|새기|색기|좆|존나|졸라|개같|개새|미친|미쳤|꺼져|쓰레기|쓰레게|죽어|죽여|"
    r"닥쳐|등신|멍청|찐따|한남|김치녀|된장|년|놈|ㅗ|애미|애비|니미|느금|지랄|염병|또라이|돌아이|대가리|호구|"
    r"양아치|개판|개뿔|개똥|개소리|개떡|발연기|알바|OOO|ㅉㅉ|수준|정신|뇌"
)
CLEAN = "정상"
TOXIC = ("공격적", "혐오")

logger = logging.getLogger("bench.toxicity_loop")


def harsh_but_clean_reviews(shared_dir: Path) -> list[str]:
    """Complaining, rated 1-4 reviews with no profanity or insult, deduplicated, in a fixed random order."""
    from bot.reviews import is_review

    frame = load_rated_reviews(shared_dir)
    texts = frame.loc[
        (frame["label"] == 0)
        & frame["text"].str.contains(COMPLAINT)
        & ~frame["text"].str.contains(PROFANE)
        & (frame["text"].str.len() >= 10),
        "text",
    ]
    unique = sorted({text for text in texts if is_review(text)})
    random.Random(SEED).shuffle(unique)
    return unique


def toxic_comments(shared_dir: Path, count: int) -> dict[str, str]:
    """K-MHaS comments with a hate category, from its training part (outside the gate set): text -> class."""
    from bot.reviews import is_review
    from trainer.toxicity import TOXICITY_ID2LABEL, load_kmhas

    train, _ = load_kmhas(shared_dir / "korpora", three_class=True)
    toxic = {
        text: TOXICITY_ID2LABEL[label]
        for text, label in zip(train.texts, train.labels, strict=True)
        if label != 0 and is_review(text)
    }
    chosen = random.Random(SEED).sample(sorted(toxic), count)
    return {text: toxic[text] for text in chosen}


# --- scoring ----------------------------------------------------------------------------------------------


def evaluate(model_path: Path, settings, held_out_pattern: list[str]) -> dict[str, Any]:
    """As the bot serves the model: pattern flags, BEEP! dev answers, K-MHaS held-out answers."""
    from bot.serving import load_serving_classifier
    from trainer.toxicity import TOXICITY_ID2LABEL, load_beep, load_kmhas

    classifier = load_serving_classifier(model_path, settings)
    root = settings.korpora_root
    dev = load_beep(root, "dev")
    _, kmhas = load_kmhas(root)
    pattern = [v.label_name for v in classifier.predict(held_out_pattern)]
    beep = [v.label_name for v in classifier.predict(dev.texts)]
    binary = [v.label_name != CLEAN for v in classifier.predict(kmhas.texts)]
    return {
        "pattern": pattern,
        "beep_truth": [TOXICITY_ID2LABEL[label] for label in dev.labels],
        "beep": beep,
        "kmhas_truth": [bool(label) for label in kmhas.labels],
        "kmhas": binary,
    }


def _macro_f1(truth: list[str], predicted: list[str]) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(truth, predicted, labels=[CLEAN, *TOXIC], average="macro", zero_division=0))


def summarise(answers: dict[str, Any]) -> dict[str, Any]:
    flagged = sum(label != CLEAN for label in answers["pattern"])
    n = len(answers["pattern"])
    per_class = {}
    for name in (CLEAN, *TOXIC):
        rows = [p for t, p in zip(answers["beep_truth"], answers["beep"], strict=True) if t == name]
        per_class[name] = {"n": len(rows), "error": round(sum(p != name for p in rows) / len(rows), 4)}
    kmhas = {}
    for name, truth in (("clean", False), ("toxic", True)):
        rows = [p for t, p in zip(answers["kmhas_truth"], answers["kmhas"], strict=True) if t == truth]
        kmhas[name] = {"n": len(rows), "error": round(sum(p != truth for p in rows) / len(rows), 4)}
    return {
        "pattern_error": round(flagged / n, 4),
        "pattern_error_ci95": [round(value, 4) for value in wilson_ci(flagged, n)],
        "pattern_n": n,
        "beep_dev_macro_f1": round(_macro_f1(answers["beep_truth"], answers["beep"]), 4),
        "beep_dev_per_class": per_class,
        "kmhas_held_out_binary": kmhas,
    }


def paired_macro_f1_change(before: dict[str, Any], after: dict[str, Any], resamples: int = 2000) -> dict:
    """Macro-F1 after minus before on BEEP! dev, with a paired bootstrap 95% interval."""
    import numpy as np

    truth = np.array(before["beep_truth"])
    first, second = np.array(before["beep"]), np.array(after["beep"])
    rng = np.random.default_rng(SEED)
    changes = []
    for _ in range(resamples):
        index = rng.integers(0, len(truth), len(truth))
        changes.append(
            _macro_f1(list(truth[index]), list(second[index]))
            - _macro_f1(list(truth[index]), list(first[index]))
        )
    low, high = np.percentile(changes, [2.5, 97.5])
    point = _macro_f1(list(truth), list(second)) - _macro_f1(list(truth), list(first))
    return {"points": round(100 * point, 2), "ci95_points": [round(100 * low, 2), round(100 * high, 2)]}


# --- through the bot -------------------------------------------------------------------------------------


async def toxicity_verdicts(bot: BotUnderTest, reviews) -> dict[int, Any]:
    """Each sent review's toxicity verdict (by the sentiment verdict id the bench tracks reviews by)."""
    from sqlalchemy import select

    from bot.storage import Task, Verdict

    found = {}
    async with bot.sessions() as session:
        for review in reviews:
            verdict = await session.scalar(
                select(Verdict).where(
                    Verdict.chat_id == review.message["chat"]["id"],
                    Verdict.message_id == review.message["message_id"],
                    Verdict.task == Task.TOXICITY,
                )
            )
            if verdict is not None:
                found[review.verdict_id] = verdict
    return found


async def label_flagged(bot: BotUnderTest, reviews, verdicts, truth: dict[str, str]) -> list[dict[str, Any]]:
    """Under every flagged verdict its sender gives the true class: ⚠️ 맞아요 when the bot has it, else the
    right class's button (정상 for a harsh but clean review)."""
    from trainer.toxicity import TOXICITY_ID2LABEL

    label_id = {name: index for index, name in TOXICITY_ID2LABEL.items()}
    events = []
    for review in reviews:
        verdict = verdicts.get(review.verdict_id)
        if verdict is None or verdict.label_name == CLEAN:
            continue  # nothing flagged: the bot shows no toxicity buttons
        right = truth[review.text]
        confirm = verdict.label_name == right
        data = f"ok:{verdict.id}" if confirm else f"label:{verdict.id}:{label_id[right]}"
        answer = await bot.press(review.reply, data, review.sender)
        events.append(
            {
                "user": review.sender,
                "verdict_id": verdict.id,
                "kind": "confirmation" if confirm else f"correction to {right}",
                "answer": bot.kinds(answer),
            }
        )
    return events


async def work_queue(bot: BotUnderTest, truth_of: dict[int, str], bound: int) -> dict[str, Any]:
    """The reviewer answers disputed toxicity items with their true class, until `bound` answers or an item
    nobody labelled."""
    item = await bot.command("/review", REVIEWER)
    answers: list[dict[str, Any]] = []
    stop = "bound reached"
    while len(answers) < bound:
        verdict_id = review_item_verdict_id(item)
        if verdict_id is None:
            stop = f"no item ({bot.kinds(item.get('text', ''))})"
            break
        if not await bot.untrusted_labels(verdict_id):
            stop = "no disputed item left"
            break
        truth = truth_of.get(verdict_id)
        if truth is None:
            stop = f"verdict {verdict_id} is not a toxicity verdict the bench sent"
            break
        index = len(bot.api.requests)
        answer = await bot.press_button_named(item, truth, REVIEWER)
        if answer is None:
            stop = f"no button named {truth}"
            break
        answers.append({"verdict_id": verdict_id, "truth": truth, "answer": bot.kinds(answer)})
        item = await bot.next_queue_item(REVIEWER, index, verdict_id)
        if item is None:
            stop = "no next item"
            break
    return {"bound": bound, "answers": len(answers), "stop": stop, "items": answers}


# --- main -------------------------------------------------------------------------------------------------


async def main_async(args) -> dict[str, Any]:
    started = time.perf_counter()
    load_at_start = [round(value, 2) for value in os.getloadavg()]
    ensure_quickstart_model(args.model, args.shared_dir)
    ensure_quickstart_model(args.toxicity_model, args.shared_dir, task="toxicity")
    pattern = harsh_but_clean_reviews(args.shared_dir)
    sent_pattern, held_out = pattern[:SENT_PATTERN], pattern[SENT_PATTERN : SENT_PATTERN + HELD_OUT_PATTERN]
    toxic = toxic_comments(args.shared_dir, SENT_TOXIC)
    truth = {text: CLEAN for text in sent_pattern} | toxic
    traffic = [(text, 0) for text in sent_pattern] + [(text, 0) for text in toxic]
    random.Random(SEED).shuffle(traffic)
    reviews_of = {user: traffic[index :: len(USERS)] for index, user in enumerate(USERS)}

    bot = BotUnderTest(args.workdir, args.shared_dir, args.model, toxicity_model_dir=args.toxicity_model)
    await bot.start()
    try:
        settings = bot.settings
        starting = settings.model_dir / "quickstart-toxicity"
        before_answers = await asyncio.to_thread(evaluate, starting, settings, held_out)
        sent = await bot.send_privately(reviews_of)
        verdicts = await toxicity_verdicts(bot, sent)
        labels = await label_flagged(bot, sent, verdicts, truth)
        truth_of = {verdicts[r.verdict_id].id: truth[r.text] for r in sent if r.verdict_id in verdicts}
        stats_before = (await bot.command("/stats", ADMIN)).get("text", "")
        queue = await work_queue(bot, truth_of, REVIEW_BOUND)
        run = await bot.retrain("표현")
    finally:
        await bot.stop()
    after_answers = (
        await asyncio.to_thread(evaluate, Path(run["model_path"]), settings, held_out)
        if run["model_path"]
        else None
    )
    before, after = summarise(before_answers), summarise(after_answers) if after_answers else None
    flagged_sent = Counter(
        ("pattern" if truth[r.text] == CLEAN else "toxic", verdicts[r.verdict_id].label_name != CLEAN)
        for r in sent
        if r.verdict_id in verdicts
    )
    goal: dict[str, Any] = {
        "rule": "promoted; pattern error -50%; no class's error +10 points; gate macro-F1 not lower",
        "met": False,
    }
    if after is not None:
        rises = {
            **{
                f"beep {name}": round(100 * (after["beep_dev_per_class"][name]["error"] - entry["error"]), 2)
                for name, entry in before["beep_dev_per_class"].items()
            },
            **{
                f"kmhas {name}": round(
                    100 * (after["kmhas_held_out_binary"][name]["error"] - entry["error"]), 2
                )
                for name, entry in before["kmhas_held_out_binary"].items()
            },
        }
        reduction = 1 - after["pattern_error"] / before["pattern_error"] if before["pattern_error"] else 0.0
        macro = paired_macro_f1_change(before_answers, after_answers)
        goal |= {
            "pattern_error_reduction": round(reduction, 4),
            "error_change_points": rises,
            "beep_dev_macro_f1_change": macro,
            "met": bool(
                run["promoted"] and reduction >= 0.5 and max(rises.values()) <= 10 and macro["points"] >= 0
            ),
        }
    return {
        "benchmark": "toxicity_loop",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python -m bench.bench_toxicity_loop", *sys.argv[1:]]),
        "smoke": bool(args.smoke),
        "machine": {
            "cpu_cores": os.cpu_count(),
            "platform": platform.platform(),
            "load_average_at_start": load_at_start,
            "load_average_at_end": [round(value, 2) for value in os.getloadavg()],
        },
        "settings": {key: plain(getattr(settings, key, None)) for key in SETTINGS_REPORTED},
        "traffic": {
            "users": len(USERS),
            "pattern_reviews_sent": len(sent_pattern),
            "toxic_comments_sent": len(toxic),
            "toxic_comments_by_class": dict(Counter(toxic.values())),
            "held_out_pattern_reviews": len(held_out),
            "pattern_pool": len(pattern),
            "flagged_when_sent": {
                f"{kind} flagged={flag}": count for (kind, flag), count in flagged_sent.items()
            },
        },
        "labels": {
            "given": len(labels),
            "by_kind": dict(Counter(event["kind"] for event in labels)),
            "bot_answers": dict(Counter(event["answer"] for event in labels)),
        },
        "stats_before_run": stats_before,
        "reviewer": queue,
        "run": {key: value for key, value in run.items() if key != "summary"} | {"summary": run["summary"]},
        "before": before,
        "after": after,
        "goal": goal,
        "wall_seconds": round(time.perf_counter() - started, 1),
    }


def main(argv: list[str] | None = None) -> None:
    from bench import bot_under_test
    from bot.quickstart import FIRST_TOXICITY_MODEL_DIR

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared-dir", type=Path, default=SHARED_DIR)
    parser.add_argument(
        "--model", type=Path, default=DEFAULT_MODEL_DIR, help="the quick-start sentiment model"
    )
    parser.add_argument(
        "--toxicity-model",
        type=Path,
        default=FIRST_TOXICITY_MODEL_DIR,
        help="the first toxicity model, make run's (trained with its recipe if missing)",
    )
    parser.add_argument("--workdir", type=Path, default=REPO_ROOT / "data" / "bench-toxicity-loop")
    parser.add_argument(
        "--smoke", action="store_true", help="tiny run to check the plumbing (figures meaningless)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.smoke:
        bot_under_test.SETTINGS_OVERRIDES.update(SMOKE)
    if args.workdir.exists():
        shutil.rmtree(args.workdir)
    args.workdir.mkdir(parents=True)
    results = asyncio.run(main_async(args))
    output = args.workdir / "toxicity_loop.json" if args.smoke else RESULTS
    output.write_text(json.dumps(results, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(results["goal"], ensure_ascii=False, indent=2))
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
