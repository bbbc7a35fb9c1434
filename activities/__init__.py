"""Side effects, grouped by the system they touch (forge, models, workspace, preview, gate).

Workflows know these only by activity name and boundary model; no workflow imports a system client.
"""
