"""The budgets every request spends (app/ratelimits.py meters them; docs/security.md explains
them): name -> limits, in the limits library's notation ("60/minute;1000/hour": both hold).
`RATE_LIMITS` in the environment may replace any (`RATE_LIMITS=client_work=300/minute;5000/hour,
standard=2000/hour`) or turn them all off (`RATE_LIMITS=off`). Imports nothing: the settings
check it in gunicorn's master."""

BUDGETS = {
    "standard": "1000/hour",  # a person or an agent, resources
    "views": "2000/hour",  # a person or an agent, views
    "actions": "500/hour",  # a person or an agent, actions
    "client_work": "60/minute;1000/hour",  # a client company's work for people
    "callbacks": "3000/hour",  # n8n's signed callbacks, per workflow
    "inbound": "120/hour",  # an outside party's deliveries, per workflow
    "error_reports": "600/hour",  # n8n's error workflow
    "replays": "600/hour",  # a person's /ws replays
    "refusals": "300/hour",  # what proves nobody, per client address
    "public": "7200/hour",  # public reads, per client address
}
