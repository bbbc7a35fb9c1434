"""The smallest valid spec the spec tests start from, and the YAML fields it is made of."""

from __future__ import annotations

# The front matter's fields; inside `---` fences they are lines 2..7 of a spec file.
MINIMAL_FIELDS = """\
spec: 1
service: greeter
team: platform
acceptance:
  - id: unit
    run: pytest -q
"""

MINIMAL_SPEC = f"---\n{MINIMAL_FIELDS}---\n# Greet by name\n"
