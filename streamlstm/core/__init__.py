"""The model layer: the packed weight layout, the optimizers, checkpoints, row
grouping and ``OnlineRNN``, the checked public wrapper over a backend.

Imports only ``streamlstm.errors``, ``streamlstm.core`` and (``OnlineRNN``, through
the registry in ``streamlstm.backends``) the backends.
"""
