"""How fast the live page shows data, measured in Debian's Chromium (headless, Playwright).

  1. time to first data: page load (navigation start) -> the first filled value shown, for a page opened
     with two instruments selected (``/#ids=A,B``); a fresh page each run;
  2. update latency: a record written to HBase (MarketDataStore.write, the sink's cells) -> its value
     shown in the open page (the live feed polls md:latest every ``--poll-ms``, then the page renders).
Prints each run and the medians, with the configuration used.

    .venv/bin/python -m bench.serving_bench [--runs 5] [--updates 20] [--poll-ms 300]

Needs HBase, its Thrift server and the schema registry (`tickflow stack up hbase-thrift registry`: history
cells are framed with registry ids) and Chromium; serves the app in this process on a free port and writes
two scratch instruments (TEST:bench-...).
"""

from __future__ import annotations

import argparse
import shutil
import socket
import statistics
import time
import uuid
from typing import Any

from playwright.sync_api import sync_playwright

from tickflow.hbase.store import MarketDataStore
from tickflow.serving.app import create_app
from tickflow.serving.server import running
from tickflow.serving.settings import ServingSettings
from tickflow.settings import Settings

VALUE_SHOWN = """([id, text]) => {
  const v = document.querySelector(`#values td[data-instrument="${id}"][data-field="bid_price"] .v`);
  const shown = v && v.textContent !== "" && (text === null || v.textContent === text);
  return shown ? [performance.now(), Date.now()] : false;
}"""


def record(instrument: str, bid: float) -> dict[str, Any]:
    now = time.time_ns() // 1000
    return {"instrument_id": instrument, "event_time": now, "event_count": 1, "enriched": True,
            "bid_price": bid, "bid_price_as_of": now, "ask_price": bid + 0.1, "ask_price_as_of": now,
            "mid": bid + 0.05, "ingest_time": now, "processed_time": now, "batch_id": 0}  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="page loads for the time to first data")
    parser.add_argument("--updates", type=int, default=20, help="writes for the update latency")
    parser.add_argument("--poll-ms", type=int, default=ServingSettings().poll_ms, help="the live feed's poll")
    args = parser.parse_args()

    settings = Settings()
    store = MarketDataStore(settings)
    ids = [f"TEST:bench-{uuid.uuid4().hex[:8]}-{n}" for n in "AB"]
    store.write(record(i, 100.0) for i in ids)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("The benchmark needs Debian's Chromium: apt-get install chromium.")
    serving = ServingSettings(reference_from_hive=False, poll_ms=args.poll_ms)
    print(f"poll {args.poll_ms} ms, 2 instruments selected, headless Chromium, HBase {store.address}")

    with running(create_app(settings, serving), "127.0.0.1", free_port()) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        first_data = []
        for run in range(args.runs):
            page = browser.new_page()
            page.goto(f"{url}/#ids={','.join(ids)}", wait_until="commit")
            shown_at, _ = page.wait_for_function(VALUE_SHOWN, arg=[ids[0], None], polling="raf").json_value()
            first_data.append(shown_at)
            print(f"  load {run + 1}: first value shown {shown_at:.0f} ms after navigation start")
            page.close()

        page = browser.new_page()
        page.goto(f"{url}/#ids={','.join(ids)}")
        page.wait_for_function(VALUE_SHOWN, arg=[ids[0], None], polling="raf")
        latencies = []
        for n in range(args.updates):
            bid = 200.0 + n
            written = time.time()
            store.write([record(ids[n % 2], bid)])
            _, shown = page.wait_for_function(VALUE_SHOWN, arg=[ids[n % 2], f"{bid:g}"], polling="raf").json_value()
            latencies.append(shown - written * 1000)
            time.sleep(0.05 + (n % 5) * 0.037)  # spread the writes over the poll's phase
        browser.close()

    print(f"time to first data: median {statistics.median(first_data):.0f} ms over {args.runs} page loads "
          f"(min {min(first_data):.0f}, max {max(first_data):.0f})")  # fmt: skip
    print(f"update latency (write -> shown): median {statistics.median(latencies):.0f} ms over {args.updates} "
          f"writes (min {min(latencies):.0f}, max {max(latencies):.0f})")  # fmt: skip


if __name__ == "__main__":
    main()
