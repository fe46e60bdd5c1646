"""streamlstm: online forecasting with stateful LSTM/GRU networks.

The numerical contract is ../shared/SPEC.md; ``OnlineRNN`` is the core every
other layer (River forecasters, the ``streamlstm`` CLI, Kafka workers) is built on.
"""
from .errors import (BackendUnavailableError, CheckpointError, InputError,
                     StreamlstmError)
from .model import OnlineRNN
from .optim import SGD, Adam

__version__ = "0.1.0"

# River estimators import river (slow); load them on first use.
_LAZY = {
    "LSTMForecaster": "forecasters",
    "GRUForecaster": "forecasters",
    "LSTMRegressor": "forecasters",
    "MultiSeriesForecaster": "forecasters",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib
        mod = importlib.import_module(f".{_LAZY[name]}", __name__)
        return getattr(mod, name)
    raise AttributeError(f"module 'streamlstm' has no attribute {name!r}")


__all__ = ["OnlineRNN", "SGD", "Adam", "StreamlstmError", "InputError", "CheckpointError",
           "BackendUnavailableError", *_LAZY]
