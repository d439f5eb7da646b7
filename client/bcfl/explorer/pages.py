"""Server-rendered HTML for the explorer's pages, from the dicts in `bcfl.explorer.views`.

Every value from the chain or storage is escaped; links join rounds, peers, blocks and
transactions both ways. A small script polls /api/status and offers a reload when new blocks
were indexed, so an open page never goes stale silently.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Iterable, Sequence
from html import escape
from typing import Any

from bcfl.explorer.plot import Series, line_chart

PPM = 1_000_000

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1f2430;
background:#f6f7f9}
header{background:#1f2a44;color:#fff;padding:10px 24px;display:flex;gap:24px;align-items:center}
header a{color:#cfe0ff;text-decoration:none;font-weight:600}header .brand{color:#fff;font-size:16px}
main{padding:16px 24px;max-width:1280px}
h1{font-size:20px;margin:8px 0 12px}h2{font-size:16px;margin:22px 0 8px}
table{border-collapse:collapse;background:#fff;width:100%;margin-bottom:8px}
th,td{border-bottom:1px solid #e3e6eb;padding:5px 8px;text-align:left;vertical-align:top}
th{background:#eef1f5;font-weight:600;font-size:13px}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12.5px}
a{color:#1b5fc1}
.kv{width:auto;min-width:520px}.kv th{width:190px}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600}
.s-open{background:#e0ecff;color:#1b4f9c}.s-closed{background:#fff1d6;color:#8a5a00}
.s-finalised,.s-ok,.s-included{background:#dcf3e1;color:#1d6b33}
.s-expired,.s-pending,.s-unavailable,.s-notfetched{background:#eceef1;color:#555}
.s-fail,.s-error,.s-excluded,.s-reverted{background:#fde2e1;color:#9b1c1c}
.banner{padding:10px 14px;border-radius:6px;margin:10px 0}
.banner.error{background:#fde2e1;color:#7a1212;border:1px solid #f3b3b0}
.banner.info{background:#e0ecff;color:#143a73;border:1px solid #b9d0f5}
.muted{color:#6b7280}.chart{background:#fff;border:1px solid #e3e6eb;border-radius:6px}
.chart .grid{stroke:#eceef1}.chart .tick,.chart .legend{font-size:11px;fill:#555}
.chart .axis{font-size:12px;fill:#333}.chart .chart-title{font-size:13px;font-weight:600;fill:#1f2430}
.chart .chart-empty{fill:#888}
.nav{margin:6px 0 10px}.nav a{margin-right:14px}
.checks td:first-child{width:110px}
"""

RELOAD_JS = """
(function(){var v=%s;setInterval(function(){fetch('/api/status').then(function(r){return r.json()})
.then(function(s){if(s.version!==v){var b=document.getElementById('live');b.style.display='block';}})
.catch(function(){});},3000);})();
"""


def _e(value: Any) -> str:
    return escape(str(value))


def short(text: str | None, keep: int = 10) -> str:
    if not text:
        return ""
    return text if len(text) <= 2 * keep + 1 else f"{text[:keep]}…{text[-6:]}"


def link(href: str, text: str, *, cls: str = "", title: str = "") -> str:
    extra = f' class="{cls}"' if cls else ""
    extra += f' title="{_e(title)}"' if title else ""
    return f'<a href="{_e(href)}"{extra}>{_e(text)}</a>'


def peer_link(address: str, *, full: bool = False) -> str:
    return link(f"/peer/{address}", address if full else short(address, 8), cls="peer mono", title=address)


def tx_link(tx: str | None) -> str:
    return link(f"/tx/{tx}", short(tx, 8), cls="tx mono", title=tx or "") if tx else ""


def block_link(n: int | None) -> str:
    return link(f"/block/{n}", f"#{n}", cls="block") if n is not None else ""


def round_link(n: int | None) -> str:
    return link(f"/round/{n}", f"round {n}", cls="round") if n is not None else ""


def cid_text(cid: str | None, *, keep: int = 0) -> str:
    """A CID (shortened to `keep` leading characters in tables; the full CID is its title)."""
    if not cid:
        return '<span class="muted">—</span>'
    return f'<span class="mono cid" title="{_e(cid)}">{_e(short(cid, keep) if keep else cid)}</span>'


