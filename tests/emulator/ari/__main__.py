"""`python -m tests.emulator.ari --port 8088 --user openads --password secret` (the demo's Asterisk)."""

from __future__ import annotations

import argparse
import asyncio
import logging

from .scenario import AriEmulator


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.emulator.ari", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8088)
    parser.add_argument("--user", default="openads")
    parser.add_argument("--password", default="openads")
    parser.add_argument("--recordings-dir", default="recordings-emulator")
    parser.add_argument("--lenient", action="store_true", help="record spec violations but answer as Asterisk would")
    parser.add_argument("--cdr-db", default=None, help="write CDRs into this SQLite file as cdr_sqlite3_custom does")
    parser.add_argument("--fallback-dial", default="", help="phones the dialplan fallback rings: PJSIP/disp1&PJSIP/disp2")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    async def run() -> None:
        emu = AriEmulator(
            user=args.user, password=args.password, host=args.host, port=args.port,
            recordings_dir=args.recordings_dir, strict=not args.lenient, cdr_path=args.cdr_db,
            fallback_dial=[d for d in args.fallback_dial.split("&") if d],
        )
        await emu.start_async()
        logging.info("ARI emulator on %s (events: %s)", emu.ari_url, emu.ws_url("<app>"))
        try:
            await asyncio.Event().wait()
        finally:
            await emu.stop_async()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
