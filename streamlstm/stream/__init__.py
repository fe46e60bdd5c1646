"""Streaming rows through a forecaster: ``RowBatch``, the data policy, the
``StreamRunner`` and its metrics.  Knows nothing of files or Kafka."""
