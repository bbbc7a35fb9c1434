"""SpecToShip in stages: the workflow class (workflow.py) and one module per stage."""

from workflows.spec_to_ship.workflow import SpecToShip

__all__ = ["SpecToShip"]
