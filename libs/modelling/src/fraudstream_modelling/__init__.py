"""fraudstream's model and how it is judged: XGBoost trained and exported to ONNX (`model`), the
handbook's protocol and metrics (`protocol`, `performance`, `evaluation`), the choice of
parameters on validation folds (`selection`), and what a training run decides on data laid out
in its windows (`checks`, `gate`, `choice`, `windows`).

The trainer service runs it on Feast's training sets; `fraudstream evaluate` on a simulated
history, so that the offline replays decide as the service does.
"""
