"""The GitHub webhook server: verified deliveries in, Temporal workflow starts, signals and updates out.

Nothing slow happens here: a delivery is answered once its one Temporal call is made, so GitHub's
10-second limit is never at risk; the work itself runs in workflows and activities.
"""
