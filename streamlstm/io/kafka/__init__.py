"""Kafka scale-out over consumer groups: ``streamlstm run --source kafka://...``.

Modules, lowest first:

* ``address``: ``kafka://HOST:PORT/TOPIC`` addresses, shared client settings,
  the topic probe, and the errors ``KafkaSetupError`` / ``KafkaRuntimeError``;
* ``codec``: the source message format (``MessageFormat``, the file sources'
  ``Columns`` plus encoding) and ``decode_messages`` -> ``KafkaBatch``;
* ``store``: ``PartitionStore``, one snapshot (state + offset) per partition;
* ``sink``: ``ForecastSink``, forecasts to a topic (at least once, or in
  transactions);
* ``worker``: ``KafkaWorker``, one consumer of the group, one exact state per
  assigned partition (how state, snapshots, delivery and scale-out work);
* ``produce``: ``produce_frame``, observations from a frame into a topic;
* ``job``: ``KafkaJob``, what ``streamlstm run`` executes (``KafkaOptions`` in,
  ``KafkaResult`` out).

The command-line side (options, dispatch, summary) is ``streamlstm.cli.kafka``.
"""
