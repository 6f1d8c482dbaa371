"""spark-submit entry point: the long-running enrichment stream (md.events -> md.enriched).

All settings come from the environment (TICKFLOW_* and TICKFLOW_STREAM_*, see
tickflow.settings and tickflow.stream.settings.StreamSettings). SIGTERM stops the query after its
current micro-batch; the checkpoint makes the next start continue where this one stopped.
"""

from __future__ import annotations

import logging
import sys


def main() -> int:
    from tickflow.errors import TickflowError
    from tickflow.settings import Settings
    from tickflow.stream.app import run_stream
    from tickflow.stream.settings import StreamSettings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("py4j").setLevel(logging.WARNING)  # one INFO line per gateway call otherwise
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per registry request (every batch)
    try:
        run_stream(Settings(), StreamSettings())
    except TickflowError as error:
        print(f"enrichment stream: {error}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
