"""fraudstream's drift detection: per-feature and score drift in event-time windows against a
model version's reference (`drift`), new patterns in pairs of features (`regions`), and when
alerts become a request for a new model (`retrain`).

The monitor service runs it on the `predictions` topic; `fraudstream evaluate drift` and
`evaluate loop` on a simulated history, so that the offline replays alert as the service does.
"""