def long_text(text: str, limit: int = 240) -> str:
    """Text that may be long (an audit detail listing every CID): the start, the rest on demand."""
    if len(text) <= limit:
        return _e(text)
    return f"<details><summary>{_e(text[:limit])}…</summary>{_e(text)}</details>"


def badge(status: str, text: str | None = None) -> str:
    cls = "s-" + status.replace(" ", "").lower()
    return f'<span class="badge {cls}">{_e(text or status)}</span>'


def when(ts: int | float | None) -> str:
    if ts is None:
        return ""
    stamp = _dt.datetime.fromtimestamp(float(ts), tz=_dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f'<span title="{int(ts)}">{stamp}</span>'


def secs(value: int | float | None) -> str:
    return "" if value is None else f"{value:g} s"


def ppm(value: int | None) -> str:
    return "" if value is None else f"{value / PPM:.3f}"


def frac(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


def wei(value: int) -> str:
    return f"{value / 10**18:.6g} ETH" if value else "0"


def table(
    header: Sequence[str], rows: Iterable[Sequence[str]], *, cls: str = "", num: Sequence[int] = ()
) -> str:
    head = "".join(
        f'<th class="num">{_e(h)}</th>' if i in num else f"<th>{_e(h)}</th>" for i, h in enumerate(header)
    )
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="num">{c}</td>' if i in num else f"<td>{c}</td>" for i, c in enumerate(row)
        )
        body.append(f"<tr>{cells}</tr>")
    if not body:
        body.append(f'<tr><td colspan="{len(header)}" class="muted">none</td></tr>')
    klass = f' class="{cls}"' if cls else ""
    return f"<table{klass}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def kv(rows: Iterable[tuple[str, str]]) -> str:
    return (
        '<table class="kv">' + "".join(f"<tr><th>{_e(k)}</th><td>{v}</td></tr>" for k, v in rows) + "</table>"
    )


def layout(title: str, body: str, status: dict[str, Any] | None) -> str:
    banner = ""
    version = 0
    if status is not None:
        version = int(status.get("version") or 0)
        if status.get("error"):
            since = when(status.get("error_since"))
            shown = status.get("indexed_to")
            tail = f" Showing what was indexed up to block {shown}." if shown is not None else ""
            banner = (
                f'<div class="banner error" id="chain-error"><strong>Chain not followed:</strong> '
                f"{_e(status['error'])} (since {since}).{_e(tail)}</div>"
            )
    contract = ""
    if status and status.get("contract"):
        contract = (
            f'<span class="muted mono" title="contract">chain {_e(status["chain_id"])} · '
            f"{_e(short(status['contract'], 8))} · block {_e(status.get('indexed_to'))}</span>"
        )
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{_e(title)} · bcfl explorer</title><style>{CSS}</style></head><body>"
        '<header><a class="brand" href="/">bcfl explorer</a><a href="/">Rounds</a>'
        f'<a href="/peers">Peers</a><a href="/status">Status</a>{contract}</header><main>'
        '<div class="banner info" id="live" style="display:none">New blocks were indexed. '
        '<a href="javascript:location.reload()">Reload</a></div>'
        f"{banner}{body}</main><script>{RELOAD_JS % json.dumps(version)}</script></body></html>"
    )


def error_page(code: int, message: str, status: dict[str, Any] | None) -> str:
    what = {400: "Bad request", 404: "Not found", 503: "Chain unavailable"}.get(code, "Error")
    body = (
        f'<h1>{_e(what)}</h1><div class="banner error" id="error-message">{_e(message)}</div>'
        '<p><a href="/">Back to the rounds</a></p>'
    )
    return layout(what, body, status)


# ------------------------------------------------------------------------------- pages


def _reputation_chart(chart: dict[str, Any], *, title: str, single: bool = False) -> str:
    series = [
        Series(name=addr, points=[(float(x), float(y)) for x, y in pts], href=f"/peer/{addr}")
        for addr, pts in sorted(chart["reputation"].items())
    ]
    if chart.get("base_accuracy"):
        series.append(
            Series(
                "base model accuracy",
                [(float(x), float(y)) for x, y in chart["base_accuracy"]],
                color="#111",
                width=2.5,
                dashed=True,
            )
        )
    if chart.get("update_accuracy"):
        series.append(
            Series(
                "accuracy of its updates",
                [(float(x), float(y)) for x, y in chart["update_accuracy"]],
                color="#111",
                width=2,
                dashed=True,
            )
        )
    if single and series and not series[0].color:
        series[0] = Series(series[0].name, series[0].points, color="#1b5fc1", width=2.5)
    return line_chart(series, title=title, y_label="reputation · accuracy")


