"""What a volunteer machine runs. Imports `memory`, never `roles` or `swarm`.

home.py       the home folder (--home, $SWARM_HOME, ~/.swarm) and its files
identity.py   the node's Ed25519 key (HOME/identity.key, mode 0600)
"""
