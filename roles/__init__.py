"""roles: the four roles, role choice, the proposers and the research agent (imports memory and
node.harness).

proposers.py          optuna proposers (TPE, random) rebuilt from the memory; the portfolio bandit
proposers_space.py    the knob space: optuna distributions from the harness's Config fields
search_evidence.py    what the search reads: outcomes, leased configs, screened family, source records
"""
