"""The cohort's HTML report (``OUT/index.html``): one self-contained page, a sortable table of the
pairs worst first with a thumbnail of each pair's ``qa.png`` (linked relatively, so the folder can
be moved or zipped as a whole).

Written by hand: the page must open offline (no CDN scripts), and the few lines of table sorting
it needs are smaller than any dependency that would bring them.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

import pandas as pd

REPORT = "index.html"

_STYLE = """
body { font-family: sans-serif; margin: 1.5em; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: middle; }
th { background: #eee; cursor: pointer; user-select: none; }
th.sorted-asc::after { content: " \\25B2"; } th.sorted-desc::after { content: " \\25BC"; }
tr.flagged td { background: #fde2e2; } tr.failed td { background: #eee; color: #a00; }
img { height: 96px; }
"""

# Click a header to sort by it (again to reverse); cells sort by their data-sort value, numbers as numbers.
_SCRIPT = """
document.querySelectorAll("table.qa th").forEach(function (th, column) {
  th.addEventListener("click", function () {
    var body = th.closest("table").tBodies[0];
    var ascending = !th.classList.contains("sorted-asc");
    th.closest("tr").querySelectorAll("th").forEach(function (h) { h.classList.remove("sorted-asc", "sorted-desc"); });
    th.classList.add(ascending ? "sorted-asc" : "sorted-desc");
    var key = function (row) {
      var text = row.cells[column].getAttribute("data-sort");
      var number = parseFloat(text);
      return isNaN(number) ? text : number;
    };
    Array.from(body.rows).sort(function (a, b) {
      var x = key(a), y = key(b);
      if (typeof x !== typeof y) { x = String(x); y = String(y); }
      return (x < y ? -1 : x > y ? 1 : 0) * (ascending ? 1 : -1);
    }).forEach(function (row) { body.appendChild(row); });
  });
});
"""

HEADERS = ("rank", "pair", "score", "misalignment mm [interval]", "p_failed", "flag", "status", "qa.png")


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def _cell(text: str, sort: Any = None) -> str:
    key = "" if sort is None else str(sort)
    return f'<td data-sort="{html.escape(key)}">{text}</td>'


def _row(row: dict[str, Any]) -> str:
    score, mm = _number(row.get("score")), _number(row.get("misalignment_mm"))
    low, high, p = (_number(row.get(k)) for k in ("misalignment_mm_low", "misalignment_mm_high", "p_failed"))
    failed = row.get("status") != "ok"
    flagged = str(row.get("flagged")).lower() == "true"
    pair = html.escape(str(row["id"]))
    title = html.escape(f"moved: {row.get('moved')}\ntarget: {row.get('target')}")
    if mm is None:
        misalignment = "" if failed else "uncalibrated"
    else:
        misalignment = f"{mm:.1f}" + (f" [{low:.1f}, {high:.1f}]" if low is not None and high is not None else "")
    if failed:
        status = f'failed: {html.escape(str(row.get("error") or ""))}'
        thumb = ""
    else:
        status = "ok"
        link = html.escape(f'{row.get("folder") or "pairs/" + str(row["id"])}/qa.png')
        thumb = f'<a href="{link}"><img src="{link}" alt="qa.png of {pair}" loading="lazy"></a>'
    cells = [_cell(str(row.get("rank", "")), row.get("rank")),
             _cell(f'<span title="{title}">{pair}</span>', row["id"]),
             _cell("" if score is None else f"{score:.4f}", score),
             _cell(misalignment, mm),
             _cell("" if p is None else f"{p:.2f}", p),
             _cell("likely failed" if flagged else "", int(flagged)),
             _cell(status, row.get("status")),
             _cell(thumb)]
    kind = "failed" if failed else "flagged" if flagged else ""
    return f'<tr class="{kind}">' + "".join(cells) + "</tr>"


def report_html(table: pd.DataFrame) -> str:
    """The page for the ranked ``table`` (the rows of ``qa.csv``)."""
    rows = table.astype(object).where(table.notna(), None).to_dict("records")
    n_failed = sum(r.get("status") != "ok" for r in rows)
    n_flagged = sum(str(r.get("flagged")).lower() == "true" for r in rows)
    head = "".join(f"<th>{html.escape(h)}</th>" for h in HEADERS)
    body = "\n".join(_row(r) for r in rows)
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>imse-study QA report</title>"
            f"<style>{_STYLE}</style></head><body>\n<h1>Registration QA</h1>\n"
            f"<p>{len(rows)} pairs, worst first: {n_flagged} flagged as likely failed (p_failed &ge; 0.5), "
            f"{n_failed} could not be scored. Click a column to sort; the table is also in qa.csv.</p>\n"
            f"<table class=\"qa\"><thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table>\n"
            f"<script>{_SCRIPT}</script>\n</body></html>\n")


def write_report(table: pd.DataFrame, out: str | Path) -> Path:
    """``out/index.html`` for the ranked ``table``, written atomically."""
    from imse_study.atomic import atomic_write

    text = report_html(table)

    def write(tmp: str) -> None:
        Path(tmp).write_text(text, encoding="utf-8")

    return atomic_write(Path(out) / REPORT, write, suffix=".tmp.html")