def index_page(status: dict[str, Any], rounds: dict[str, Any], chart: dict[str, Any]) -> str:
    rows = []
    for r in rounds["rounds"]:
        rows.append(
            [
                link(f"/round/{r['round']}", str(r["round"]), cls="round"),
                badge(r["status"]),
                round_link(r["base_round"]) if r["base_round"] else "genesis",
                str(r["submissions"]),
                str(r["votes"]),
                str(r["attestations"]),
                f"{r['included']} / {r['excluded']}",
                cid_text(r["aggregate_cid"], keep=12),
                frac(r["base_accuracy"]),
                secs(r["duration"]),
                f"{r['gas_total']:,}",
                badge(r["audit"]),
            ]
        )
    pages = ""
    total, per, page = rounds["total"], rounds["per_page"], rounds["page"]
    if total > per:
        last = (total + per - 1) // per
        nav = [
            link(f"/?page={p}", str(p)) if p != page else f"<strong>{p}</strong>" for p in range(1, last + 1)
        ]
        pages = f'<div class="nav">Pages: {" ".join(nav)}</div>'
    body = (
        f"<h1>Federation {_e(short(status.get('contract'), 8))}</h1>"
        + kv(
            [
                ("contract", f'<span class="mono">{_e(status.get("contract"))}</span>'),
                ("chain id", _e(status.get("chain_id"))),
                ("deployed in", block_link(status.get("deploy_block"))),
                ("genesis model", cid_text(status.get("genesis_cid"))),
                ("score threshold", ppm(status.get("score_threshold"))),
                ("server learning rate", ppm((status.get("config") or {}).get("server_learning_rate_ppm"))),
                (
                    "indexed",
                    f"{status['rounds']} rounds, {status['peers']} peers, "
                    f"{status['transactions']} transactions"
                    f" up to block {_e(status.get('indexed_to'))} (head {_e(status.get('head'))})",
                ),
            ]
        )
        + "<h2>Reputation and accuracy over rounds</h2>"
        + _reputation_chart(chart, title="Reputation of each peer after each settled round")
        + "<h2>Rounds</h2>"
        + pages
        + table(
            [
                "round",
                "status",
                "base",
                "subs",
                "votes",
                "attest.",
                "incl / excl",
                "aggregate",
                "accuracy",
                "duration",
                "gas",
                "audit",
            ],
            rows,
            cls="rounds",
            num=(3, 4, 5, 8, 9, 10),
        )
    )
    return layout("Rounds", body, status)


