"""Where model versions live, so that every host reads what the training worker wrote.

- `DirectoryStore` (the default): MODEL_DIR is a directory every host mounts at the same path (a shared volume);
  a version's path in the database is where every process reads it. Nothing to copy.
- `FsspecStore` (MODEL_STORE_URL set, e.g. `s3://bucket/moderator/models` with `s3fs` installed, or any URL
  fsspec knows): the process that makes a version ready (an import, the worker's promotion) publishes its
  directory to `<url>/<directory name>` before the database names it; a process that needs a version it does not
  have copies it into its own MODEL_DIR first. A copy is made in a temporary directory and renamed into place, and
  a published version carries a marker written last, so neither side ever takes a half-copied version.

Both are reached through `local_version_path(path, settings)` (every load) and `publish_version(directory,
settings)` (every version the database is about to name). The fsspec store is tested with fsspec's own `file://`
filesystem (tests/retraining/test_model_store.py); other backends (S3, GCS) are fsspec's, not exercised here.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from bot.settings import Settings

logger = logging.getLogger(__name__)

COMPLETE_MARKER = ".published"  # written last: a version directory under the URL without it is not complete


class ModelStoreError(RuntimeError):
    """A version could not be published or fetched; the message names it (never credentials: fsspec URLs
    carry none here, they come from the environment)."""


class ModelStore(Protocol):
    def publish(self, directory: Path) -> None: ...

    def local_path(self, path: str | Path) -> Path: ...


class DirectoryStore:
    """A shared volume: the database's path is every host's path."""

    def publish(self, directory: Path) -> None:
        return None

    def local_path(self, path: str | Path) -> Path:
        return Path(path)


class FsspecStore:
    def __init__(self, url: str, model_dir: Path) -> None:
        import fsspec

        self.url = url.rstrip("/")
        self.model_dir = model_dir
        self.fs, self.root = fsspec.core.url_to_fs(self.url)

    def _remote(self, name: str) -> str:
        return f"{self.root.rstrip('/')}/{name}"

    def publish(self, directory: Path) -> None:
        remote = self._remote(directory.name)
        try:
            if self.fs.exists(f"{remote}/{COMPLETE_MARKER}"):
                return  # published before (a version is never changed once published)
            self.fs.put(str(directory), remote, recursive=True)
            self.fs.pipe_file(f"{remote}/{COMPLETE_MARKER}", b"")
        except Exception as error:
            raise ModelStoreError(f"could not publish {directory.name} to {self.url}: {error}") from error
        logger.info("model version %s published to %s", directory.name, self.url)

    def local_path(self, path: str | Path) -> Path:
        """The version's directory on this host: `path` when it is here, else a copy in MODEL_DIR (fetched once)."""
        path = Path(path)
        if (path / "config.json").is_file():
            return path
        target = self.model_dir.resolve() / path.name
        if (target / "config.json").is_file():
            return target
        remote = self._remote(path.name)
        try:
            if not self.fs.exists(f"{remote}/{COMPLETE_MARKER}"):
                raise ModelStoreError(
                    f"model version {path.name} is not (completely) published to {self.url}"
                )
            target.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.fetch-", dir=target.parent))
            try:
                self.fs.get(f"{remote}/", str(staging) + "/", recursive=True)
                (staging / COMPLETE_MARKER).unlink(missing_ok=True)
                staging.rename(target)
            except OSError:
                shutil.rmtree(staging, ignore_errors=True)
                if (target / "config.json").is_file():
                    return target  # another process on this host fetched it meanwhile
                raise
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
        except ModelStoreError:
            raise
        except Exception as error:
            raise ModelStoreError(
                f"could not fetch model version {path.name} from {self.url}: {error}"
            ) from error
        logger.info("model version %s fetched from %s into %s", path.name, self.url, target)
        return target


def model_store(settings: Settings) -> ModelStore:
    if settings.model_store_url:
        return FsspecStore(settings.model_store_url, settings.model_dir)
    return DirectoryStore()


def local_version_path(path: str | Path, settings: Settings) -> Path:
    """Where this process reads the version stored at `path` (fetching it first from MODEL_STORE_URL if needed)."""
    return model_store(settings).local_path(path)


def publish_version(directory: Path, settings: Settings) -> None:
    """Make a version every host can read before the database names it (a no-op on a shared volume)."""
    model_store(settings).publish(directory)
