"""A claimer process for the job-store concurrency tests: opens its own Database, waits at a barrier
with its siblings, then claims until nothing is left and reports the job ids it got."""

from __future__ import annotations

import asyncio
import time
from typing import Any


def claim_all(url: str, runner: dict[str, Any], barrier: Any, out: Any) -> None:
    from benchrun.server.db import Runner, open_database

    async def main() -> list[str]:
        db = open_database(url)
        try:
            await db.get_job("warm-up")  # connect before the start line
            barrier.wait(30)
            got = []
            while (job := await db.claim_job(Runner(**runner), time.time())) is not None:
                got.append(job.id)
            return got
        finally:
            await db.close()

    try:
        out.put(("ok", asyncio.run(main())))
    except BaseException as e:  # report, so the parent fails with the cause instead of hanging
        out.put(("error", repr(e)))
