"""The spec language: what a change must do, how it is checked, and what it may touch.

This package imports nothing else from spec2ship, so the spec can be parsed anywhere (CLI, webhook,
workflow sandbox) without pulling in side effects.
"""

from specs.models import (
    AcceptanceCriterion,
    AutonomyLevel,
    Budget,
    ChangeKind,
    Constraints,
    HttpCheck,
    PreviewConfig,
    Spec,
)

__all__ = [
    "AcceptanceCriterion",
    "AutonomyLevel",
    "Budget",
    "ChangeKind",
    "Constraints",
    "HttpCheck",
    "PreviewConfig",
    "Spec",
]
