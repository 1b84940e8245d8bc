"""Every fraudstream feature, defined once.

Semantics (the contract the stream, the backfill and request-time scoring all follow):

- Time is event time, in seconds since the epoch (UTC); never wall-clock time.
- A transaction x of customer c on terminal m at time t with amount a.
- The customer's history H is c's transactions that arrived before x (for an in-order stream:
  those earlier in event time, ties in arrival order). Customer windows are half-open,
  relative to x's own time, and include x itself: W(w) = {e in H : t - w < t_e <= t} + {x}.
    customer_nb_tx_{1,7,30}d      |W(w)| for w = 1, 7, 30 days
    customer_avg_amount_{1,7,30}d sum of amounts over W(w) / |W(w)|
    customer_nb_tx_1h             |W(1 hour)|
    customer_nb_terminals_24h     distinct terminals over W(24 hours)
    customer_seconds_since_last   t - (latest t_e <= t in H), capped at 30 days (also when none)
    amount_to_customer_avg_30d    a / customer_avg_amount_30d (1 when that mean is 0)
    amount_to_customer_median_30d a / the median amount of W(30 days) without x (1 when W holds
                                  no other transaction or that median is 0): unlike the mean, a
                                  few unusual amounts in the month do not move it
    customer_max_amount_7d_to_median_30d
                                  the largest amount of W(7 days) without x / that median (1 when
                                  either holds no other transaction or the median is 0): a card
                                  whose other payments of the week include an inflated one
- The terminal's history G is m's transactions that arrived before x. Frauds are known only
  later: a label L for a transaction is usable at time t only if L.label_time <= t. Terminal
  windows are the handbook's, shifted back by the label delay D (7 days):
  V(w) = {g in G : t - D - w < t_g <= t - D} (x itself is never in V).
    terminal_nb_tx_{1,7,30}d      |V(w)|
    terminal_risk_{1,7,30}d       |{g in V(w) : labelled fraud, label_time <= t}| / |V(w)|, 0 when V is empty
    terminal_reported_frauds_7d   |{g in G : t - 7 days < t_g <= t, labelled fraud, label_time <= t}|: the
                                  frauds already reported among the terminal's last week, which the
                                  delayed windows cannot see yet
    terminal_risk_last_{1,3}tx    the share labelled fraud (label_time <= t) among the last k
                                  transactions of V(30 days), 0 when it is empty: the latest
                                  evidence, however busy or quiet the terminal is
- Transaction: tx_amount = a; tx_during_weekend = Saturday or Sunday (UTC);
  tx_during_night = hour (UTC) <= 6, as the handbook defines night.

Late and out-of-order events: a transaction is computed from the history that arrived before
it, windows taken relative to its own time (so later-arrived events with earlier times are
not seen by it, and events after its time are never counted). It then joins the history at
its place in time order. History older than the longest window (30 days, and 37 days for
terminals) is dropped; an event older than that relative to the newest one seen cannot
change any window any more and is not added. Labels may arrive in any order.

The stream path must apply every label with label_time <= t before the transaction at t,
and every transaction of the terminal up to t - LABEL_DELAY_DAYS (the features service's
terminal stage holds a transaction until watermarks say so); with that, the stream, the
backfill and a request give the same vector for the same history.

That holding back is bounded, and the stream says when it cut it short (the policy is in
fraudstream_features.terminals): a transaction enriched before what its terminal features
need had arrived is flagged `early`, and one that arrived after a later transaction of its
customer or of its terminal is flagged `late`. The vector of a transaction flagged neither
equals the backfill's; a flagged one is computed from the history that had arrived, as above.
The offline training rows are the stream's own, so training and serving agree in every case.
"""

from __future__ import annotations

from typing import Final

DAY: Final = 86400
HOUR: Final = 3600
CUSTOMER_WINDOWS_DAYS: Final = (1, 7, 30)
CUSTOMER_PEAK_WINDOW_DAYS: Final = 7  # one of CUSTOMER_WINDOWS_DAYS
CUSTOMER_PEAK_FEATURE: Final = (
    f"customer_max_amount_{CUSTOMER_PEAK_WINDOW_DAYS}d_to_median_{max(CUSTOMER_WINDOWS_DAYS)}d"
)
TERMINAL_WINDOWS_DAYS: Final = (1, 7, 30)
TERMINAL_LAST_MATURED: Final = (1, 3)
LABEL_DELAY_DAYS: Final = 7
REPORTED_FRAUDS_WINDOW_DAYS: Final = 7
SECONDS_SINCE_LAST_CAP: Final = 30 * DAY
CUSTOMER_HORIZON: Final = max(CUSTOMER_WINDOWS_DAYS) * DAY
TERMINAL_HORIZON: Final = (LABEL_DELAY_DAYS + max(TERMINAL_WINDOWS_DAYS)) * DAY

TRANSACTION_FEATURES: Final = ("tx_amount", "tx_during_weekend", "tx_during_night")
CUSTOMER_FEATURES: Final = (
    *(f"customer_nb_tx_{w}d" for w in CUSTOMER_WINDOWS_DAYS),
    *(f"customer_avg_amount_{w}d" for w in CUSTOMER_WINDOWS_DAYS),
    "customer_nb_tx_1h",
    "customer_nb_terminals_24h",
    "customer_seconds_since_last",
    "amount_to_customer_avg_30d",
    "amount_to_customer_median_30d",
    CUSTOMER_PEAK_FEATURE,
)
TERMINAL_FEATURES: Final = (
    *(f"terminal_nb_tx_{w}d" for w in TERMINAL_WINDOWS_DAYS),
    *(f"terminal_risk_{w}d" for w in TERMINAL_WINDOWS_DAYS),
    f"terminal_reported_frauds_{REPORTED_FRAUDS_WINDOW_DAYS}d",
    *(f"terminal_risk_last_{k}tx" for k in TERMINAL_LAST_MATURED),
)
# The order of the model's input vector.
FEATURE_NAMES: Final = (*TRANSACTION_FEATURES, *CUSTOMER_FEATURES, *TERMINAL_FEATURES)


def transaction_features(amount: float, event_time: float) -> dict[str, float]:
    days_since_epoch, seconds_of_day = divmod(int(event_time // 1), DAY)
    weekday = (days_since_epoch + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    return {
        "tx_amount": float(amount),
        "tx_during_weekend": float(weekday >= 5),
        "tx_during_night": float(seconds_of_day // HOUR <= 6),
    }
