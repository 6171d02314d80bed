"""roles: the four roles, role choice and the research agent (imports memory and node.harness)."""