def round_page(status: dict[str, Any], r: dict[str, Any]) -> str:
    nav = []
    if r["previous"] is not None:
        nav.append(link(f"/round/{r['previous']}", f"← round {r['previous']}"))
    if r["next"] is not None:
        nav.append(link(f"/round/{r['next']}", f"round {r['next']} →"))
    t = r["timings"]
    audit = r["audit"]
    details = kv(
        [
            ("status", badge(r["status"])),
            (
                "base model",
                f"{cid_text(r['base_cid'])} "
                + (f"(aggregate of {round_link(r['base_round'])})" if r["base_round"] else "(genesis)"),
            ),
            (
                "aggregate",
                cid_text(r["aggregate_cid"])
                + (
                    f' <span class="muted mono">sha256 {_e(short(r["aggregate_digest"], 10))}</span>'
                    if r["aggregate_digest"]
                    else ""
                ),
            ),
            ("scores root", f'<span class="mono">{_e(r["scores_root"] or "—")}</span>'),
            ("included set hash", f'<span class="mono">{_e(r["included_hash"] or "—")}</span>'),
            ("included / excluded", f"{r['included']} / {r['excluded']} of {len(r['submissions'])}"),
            (
                "opened",
                f"{when(r['opened_at'])} in {block_link(r['opened_block'])} by {tx_link(r['opened_tx'])}",
            ),
            (
                "closed",
                f"{when(r['closed_at'])} in {block_link(r['closed_block'])} by {tx_link(r['closed_tx'])}"
                if r["closed_block"] is not None
                else '<span class="muted">not yet</span>',
            ),
            ("voting ends", when(r["voting_ends_at"])),
            (
                r["status"] if r["status"] in ("finalised", "expired") else "result",
                f"{when(r['ended_at'])} in {block_link(r['ended_block'])} by {tx_link(r['ended_tx'])}"
                if r["ended_block"] is not None
                else '<span class="muted">not yet</span>',
            ),
            (
                "timings",
                f"submissions {secs(t['submission_phase']) or '—'} · voting {secs(t['voting_phase']) or '—'}"
                f" · result {secs(t['result_phase']) or '—'} · total {secs(t['total']) or '—'}",
            ),
            ("gas (all round txs)", f"{r['gas_total']:,}"),
            (
                "base accuracy",
                frac(r["base_accuracy"]) or '<span class="muted">no vote file with accuracy</span>',
            ),
        ]
    )
    audit_html = (
        f'<div id="audit">{badge(audit["status"], "audit: " + audit["status"])} '
        f"{long_text(audit['detail'])}</div>"
        + (
            table(
                ["check", "result", "detail"],
                [
                    [
                        _e(c["check"]),
                        badge(
                            {True: "ok", False: "fail", None: "pending"}[c["ok"]],
                            {True: "ok", False: "FAIL", None: "n/a"}[c["ok"]],
                        ),
                        long_text(c["detail"]),
                    ]
                    for c in audit["checks"]
                ],
                cls="checks",
            )
            if audit["checks"]
            else ""
        )
    )
    subs = [
        [
            peer_link(s["peer"]),
            cid_text(s["cid"], keep=14),
            f'<span class="mono" title="{_e(s["digest"])}">{_e(short(s["digest"], 8))}</span>',
            str(s["samples"]),
            str(s["trained_from"]),
            str(s["staleness"]),
            ppm(s["reputation"]),
            ppm(s["score"]),
            frac(s["vote_value"]),
            frac(s["accuracy"]),
            badge("included" if s["included"] else "excluded")
            if s["included"] is not None
            else badge("pending"),
            _e(s["reason"]),
            f"{s['gas_used']:,}",
            tx_link(s["tx"]),
        ]
        for s in r["submissions"]
    ]
    votes = [
        [
            peer_link(v["voter"]),
            cid_text(v["cid"], keep=14),
            ppm(v["reputation"]),
            wei(v["bond"]),
            frac(v["base_accuracy"]),
            badge("ok", "fetched")
            if v["file_status"] == "ok"
            else (
                badge("notfetched", "not fetched")
                if v["file_status"] == "not fetched"
                else f'{badge("error")} <span class="vote-error">{_e(v["file_status"])}</span>'
            ),
            when(v["timestamp"]),
            f"{v['gas_used']:,}",
            tx_link(v["tx"]),
        ]
        for v in r["votes"]
    ]
    atts = [
        [
            peer_link(a["attester"]),
            _e(a["function"]),
            f'<span class="mono" title="{_e(a["proposal"])}">{_e(short(a["proposal"], 8))}</span>',
            cid_text(a["aggregate_cid"], keep=14),
            "finalising" if a["finalising"] else "",
            when(a["timestamp"]),
            f"{a['gas_used']:,}",
            tx_link(a["tx"]),
        ]
        for a in r["attestations"]
    ]
    body = (
        f'<div class="nav">{" ".join(nav)}</div><h1>Round {r["round"]} {badge(r["status"])}</h1>'
        + details
        + "<h2>Audit</h2>"
        + audit_html
        + f"<h2>Submissions ({len(r['submissions'])})</h2>"
        + table(
            [
                "peer",
                "CID",
                "digest",
                "samples",
                "trained from",
                "stale",
                "rep.",
                "score",
                "vote",
                "acc.",
                "gate",
                "reason",
                "gas",
                "tx",
            ],
            subs,
            cls="submissions",
            num=(3, 4, 5, 6, 7, 8, 9, 12),
        )
        + f"<h2>Vote commits ({len(r['votes'])})</h2>"
        + table(
            ["voter", "vote file CID", "rep.", "bond", "base acc.", "file", "time", "gas", "tx"],
            votes,
            cls="votes",
            num=(2, 4, 7),
        )
        + f"<h2>Attestations ({len(r['attestations'])})</h2>"
        + table(
            ["attester", "call", "proposal", "aggregate", "", "time", "gas", "tx"],
            atts,
            cls="attestations",
            num=(6,),
        )
    )
    return layout(f"Round {r['round']}", body, status)


