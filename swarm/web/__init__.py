"""The web dashboard and the shareable report (read-only; Starlette, Vega-Lite vendored in static/).

views.py    what each view shows, as JSON (same shapes as the CLI's --json): this node's verdicts
app.py      the Starlette app: pages, JSON twins, server-sent events; mount_into(daemon)
report.py   `swarm report`: one self-contained HTML file (assets and data inlined)
serve.py    `swarm dashboard`: serve the app on 127.0.0.1 for a home, daemon running or not
static/     app.js (draws the views), app.css, vendor/ (vega, vega-lite, vega-embed + LICENSEs)
"""
