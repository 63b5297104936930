"""`incident-ledger import PATH`: a legacy folder into the ledger (api/importer.py), with progress
lines, a summary per table and what the data held that today's rules would refuse."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from api.importer import ImportSummary, import_folder
from domain.errors import LedgerError
from domain.legacy import FINDINGS

COLUMNS = ("rows", "imported", "skipped", "deferred", "records", "events")


def run_import(args: argparse.Namespace) -> int:
    from api.cli import _settings
    from api.service import Service

    service = Service.start(_settings(args), projector=False)
    try:
        print(f"importing {args.path} ...", flush=True)
        try:
            summary = import_folder(
                service, args.path, progress=lambda line: print(line, flush=True)
            )
        except LedgerError as refused:  # malformed (import.malformed) or import.conflict
            print(
                f"incident-ledger import: {refused.message} Nothing was recorded.",
                file=sys.stderr,
                flush=True,
            )
            return 1
        report(summary)
    finally:
        service.close()
    return 0


def report(summary: ImportSummary) -> None:
    if summary.nothing_new:
        print(f"appended nothing: {summary.path} was imported before", flush=True)
    else:
        rate = summary.events / summary.seconds if summary.seconds else 0.0
        print(
            f"imported {summary.events} events in {summary.appends} appends, "
            f"{summary.seconds:.1f} s ({rate:,.0f} events/s)",
            flush=True,
        )
    print(f"{'table':<30}" + "".join(f"{c:>10}" for c in COLUMNS))
    for table, counts in summary.tables.items():
        print(f"{table:<30}" + "".join(f"{getattr(counts, c):>10}" for c in COLUMNS))
    total = {c: sum(getattr(t, c) for t in summary.tables.values()) for c in COLUMNS}
    print(f"{'total':<30}" + "".join(f"{total[c]:>10}" for c in COLUMNS))
    deferred = [t for t, counts in summary.tables.items() if counts.deferred]
    if deferred:
        print(
            f"deferred (not in this ledger yet: SLA agreements, and the audit trail's entries "
            f"about them): {', '.join(deferred)}"
        )
    if summary.findings:
        print("recorded as found (what today's rules would refuse, and times that disagree):")
        for code, sources in summary.findings.items():
            shown = ", ".join(sources[:3]) + (", ..." if len(sources) > 3 else "")
            print(f"  {len(sources):>4} {FINDINGS.get(code, code)} [{code}]: {shown}")
    sys.stdout.flush()


def add_import_command(add: Any) -> None:
    p = add(
        "import",
        run_import,
        "Import a legacy system's folder (22 tables, one JSON object of key → row each; naive "
        "times are UTC) as events that keep its numbers, ids and times. Checks the whole "
        "folder before appending anything; importing it again appends nothing.",
    )
    p.add_argument("path", help="the folder holding <table>.json for each of the 22 tables")
