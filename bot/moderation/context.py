"""What every use case shares: the database, the served model, the settings and the label rule."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from bot.serving import MicroBatcher, ServingModel
from bot.settings import Settings
from bot.storage import LabelRule, RunTrigger

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from bot.retraining.reporting import RunReporter


class Retrainer(Protocol):
    """The retraining service, as the bot needs it: queue a run, returns (run id, newly created)."""

    async def request_run(
        self, *, trigger: RunTrigger, requested_by: int | None, reporter: RunReporter | None
    ) -> tuple[int, bool]: ...


class UseCaseContext:
    def __init__(
        self,
        *,
        session_factory: async_sessionmaker[AsyncSession],
        serving: ServingModel,
        batcher: MicroBatcher,
        settings: Settings,
        retrainer: Retrainer | None = None,
    ) -> None:
        self.session_factory = session_factory
        self.serving = serving
        self.batcher = batcher
        self.settings = settings
        self.retrainer = retrainer
        self.label_rule = LabelRule.from_settings(settings)

    def _transaction(self) -> Any:
        return self.session_factory.begin()

    def labels(self) -> dict[int, str]:
        """Label ids and names of the model being served."""
        return dict(sorted(self.serving.active.classifier.id2label.items()))

    @property
    def anyone_can_check(self) -> bool:
        """Whether anybody may answer the review queue (admins or reviewers are configured)."""
        return bool(self.settings.admin_ids or self.settings.reviewer_ids)
