"""SLA engine runner: the periodic sweep (alerts, escalations) and the daily rollup."""
