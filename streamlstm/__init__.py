"""streamlstm: online forecasting with stateful LSTM/GRU networks.

The numerical contract is docs/spec.md; ``OnlineRNN`` is the core every
other layer (River forecasters, the ``streamlstm`` CLI, Kafka workers) is built on.
"""
from streamlstm.errors import (BackendUnavailableError, CheckpointError, InputError,
                               StreamlstmError)
from streamlstm.core.online_rnn import OnlineRNN
from streamlstm.core.optim import SGD, Adam
from streamlstm.backends import compile_note  # noqa: F401  (registers the first-run note)

__version__ = "0.1.0"

# River estimators import river (slow); load them on first use.
_LAZY = {
    "LSTMForecaster": "streamlstm.forecast.estimators",
    "GRUForecaster": "streamlstm.forecast.estimators",
    "LSTMRegressor": "streamlstm.forecast.estimators",
    "MultiSeriesForecaster": "streamlstm.forecast.estimators",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib
        mod = importlib.import_module(_LAZY[name])
        return getattr(mod, name)
    raise AttributeError(f"module 'streamlstm' has no attribute {name!r}")


__all__ = ["OnlineRNN", "SGD", "Adam", "StreamlstmError", "InputError", "CheckpointError",
           "BackendUnavailableError", *_LAZY]
