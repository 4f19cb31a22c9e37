"""`TestCallFlow`: an administrator's test call to a dispatcher's phone (the status page's
«Тестовый звонок», decision 0029).

    NEW ─originate the phone─▶ RINGING ─answered─▶ PLAYING (openads/test-call) ─prompt over─▶ hang up
    RINGING ─the phone never answered─▶ ENDED (busy / no answer / failed, by the hangup cause)

The request is a `test_calls` row the panel wrote; the scheduler claims it (`claim_test_calls`)
and starts this session. The result goes back to the row (`finish_test_call`): answered (the
prompt played, or the phone hung up during it), busy, no answer, or failed with Asterisk's reason.
No call row: nobody from outside called.
"""

from __future__ import annotations

import enum
import logging
from typing import Any, ClassVar

from ari_app.client import AriError
from ari_app.dispatcher import FLOWS, Event, Session
from ari_app.flows.base import CallFlow, cause_of
from ari_app.media import PROMPT_TEST_CALL, caller_id
from models.services.telephony_status import TestCallJob, finish_test_call
from openads import channel_vars as cv

log = logging.getLogger(__name__)

FLOW_NAME = "test_call"
CALLER_NAME = "Тестовый звонок"
_BUSY_CAUSES = {17, 21}  # busy, call rejected (declined on the phone)
_NO_ANSWER_CAUSES = {16, 18, 19}


class TestCallState(enum.Enum):
    NEW = "new"
    RINGING = "ringing"
    PLAYING = "playing"
    ENDED = "ended"

    __test__ = False


T = TestCallState
TRANSITIONS: dict[TestCallState, frozenset[TestCallState]] = {
    T.NEW: frozenset({T.RINGING, T.ENDED}),
    T.RINGING: frozenset({T.PLAYING, T.ENDED}),
    T.PLAYING: frozenset({T.ENDED}),
    T.ENDED: frozenset(),
}


def result_of_cause(cause: int) -> tuple[str, str]:
    """A phone that never answered: (test call status, detail)."""
    if cause in _BUSY_CAUSES:
        return "busy", f"занято или вызов отклонён (причина {cause})"
    if cause in _NO_ANSWER_CAUSES:
        return "no_answer", f"трубку не сняли (причина {cause})"
    return "failed", f"вызов не прошёл (причина {cause})"


class TestCallFlow(CallFlow):
    name: ClassVar[str] = FLOW_NAME
    State = TestCallState
    TRANSITIONS = TRANSITIONS
    __test__ = False

    def __init__(self, session: Session) -> None:
        super().__init__(session)
        self.job: TestCallJob | None = None
        self.reported = False

    async def on_test_call_begin(self, event: Event) -> None:
        job = event.raw["job"]
        assert isinstance(job, TestCallJob)
        self.job = job
        self.to(T.RINGING, job.endpoint)
        self.session.claim_channel(job.channel_id, originated=True)
        try:
            await self.ari.originate(
                job.endpoint, app_args=f"{FLOW_NAME},{job.id}", channel_id=job.channel_id,
                caller_id=caller_id(job.caller_number, CALLER_NAME), timeout=self.config.ring_timeout,
                variables={cv.FLOW: FLOW_NAME},
            )
        except AriError as exc:
            log.warning("test call %s to %s: originate failed: %s", job.id, job.endpoint, exc)
            self.session.release_channel(job.channel_id)
            self.to(T.ENDED, "originate failed")
            await self._report("failed", f"Asterisk не позвонил: {exc.message}"[:200])
            self.session.finish()

    async def on_stasis_start(self, event: Event) -> None:
        if self.job is None or event.channel_id != self.job.channel_id or self.state != T.RINGING:
            return
        self.to(T.PLAYING, "answered")
        await self.play(self.job.channel_id, PROMPT_TEST_CALL, self._after_prompt)

    async def _after_prompt(self, event: Event) -> None:
        if self.job is None or self.state != T.PLAYING:
            return
        self.to(T.ENDED, "prompt over")
        playback = event.raw.get("playback")
        if isinstance(playback, dict) and playback.get("state") == "done":
            await self._report("answered", "трубку сняли, подсказка прозвучала")
        else:
            await self._report("answered", "трубку сняли, но подсказка не доиграла")
        await self.hangup(self.job.channel_id)

    async def on_channel_destroyed(self, event: Event) -> None:
        if self.job is None or event.channel_id != self.job.channel_id:
            return
        if self.state == T.RINGING:
            self.to(T.ENDED, f"cause {cause_of(event)}")
            await self._report(*result_of_cause(cause_of(event)))
        elif self.state == T.PLAYING:
            self.to(T.ENDED, "hung up during the prompt")
            await self._report("answered", "трубку сняли и положили во время подсказки")

    async def _report(self, status: str, detail: str) -> None:
        if self.reported or self.job is None:
            return
        self.reported = True
        job_id = self.job.id

        def finish(s: Any) -> None:
            finish_test_call(s, test_call_id=job_id, status=status, detail=detail)

        log.info("test call %s to %s: %s (%s)", job_id, self.job.endpoint, status, detail)
        await self.db.write(finish)

    async def on_error(self, event: Event, exc: Exception) -> None:
        if self.job is None:
            return
        await self._report("failed", f"внутренняя ошибка: {exc!r}"[:200])
        await self.hangup(self.job.channel_id)

    async def on_session_end(self) -> None:
        if self.job is not None and not self.reported:
            await self._report("failed", "звонок прервался")


FLOWS[FLOW_NAME] = TestCallFlow
