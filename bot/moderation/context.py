"""What every use case shares: the database, the served model, the settings and the label rule."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from bot.serving import MicroBatcher, ServingModel, TaskServing
from bot.settings import Settings
from bot.storage import LabelRule, RunTrigger, Task
from classifier.tasks import TASK_ID2LABEL

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from bot.retraining.reporting import RunReporter


class Retrainer(Protocol):
    """The retraining service, as the bot needs it: queue a run, returns (run id, newly created)."""

    async def request_run(
        self,
        *,
        trigger: RunTrigger,
        requested_by: int | None,
        reporter: RunReporter | None,
        task: Task = Task.SENTIMENT,
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
        toxicity: TaskServing | None = None,
    ) -> None:
        self.session_factory = session_factory
        # Sentiment, the task every review gets a verdict of; toxicity is judged too when a model for it is
        # served (`moderator model import` of a toxicity version, or the quick start's).
        self.serving = serving
        self.batcher = batcher
        self.toxicity = toxicity
        self.settings = settings
        self.retrainer = retrainer
        self.label_rule = LabelRule.from_settings(settings)

    def _transaction(self) -> Any:
        return self.session_factory.begin()

    def labels(self, task: Task = Task.SENTIMENT) -> dict[int, str]:
        """Label ids and names of the task's model being served (the task's own labels when none is)."""
        serving = self.serving if task is Task.SENTIMENT else self.toxicity and self.toxicity.serving
        if task is Task.SENTIMENT or (serving is not None and serving.is_loaded):
            return dict(sorted(serving.active.classifier.id2label.items()))
        return dict(TASK_ID2LABEL[task])

    async def aclose_serving(self) -> None:
        """Stop every task's micro-batcher (at shutdown)."""
        await self.batcher.aclose()
        if self.toxicity is not None:
            await self.toxicity.batcher.aclose()

    @property
    def anyone_can_check(self) -> bool:
        """Whether anybody may answer the review queue (admins or reviewers are configured)."""
        return bool(self.settings.admin_ids or self.settings.reviewer_ids)