def peers_page(status: dict[str, Any], peers: dict[str, Any]) -> str:
    rows = [
        [
            peer_link(p["address"], full=True),
            badge("ok", "active") if p["active"] else badge("expired", "left"),
            wei(p["bond"]),
            ppm(p["reputation"]),
            str(p["submissions"]),
            str(p["votes"]),
            str(p["attestations"]),
            f"{p['included']} / {p['excluded']}",
            f"{p['gas_total']:,}",
        ]
        for p in peers["peers"]
    ]
    body = f"<h1>Peers ({len(rows)})</h1>" + table(
        ["address", "state", "bond", "reputation", "subs", "votes", "attest.", "incl / excl", "gas"],
        rows,
        cls="peers",
        num=(3, 4, 5, 6, 8),
    )
    return layout("Peers", body, status)


def peer_page(status: dict[str, Any], p: dict[str, Any]) -> str:
    history = [
        [
            round_link(h["round"]),
            badge(h["status"]),
            cid_text(h["cid"], keep=14),
            str(h["samples"]),
            str(h["staleness"]),
            ppm(h["score"]),
            badge("included" if h["included"] else "excluded")
            if h["included"] is not None
            else badge("pending"),
            frac(h["accuracy"]),
            tx_link(h["tx"]),
        ]
        for h in p["submission_rows"]
    ]
    rep = [
        [
            round_link(pt["round"]),
            ppm(pt["score"]),
            "yes" if pt["included"] else "no",
            ppm(pt["old"]),
            ppm(pt["new"]),
            when(pt["timestamp"]),
            tx_link(pt["tx"]),
        ]
        for pt in p["reputation_history"]
    ]
    txs = [
        [
            tx_link(t["hash"]),
            block_link(t["block"]),
            when(t["timestamp"]),
            _e(t["function"]),
            round_link(t["round"]) if t["round"] is not None else "",
            badge("ok") if t["ok"] else badge("reverted"),
            f"{t['gas_used']:,}",
            _e(", ".join(t["events"])),
        ]
        for t in p["transactions"]
    ]
    body = (
        f'<h1>Peer <span class="mono">{_e(p["address"])}</span></h1>'
        + kv(
            [
                ("state", badge("ok", "active") if p["active"] else badge("expired", "left")),
                ("bond", wei(p["bond"])),
                ("withdrawn", wei(p["withdrawn"])),
                ("reputation", f'<span id="reputation">{ppm(p["reputation"])}</span>'),
                ("joined", f"{block_link(p['joined_block'])} by {tx_link(p['joined_tx'])}"),
                (
                    "rounds",
                    f"{len(p['submissions'])} submitted, {len(p['votes'])} voted, "
                    f"{len(p['attestations'])} attested",
                ),
                ("gas spent", f"{p['gas_total']:,}"),
            ]
        )
        + "<h2>Reputation over rounds</h2>"
        + _reputation_chart(p["chart"], title="Reputation after each settled round", single=True)
        + "<h2>Submissions</h2>"
        + table(
            ["round", "status", "CID", "samples", "stale", "score", "gate", "acc.", "tx"],
            history,
            cls="peer-submissions",
            num=(3, 4, 5, 7),
        )
        + "<h2>Reputation settlements</h2>"
        + table(
            ["round", "score", "included", "old", "new", "time", "tx"], rep, cls="settlements", num=(1, 3, 4)
        )
        + f"<h2>Transactions ({len(txs)})</h2>"
        + table(
            ["tx", "block", "time", "call", "round", "status", "gas", "events"],
            txs,
            cls="transactions",
            num=(6,),
        )
        + f"<p>Votes in rounds: {', '.join(round_link(r) for r in p['votes']) or 'none'}</p>"
        + f"<p>Attestations in rounds: {', '.join(round_link(r) for r in p['attestations']) or 'none'}</p>"
    )
    return layout("Peer", body, status)


