"""What a model call cost, from its token usage and the registry's price for that model."""

from __future__ import annotations

from activities.agents.registry import Price
from contracts.agents import Usage

_PER_MTOK = 1_000_000


def cost_usd(usage: Usage, price: Price) -> float:
    """USD for one call. Rounded to a millionth of a cent so sums of many calls stay readable."""
    total = (usage.input_tokens * price.input_per_mtok + usage.output_tokens * price.output_per_mtok) / _PER_MTOK
    return round(total, 8)
