"""`ledger report` as one self-contained HTML file: inline CSS, inline SVG charts.

Nothing is fetched when the file is opened (no fonts, scripts or images from
anywhere). Every table row carries the row the JSON read gives
(`data-row`, JSON with pence as integers and ISO dates), and every cell its
field name (`data-field`), so a program can check the figures people read
against the ledger's own reads. A few lines of inline script mark the page
with how many charts and table rows the browser laid out (`data-charts`,
`data-rows` on <body>): a headless browser test reads them.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from ledger.domain.values import format_pence, utc_text

if TYPE_CHECKING:
    from projections.report import ReportData

Row = dict[str, Any]
Column = tuple[str, str, Callable[[Any], str]]  # field, header, how to show its value

CSS = """
:root { --ink: #1f2937; --muted: #6b7280; --line: #e5e7eb; --bad: #b91c1c;
        --band: #f9fafb; --accent: #1d4ed8; }
* { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       color: var(--ink); margin: 0 auto; max-width: 1180px; padding: 24px 28px 60px;
       line-height: 1.45; font-size: 14px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 34px 0 8px; padding-bottom: 4px;
     border-bottom: 2px solid var(--line); }
h3 { font-size: 15px; margin: 18px 0 6px; }
p.lead { color: var(--muted); margin: 0 0 16px; }
nav a { margin-right: 14px; color: var(--accent); text-decoration: none; }
table { border-collapse: collapse; width: 100%; margin: 8px 0 14px; font-size: 13px; }
th, td { padding: 5px 8px; border-bottom: 1px solid var(--line); text-align: left;
         vertical-align: top; }
th { background: var(--band); font-weight: 600; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.flag td { color: var(--bad); font-weight: 600; }
.checkpoint { background: var(--band); border: 1px solid var(--line); border-radius: 6px;
              padding: 12px 16px; margin: 16px 0; }
.checkpoint dl { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px;
                 margin: 0 0 8px; }
.checkpoint dt { color: var(--muted); }
.checkpoint dd { margin: 0; font-family: ui-monospace, "DejaVu Sans Mono", monospace;
                 word-break: break-all; }
pre { background: #fff; border: 1px solid var(--line); padding: 8px 10px; font-size: 12px;
      white-space: pre-wrap; word-break: break-all; margin: 6px 0 0; }
figure { margin: 10px 0 18px; }
figure svg { max-width: 100%; height: auto; display: block; }
figcaption { color: var(--muted); font-size: 12px; margin-top: 4px; }
.empty { color: var(--muted); font-style: italic; }
.note { color: var(--muted); font-size: 12px; }
@media print { nav { display: none; } h2 { break-after: avoid; } figure { break-inside: avoid; } }
"""

SELF_CHECK = """
(function () {
  var laidOut = Array.prototype.filter.call(document.querySelectorAll("figure svg"),
    function (s) { var box = s.getBoundingClientRect(); return box.width > 0 && box.height > 0; });
  document.body.dataset.charts = String(laidOut.length);
  document.body.dataset.rows = String(document.querySelectorAll("tr[data-row]").length);
})();
"""


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def money(value: Any) -> str:
    return "" if value is None else format_pence(int(value))


def number(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.2f}"
    return str(value)


def plain(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def percent(value: Any) -> str:
    return "" if value is None else f"{float(value):.1f}%"


def _json_row(row: Row) -> str:
    return orjson.dumps(row).decode()


def table(rows: Sequence[Row], columns: Sequence[Column], *, name: str,
          flag: Callable[[Row], bool] | None = None, empty: str = "none") -> str:
    """An HTML table of `rows` showing `columns`; each <tr> carries its JSON row."""
    if not rows:
        return f'<p class="empty" data-table="{_e(name)}">{_e(empty)}</p>'
    numeric = {f for f, _, show in columns if show in (money, number, percent)}
    head = "".join(f'<th class="{"n" if f in numeric else ""}">{_e(h)}</th>'
                   for f, h, _ in columns)
    body = []
    for r in rows:
        cells = "".join(
            f'<td data-field="{_e(f)}" class="{"n" if f in numeric else ""}">'
            f"{_e(show(r.get(f)))}</td>" for f, _, show in columns)
        marked = ' class="flag"' if flag is not None and flag(r) else ""
        body.append(f"<tr{marked} data-row='{_e(_json_row(r))}'>{cells}</tr>")
    return (f'<table data-table="{_e(name)}"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table>")


POSITION_COLUMNS: list[Column] = [
    ("element", "element", plain), ("allocated_pence", "allocated", money),
    ("available_pence", "available", money), ("committed_pence", "committed", money),
    ("settled_pence", "settled", money), ("drawn_pence", "risk-pool draws", money),
    ("remaining_pence", "remaining", money), ("used_percent", "used", percent),
    ("overspent_practices", "overspent practices", number),
]
PRACTICE_COLUMNS: list[Column] = [
    ("practice", "practice", plain), ("element", "element", plain),
    ("allocated_pence", "allocated", money), ("committed_pence", "committed", money),
    ("settled_pence", "settled", money), ("remaining_pence", "remaining", money),
    ("used_percent", "used", percent), ("hard", "hard", plain),
    ("overspent", "overspent", plain),
]
CONSORTIUM_COLUMNS: list[Column] = [("consortium", "consortium", plain), *POSITION_COLUMNS]
POOL_COLUMNS: list[Column] = [
    ("consortium", "consortium", plain), ("top_slice_percent", "top-slice %", number),
    ("members", "members", number), ("capacity_pence", "capacity", money),
    ("drawn_pence", "drawn", money), ("draws", "draws", number),
    ("headroom_pence", "headroom", money),
]
QUALITY_COLUMNS: list[Column] = [
    ("consortium", "consortium", plain), ("qs_code", "standard", plain),
    ("adopted", "adopted", plain), ("commitments", "commitments", number),
    ("spend_pence", "spend", money), ("gap", "gap", lambda v: "GAP" if v else ""),
]
FUNNEL_COLUMNS: list[Column] = [
    ("practice", "practice", plain), ("weighted_population", "population", number),
    ("commitments", "commitments", number), ("expected", "expected", number),
    ("per_1000", "per 1,000", number), ("lower_95", "95% low", number),
    ("upper_95", "95% high", number), ("lower_998", "99.8% low", number),
    ("upper_998", "99.8% high", number), ("z_score", "z", number), ("band", "band", plain),
]
HOLDING_COLUMNS: list[Column] = [
    ("practice", "practice", plain), ("element", "element", plain),
    ("holder", "held by", plain), ("since", "since", plain), ("kind", "kind", plain),
]


def _figure(svg: str, caption: str, name: str) -> str:
    return (f'<figure data-chart="{_e(name)}">{svg}<figcaption>{_e(caption)}</figcaption>'
            "</figure>")


def _funnels(data: ReportData) -> str:
    from commands.charts import by_group, funnel_figure, svg_text  # noqa: PLC0415

    parts: list[str] = []
    groups = by_group(data.funnel)
    if not groups:
        return '<p class="empty">no commitments to compare</p>'
    for (consortium, element, year), members in groups.items():
        first = members[0]
        flagged = sum(r["flagged"] for r in members)
        parts.append(f"<h3>{_e(consortium)} {_e(element)} {_e(year)}</h3>")
        target = first["target_per_1000"]
        parts.append(
            f'<p class="note">Target {number(target)} per 1,000 ({_e(first["target_basis"])} '
            f"rate); {flagged} of {len(members)} practice(s) outside the 95% limits.</p>")
        svg = svg_text(funnel_figure(members), salt=f"funnel-{consortium}-{element}")
        parts.append(_figure(svg, f"Funnel plot: {consortium} {element}, commitments per 1,000 "
                                  "patients against population; dashed 95%, solid 99.8% "
                                  "exact Poisson limits.", f"funnel-{consortium}-{element}"))
        parts.append(table(members, FUNNEL_COLUMNS, name=f"funnel-{consortium}-{element}",
                           flag=lambda r: bool(r["flagged"])))
    return "".join(parts)


def _budgets(data: ReportData) -> str:
    from commands.charts import budget_figure, svg_text  # noqa: PLC0415

    parts: list[str] = []
    for consortium, timeline in data.timelines.items():
        svg = svg_text(budget_figure(timeline, f"{consortium} {data.year}: budget against "
                                               "actual"), salt=f"budget-{consortium}")
        parts.append(_figure(svg, f"{consortium}: allocated, committed + settled, settled and "
                                  "risk-pool draws at the start of the year and each "
                                  "month's end.", f"budget-{consortium}"))
    return "".join(parts) or '<p class="empty">no budgets</p>'


def render(data: ReportData) -> str:
    """The whole report as one HTML document (UTF-8 text)."""
    cp = data.checkpoint
    who = f"Consortium {data.code}" if data.scope == "consortium" else \
        f"Allocator {data.code}"
    signed = utc_text(cp.signed_at) if cp.signed_at else "-"
    generated = data.generated_at.isoformat(timespec="seconds").replace("+00:00", "Z")
    positions = table(data.positions,
                      POSITION_COLUMNS if data.scope == "consortium" else
                      [("allocator", "allocator", plain), *POSITION_COLUMNS],
                      name="positions", flag=lambda r: bool(r.get("overspent_practices")))
    members = table(data.practices, PRACTICE_COLUMNS if data.scope == "consortium"
                    else CONSORTIUM_COLUMNS, name="practices",
                    flag=lambda r: bool(r.get("overspent") or r.get("overspent_practices")))
    gaps = [r for r in data.quality if r["gap"]]
    sections = [
        ("positions", "Budget against actual", positions + _budgets(data)),
        ("pool", "Risk pool", table(data.pools, POOL_COLUMNS, name="pools",
                                    empty="no risk pool agreed for the year")),
        ("quality", "Quality standards",
         f'<p class="note">{len(gaps)} adopted standard(s) with no commitment tagged.</p>'
         + table(data.quality, QUALITY_COLUMNS, name="quality",
                 flag=lambda r: bool(r["gap"]), empty="no standards adopted or tagged")),
        ("peer-review", "Peer review: funnel plots", _funnels(data)),
        ("holdings", "Opt-outs and delegations in force",
         table(data.holdings, HOLDING_COLUMNS, name="holdings",
               empty="every practice holds its own budget")),
        ("members", "Each member practice" if data.scope == "consortium" else "Each consortium",
         members),
    ]
    nav = "".join(f'<a href="#{key}">{_e(title)}</a>' for key, title, _ in sections)
    body = "".join(f'<section id="{key}"><h2>{_e(title)}</h2>{content}</section>'
                   for key, title, content in sections)
    return f"""<!DOCTYPE html>
<html lang="en-GB">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(who)} {_e(data.year)}: commissioning report</title>
<style>{CSS}</style>
</head>
<body>
<header>
<h1>{_e(who)}: commissioning report {_e(data.year)}</h1>
<p class="lead">Figures as of {_e(data.as_of.isoformat())}, computed {_e(generated)} from the
ledger at the signed checkpoint below; money in pounds, rates per 1,000 patients.</p>
<nav>{nav}<a href="#checkpoint">Checkpoint</a></nav>
</header>
<div class="checkpoint" id="checkpoint" data-size="{cp.size}" data-root="{_e(cp.root_base64)}">
<strong>Signed checkpoint</strong>
<dl>
<dt>log</dt><dd>{_e(cp.origin)}</dd>
<dt>size</dt><dd data-field="size">{cp.size}</dd>
<dt>root hash (base64)</dt><dd data-field="root">{_e(cp.root_base64)}</dd>
<dt>root hash (hex)</dt><dd>{_e(cp.root_hex)}</dd>
<dt>signed at</dt><dd>{_e(signed)}</dd>
</dl>
<pre data-field="note">{_e(cp.note)}</pre>
<p class="note">Every figure here was read with the ledger at exactly these {cp.size} events.
Check the note with <code>ledger verify-bundle</code> or the log's public key
(<code>ledger checkpoint --public-key</code>); a later checkpoint proves the log only grew.</p>
</div>
{body}
<script>{SELF_CHECK}</script>
</body>
</html>
"""
