"""The gate's report: JSON for machines, one HTML page for people, with the latency
distribution plotted (the service's histogram and locust's percentiles on one chart)."""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any

from .gate_report import GateReport

WIDTH, HEIGHT, PAD = 640, 320, 48
X_MIN_MS = 0.1


def write_report(report: GateReport, out_dir: Path) -> tuple[Path, Path]:
    data = report.to_json()
    json_path = out_dir / "report.json"
    json_path.write_text(json.dumps(data, indent=2, default=str))
    html_path = out_dir / "report.html"
    html_path.write_text(render_html(data))
    return json_path, html_path


def render_html(data: dict[str, Any]) -> str:
    verdict = "PASSED" if data["passed"] else "FAILED"
    colour = "#1a7f37" if data["passed"] else "#cf222e"
    rows = "".join(
        f"<tr><td>{html.escape(c['stage'])}</td><td>{html.escape(c['name'])}</td>"
        f"<td style='color:{'#1a7f37' if c['passed'] else '#cf222e'}'>"
        f"{'pass' if c['passed'] else 'FAIL'}</td><td>{html.escape(c['detail'])}</td></tr>"
        for c in data["checks"]
    )
    stopped = (
        f"<p><b>Stopped early:</b> {html.escape(data['stopped'])}</p>" if data["stopped"] else ""
    )
    return f"""<!doctype html>
<html><head><meta charset="utf-8">
<title>gate: {html.escape(data["model_name"])} v{data["version"]}</title>
<style>body{{font-family:sans-serif;max-width:960px;margin:2em auto}}
table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}</style>
</head><body>
<h1>Deployment gate: {html.escape(data["model_name"])} version {data["version"]}
<span style="color:{colour}">{verdict}</span></h1>
<p>artifact sha256 <code>{data["sha256"]}</code>; blessed: {data["blessed"]};
{data["started_at"]} to {data["finished_at"]}</p>
{stopped}
<h2>Checks</h2>
<table><tr><th>stage</th><th>check</th><th></th><th>figures</th></tr>{rows}</table>
<h2>Latency: the service's view and locust's</h2>
{_latency_table(data)}
{_plot(data)}
<p>The service's figures come from its own <code>/metrics</code> histogram (read before and
after the load, subtracted; quantiles interpolated within buckets). Locust's include locust
itself: on a small machine it is the larger part. Locust's own pages:
{_locust_links(data)}.</p>
<h2>Configuration</h2><pre>{html.escape(json.dumps(data["config"], indent=2))}</pre>
</body></html>
"""


def _latency_table(data: dict[str, Any]) -> str:
    server = data.get("server") or {}
    if not server:
        return "<p>No load was run.</p>"
    head = "<tr><th>view</th><th>requests</th><th>p50 ms</th><th>p95 ms</th><th>p99 ms</th></tr>"
    q = server["latency_ms"]
    body = (
        f"<tr><td>service (all endpoints)</td><td>{server['requests']:g}</td>"
        f"<td>{q['p50']:.2f}</td><td>{q['p95']:.2f}</td><td>{q['p99']:.2f}</td></tr>"
    )
    for protocol, stats in data["client"].items():
        p = stats["percentiles_ms"]
        body += (
            f"<tr><td>locust {protocol} ({stats['rate']:.0f}/s)</td><td>{stats['requests']}</td>"
            f"<td>{p.get('50%', 'n/a')}</td><td>{p.get('95%', 'n/a')}</td>"
            f"<td>{p.get('99%', 'n/a')}</td></tr>"
        )
    return f"<table>{head}{body}</table>"


def _plot(data: dict[str, Any]) -> str:
    """Share of requests answered within x ms (log x), the service's against locust's."""
    server = data.get("server") or {}
    series: list[tuple[str, str, list[tuple[float, float]]]] = []
    if server.get("cdf"):
        series.append(("service", "#0969da", [(ms, share) for ms, share in server["cdf"]]))
    colours = iter(["#bf8700", "#8250df"])
    for protocol, stats in (data.get("client") or {}).items():
        points = [
            (value, float(key.rstrip("%")) / 100)
            for key, value in stats["percentiles_ms"].items()
            if value > 0
        ]
        series.append((f"locust {protocol}", next(colours), points))
    if not series:
        return ""
    top = max((ms for _, _, points in series for ms, _ in points), default=10.0)
    x_max = 10 ** math.ceil(math.log10(max(top, 1.0)))

    def x(ms: float) -> float:
        ms = min(max(ms, X_MIN_MS), x_max)
        span = math.log10(x_max) - math.log10(X_MIN_MS)
        return PAD + (math.log10(ms) - math.log10(X_MIN_MS)) / span * (WIDTH - 2 * PAD)

    def y(share: float) -> float:
        return HEIGHT - PAD - share * (HEIGHT - 2 * PAD)

    parts = [
        f'<line x1="{PAD}" y1="{y(0)}" x2="{WIDTH - PAD}" y2="{y(0)}" stroke="#555"/>',
        f'<line x1="{PAD}" y1="{y(0)}" x2="{PAD}" y2="{y(1)}" stroke="#555"/>',
    ]
    tick = X_MIN_MS
    while tick <= x_max:
        parts.append(
            f'<text x="{x(tick):.1f}" y="{HEIGHT - PAD + 16}" font-size="11" '
            f'text-anchor="middle">{tick:g} ms</text>'
        )
        tick *= 10
    for share in (0.5, 0.95, 0.99):
        parts.append(
            f'<line x1="{PAD}" y1="{y(share):.1f}" x2="{WIDTH - PAD}" y2="{y(share):.1f}" '
            f'stroke="#ddd"/><text x="{PAD - 4}" y="{y(share) + 4:.1f}" font-size="11" '
            f'text-anchor="end">{share:.0%}</text>'
        )
    for k, (name, colour, points) in enumerate(series):
        line = " ".join(f"{x(ms):.1f},{y(share):.1f}" for ms, share in sorted(points))
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{line}"/>')
        parts.append(
            f'<text x="{WIDTH - PAD - 120}" y="{PAD + 16 * k}" font-size="12" '
            f'fill="{colour}">{html.escape(name)}</text>'
        )
    return (
        f'<svg width="{WIDTH}" height="{HEIGHT}" xmlns="http://www.w3.org/2000/svg">'
        + "".join(parts)
        + "</svg><p>Share of requests answered within the time on the x axis (log scale).</p>"
    )


def _locust_links(data: dict[str, Any]) -> str:
    links = [f'<a href="locust-{p}.html">locust-{p}.html</a>' for p in (data.get("client") or {})]
    return ", ".join(links) or "none"
