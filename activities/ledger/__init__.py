"""Records that outlive one change: service outcomes and trust, team budgets, model evidence."""
