"""The default forecaster learns a clean sequence (issue 11): fed the alphabet as
the numbers 0..25 again and again, ``LSTMForecaster()`` forecasts every next value
to within 0.5 (Z -> A too); fed the "there and back" sequence 0..25..1, where every
inner value is followed by a larger and by a smaller one, its state tells up from
down (50/50).  ``bench/sequences.py`` prints the same counts.

(Once the forecasters aggregate experts by default, these must hold for the
network alone, ``experts=None``, and with the experts on.)"""
import pytest

import streamlstm

ALPHABET = list(range(26))
THERE_AND_BACK = list(range(26)) + list(range(24, 0, -1))


def right_after(seq, passes, model):
    """Learn ``passes`` repetitions of ``seq``, then count the next values of one
    more pass forecast to within 0.5 (forecast first, then learn, as a stream)."""
    for _ in range(passes):
        for v in seq:
            model.learn_one(float(v))
    right = 0
    for v in seq:
        right += abs(model.forecast(1)[0] - v) <= 0.5
        model.learn_one(float(v))
    return right


@pytest.mark.parametrize("seq", [ALPHABET, THERE_AND_BACK], ids=["alphabet", "there_and_back"])
def test_default_lstm_forecaster_learns_a_clean_sequence(seq):
    # (the defaults before issue 11 got 10/26 and 13/50)
    assert right_after(seq, 300, streamlstm.LSTMForecaster()) == len(seq)