def _value(value: Any) -> str:
    if isinstance(value, dict):
        return kv((str(k), _value(v)) for k, v in value.items())
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, str) and value.startswith("0x") and len(value) == 42:
        return peer_link(value, full=True)
    return f'<span class="mono">{_e(value)}</span>'


def _args(args: dict[str, Any]) -> str:
    rows = []
    for k, v in args.items():
        shown = round_link(v) if k in ("round", "baseRound") and isinstance(v, int) and v > 0 else _value(v)
        rows.append((k, shown))
    return kv(rows) if rows else '<span class="muted">no arguments</span>'


def tx_page(status: dict[str, Any], t: dict[str, Any]) -> str:
    events = (
        "".join(
            f'<h3 class="event">{_e(e["event"])} <span class="muted">log {e["log_index"]}</span></h3>'
            + _args(e["args"])
            for e in t["events"]
        )
        or '<p class="muted">no events</p>'
    )
    body = (
        f'<h1>Transaction <span class="mono">{_e(short(t["hash"], 12))}</span></h1>'
        + kv(
            [
                ("hash", f'<span class="mono" id="tx-hash">{_e(t["hash"])}</span>'),
                ("status", badge("ok", "success") if t["ok"] else badge("reverted")),
                ("revert", _e(t["error"]) if t["error"] else '<span class="muted">—</span>'),
                ("block", f"{block_link(t['block'])} {when(t['timestamp'])}"),
                (
                    "from",
                    peer_link(t["sender"], full=True)
                    if t["sender_is_peer"]
                    else f'<span class="mono">{_e(t["sender"])}</span>',
                ),
                ("to", f'<span class="mono">{_e(t["to"] or "contract creation")}</span>'),
                ("call", f'<strong id="tx-function">{_e(t["function"])}</strong>'),
                ("value", wei(t["value"])),
                ("gas used", f'<span id="tx-gas">{t["gas_used"]:,}</span> of {t["gas_limit"]:,}'),
                ("gas price", f"{t['gas_price']:,} wei (fee {wei(t['fee'])})"),
            ]
        )
        + "<h2>Arguments</h2>"
        + _args(t["args"])
        + f"<h2>Events ({len(t['events'])})</h2>"
        + events
    )
    return layout("Transaction", body, status)


def block_page(status: dict[str, Any], b: dict[str, Any]) -> str:
    nav = []
    if b["previous"] is not None:
        nav.append(link(f"/block/{b['previous']}", f"← block {b['previous']}"))
    if b["next"] is not None:
        nav.append(link(f"/block/{b['next']}", f"block {b['next']} →"))
    txs = [
        [
            tx_link(t["hash"]),
            _e(t["function"]),
            round_link(t["round"]) if t["round"] is not None else "",
            badge("ok") if t["ok"] else badge("reverted"),
            f"{t['gas_used']:,}",
            _e(", ".join(t["events"])),
        ]
        for t in b["transactions"]
    ]
    body = (
        f'<div class="nav">{" ".join(nav)} '
        '<span class="muted">(blocks with federation transactions)</span></div>'
        f"<h1>Block {b['number']}</h1>"
        + kv(
            [
                ("hash", f'<span class="mono">{_e(b["hash"])}</span>'),
                ("parent", f'<span class="mono">{_e(b["parent_hash"])}</span>'),
                ("time", when(b["timestamp"])),
                ("transactions", f"{b['tx_count']} in all, {len(b['transactions'])} of the federation"),
                ("gas used", f"{b['gas_used']:,}"),
            ]
        )
        + "<h2>Federation transactions</h2>"
        + table(["tx", "call", "round", "status", "gas", "events"], txs, cls="block-txs", num=(4,))
    )
    return layout(f"Block {b['number']}", body, status)


def status_page(status: dict[str, Any]) -> str:
    rows = [(k, _e(v)) for k, v in status.items() if k != "config"]
    rows += [(f"config.{k}", _e(v)) for k, v in (status.get("config") or {}).items()]
    return layout("Status", "<h1>Status</h1>" + kv(rows), status)
