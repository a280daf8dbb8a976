"""The model store (bot/model_store.py): with MODEL_STORE_URL, a version is published before the database names it,
and a host that does not have it copies it into its own MODEL_DIR before loading it. Exercised with fsspec's real
`file://` filesystem standing in for a bucket; the S3/GCS backends are fsspec's and are not exercised here."""

from __future__ import annotations

import asyncio
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from retraining_helpers import activate_version, make_settings

from bot import storage, versions
from bot.model_store import COMPLETE_MARKER, DirectoryStore, FsspecStore, ModelStoreError, local_version_path
from bot.serving import load_serving_classifier

TEXTS = ["정말 재밌게 봤어요", "시간 낭비였다", "배우 연기는 좋았는데 결말이 별로"]


@pytest.fixture
def bucket(tmp_path: Path) -> str:
    (tmp_path / "bucket").mkdir()
    return f"file://{tmp_path / 'bucket'}"


def probabilities(classifier) -> list[dict[str, float]]:
    return [verdict.probabilities for verdict in classifier.predict(TEXTS)]


async def test_an_imported_version_is_published_and_another_host_loads_its_copy(
    tmp_path: Path, bucket: str, scratch_model_dir: Path
):
    # Host A imports the version: it is published before the database names it.
    host_a = make_settings(tmp_path / "a", model_store_url=bucket)
    await asyncio.to_thread(storage.upgrade_database, host_a.database_url)
    engine = storage.create_engine(host_a.database_url)
    try:
        version_dir = host_a.model_dir / "first-sentiment"
        shutil.copytree(scratch_model_dir, version_dir)
        _, activated = await versions.register(
            storage.make_session_factory(engine), host_a, path=version_dir, activate_it=True
        )
    finally:
        await engine.dispose()
    assert activated
    published = Path(bucket.removeprefix("file://")) / "first-sentiment"
    assert (published / COMPLETE_MARKER).is_file() and (published / "config.json").is_file()

    # Host B has its own MODEL_DIR and not the version: the database's path names a directory it lacks.
    host_b = make_settings(tmp_path / "b", model_store_url=bucket)
    assert not host_b.model_dir.exists()
    local = local_version_path(f"/elsewhere/{version_dir.name}", host_b)
    assert local == host_b.model_dir.resolve() / "first-sentiment"
    assert not (local / COMPLETE_MARKER).exists()  # the marker is the store's, not the version's
    served_b = load_serving_classifier(local, host_b)
    served_a = load_serving_classifier(version_dir, host_a)
    assert probabilities(served_b) == probabilities(served_a)
    assert local_version_path(f"/elsewhere/{local.name}", host_b) == local  # fetched once, then reused


async def test_a_version_not_or_half_published_is_refused_with_its_name(tmp_path: Path, bucket: str):
    store = FsspecStore(bucket, tmp_path / "models")
    with pytest.raises(ModelStoreError, match="run-7-20261206 is not \\(completely\\) published"):
        store.local_path("/elsewhere/run-7-20261206")
    half = Path(bucket.removeprefix("file://")) / "run-8-20261206"
    half.mkdir()
    (half / "config.json").write_text("{}")  # the copy stopped before its marker
    with pytest.raises(ModelStoreError, match="not \\(completely\\) published"):
        store.local_path("/elsewhere/run-8-20261206")
    assert not (tmp_path / "models" / "run-8-20261206").exists()


def test_two_fetches_at_once_on_one_host_leave_one_complete_copy(
    tmp_path: Path, bucket: str, scratch_model_dir: Path
):
    source = tmp_path / "a" / "v1"
    shutil.copytree(scratch_model_dir, source)
    FsspecStore(bucket, tmp_path / "a").publish(source)
    store = FsspecStore(bucket, tmp_path / "b")
    with ThreadPoolExecutor(2) as pool:
        paths = list(pool.map(store.local_path, ["/elsewhere/v1", "/elsewhere/v1"]))
    assert paths[0] == paths[1] == (tmp_path / "b" / "v1").resolve()
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["v1"]  # no staging directory left
    assert sorted(p.name for p in paths[0].iterdir()) == sorted(p.name for p in source.iterdir())


def test_without_a_url_the_database_path_is_every_hosts_path(tmp_path: Path):
    assert DirectoryStore().local_path("/srv/moderator/models/v3") == Path("/srv/moderator/models/v3")
    assert local_version_path("/srv/moderator/models/v3", make_settings(tmp_path)) == Path(
        "/srv/moderator/models/v3"
    )


async def test_a_promoted_candidate_is_published_before_it_is_active(
    tmp_path: Path, bucket: str, session_factory, scratch_model_dir: Path, korpora_root: Path
):
    """A retraining run with MODEL_STORE_URL: the version the gate promotes is in the store, complete, by the
    time the database names it; another host serves its copy."""
    from bot.retraining.service import RetrainingService
    from bot.serving import ServingModel
    from bot.storage import RunStatus, RunTrigger, get_active_model_version
    from classifier import Classifier

    first = await activate_version(session_factory, scratch_model_dir)
    settings = make_settings(
        tmp_path,
        korpora_root=korpora_root,
        model_store_url=bucket,
        promotion_tolerance=100.0,  # whatever a short run trains is promoted: the store is what is tested
        promotion_class_tolerance=100.0,
        calibration_tolerance=100.0,
        gate_eval_size=1000,
    )
    service = RetrainingService(
        settings=settings,
        session_factory=session_factory,
        serving=ServingModel(Classifier.load(scratch_model_dir), first),
        progress_interval_seconds=0.5,
    )
    run_id, _ = await service.request_run(trigger=RunTrigger.ADMIN, requested_by=None)
    outcome = await asyncio.wait_for(service.wait_for_run(run_id), 300)
    assert outcome.status is RunStatus.SUCCEEDED, outcome.summary
    async with session_factory() as session:
        active = await get_active_model_version(session)
    assert active.id == outcome.model_version_id != first
    published = Path(bucket.removeprefix("file://")) / Path(active.path).name
    assert (published / COMPLETE_MARKER).is_file()
    assert (published / "onnx" / "manifest.json").is_file() == settings.fast_inference  # what bots serve
    other_host = make_settings(tmp_path / "other-host", model_store_url=bucket)
    local = local_version_path(f"/elsewhere/{published.name}", other_host)
    assert probabilities(load_serving_classifier(local, other_host)) == probabilities(
        load_serving_classifier(active.path, settings)
    )
