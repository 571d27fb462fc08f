"""Detection rules over the incoming stream, alerts stored, served and delivered (docs/alerts.md).

- `rules.json` / `rules.py`: the rules as data, user overrides, validation, compiled matchers
- `engine.py`: the engine ContentProcessor calls for each indexed blob (AlertSink)
- `store.py`: the alerts, window and first-seen tables and the alert queue
- `deliver.py`: webhook (JSON with HMAC, Teams, Slack), output queue and log-event delivery
- `silence.py`: health rules over HealthReporter's report (our own silence is an alert)
- `query.py`: GET /api/alerts
- `wiring.py`: builds them from Services
"""
