"""``python -m chaos [--bounded]``: the chaos suite (``make chaos``); the report
is printed and written as JSON to <state dir>/chaos/. Exit status 1 if an
invariant failed or a fault was not recovered from."""

import argparse
import sys
import warnings

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")

from chaos.report import render  # noqa: E402
from chaos.run import BOUNDED, FULL, run, write_report  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m chaos", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--bounded", action="store_true", help="the short schedule `make test` runs (about 3 min)"
    )
    args = parser.parse_args(argv)
    schedule = BOUNDED if args.bounded else FULL
    report = run(schedule, log=lambda line: print(line, flush=True))
    path = write_report(report)
    print(render(report), flush=True)
    print(f"chaos: report written to {path}", flush=True)
    sys.exit(0 if report.get("ok") else 1)


if __name__ == "__main__":
    main()
