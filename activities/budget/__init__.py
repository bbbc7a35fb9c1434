"""Team budgets: admission control (reserve before a run) and metering (commit after every model call).

The state lives in the TeamBudget entity workflow (workflows/team_budget.py); this package holds the
boundary models, the calendar arithmetic, and the activities that reach the workflow from a run.
"""
