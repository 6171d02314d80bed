"""swarm: the CLI and the node daemon that wires memory, network, harness and roles together.

cli.py       the `swarm` entry point (typer); command groups live in commands/
startup.py   Ctrl-C while the CLI still imports: one line, exit 130
tidy.py      the empty folders a failed command made go again
output.py    tables for people, JSON for programs, one-line errors
readable.py  a run's samples, quality measures and loss curve for `swarm show` and `swarm run`
record_view.py  `swarm show`'s view for people: a record's fields as tables
conclusions.py  this node's verdicts for people (CLI browsing and dashboard), with the home's roots
gate_file.py    HOME/gate.json: the gate `swarm join --gate` ran with, for conclusions.py
commands/    one module per command group, each with register(app, bench_app)
bench/       benchmark scripts behind `swarm bench ...`
web/         the web dashboard (pages, JSON twins, live events) and `swarm report`
"""
from swarm import startup

if startup.started_as_cli():    # before typer and rich are imported: Ctrl-C then is one line
    startup.guard()
