"""Where rows come from and forecasts go: Parquet/CSV files, sinks, the file job
and Kafka."""
