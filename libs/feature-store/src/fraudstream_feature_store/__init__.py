"""fraudstream's Feast feature repository and the request-time feature read.

Feast holds each customer's and terminal's rollable feature state (see
fraudstream_common.features): online in Redis for scoring, offline in parquet for training.
"""
