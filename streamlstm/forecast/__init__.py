"""Forecasters built on ``OnlineRNN``: features and scaling, the many-series
``MultiSeriesForecaster`` and the River estimators."""
