"""The classic stateful-LSTM exercise, online: learn the alphabet as a stream.

The letters A..Z are streamed again and again, one at a time, to a stateful LSTM
(``streamlstm.OnlineRNN``) that predicts the next letter and learns from it at
once (truncated BPTT).  Its only input is the current letter as one number
(index / 25), so 26 close values must be told apart: the network leans on its
recurrent state, which tracks where in the alphabet the stream is.  Eight
streams share the weights; at every pass one of them restarts at "A" from a
fresh (zero) state (``OnlineRNN.reset_series``, as a new series would), so the
network learns how a stream *begins* as well as how it goes on (Z -> A).

Then, without changing anything (``OnlineRNN.predict`` on copies of state):

1. in-stream, from its live state, it gets all 26 transitions right (Z -> A too);
2. a *fresh* state shown only "K" has no context and goes wrong;
3. a fresh state that first replays A..J gets "K" -> "L" right: the state, not
   the single input, carries the answer.  (Replay = streaming, docs/spec.md section 6.)

Run:  python examples/alphabet.py  [--backend reference]
"""
import argparse
import string
import sys
import time

import numpy as np

import streamlstm

LETTERS = string.ascii_uppercase


def encode(i):
    return np.array([[i / 25.0]])


def one_hot(i):
    y = np.zeros((1, 26))
    y[0, i % 26] = 1.0
    return y


def decode(yhat):
    return LETTERS[int(np.argmax(yhat))]


def rollout(net, letters, state=None):
    """Feed ``letters`` through copies of the state; returns (last prediction, state)."""
    if state is None:
        state = np.zeros(net.layout.state_shape(1))
    yhat = None
    for ch in letters:
        yhat, state = net.predict(encode(LETTERS.index(ch)), state=state)
    return decode(yhat), state


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", default="cpu", help="cpu (default), reference or cuda")
    p.add_argument("--max-passes", type=int, default=600)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)

    N = 8
    net = streamlstm.OnlineRNN(n_inputs=1, hidden_size=32, n_outputs=26, n_series=N, k1=13,
                               k2=26, optimizer=streamlstm.Adam(lr=0.01), backend=a.backend,
                               seed=a.seed)
    t0 = time.perf_counter()
    passes, streak = 0, 0
    while passes < a.max_passes and streak < 3:
        if passes:
            net.reset_series([passes % N])     # this stream starts over at "A", fresh state
        hits = 0
        for i in range(26):      # one pass: A->B, ..., Y->Z, Z->A (the streams go on)
            yhat = net.step(np.repeat(encode(i), N, axis=0), np.repeat(one_hot(i + 1), N, axis=0))
            hits += sum(decode(row) == LETTERS[(i + 1) % 26] for row in yhat)
        passes += 1
        streak = streak + 1 if hits == 26 * N else 0
    secs = time.perf_counter() - t0
    print(f"streamed A..Z {passes} times on {N} streams ({26 * passes} steps, "
          f"{secs:.1f} s, backend={a.backend}); the last {streak} passes were all right")

    # 1. in-stream: all 26 transitions from the first stream's live state (copies only)
    state = net.get_state([0])
    got = []
    for i in range(26):
        yhat, state = net.predict(encode(i), state=state)
        got.append(f"{LETTERS[i]}->{decode(yhat)}")
    right = sum(g[-1] == LETTERS[(i + 1) % 26] for i, g in enumerate(got))
    print(f"1. in-stream, live state:      {right}/26 transitions right")
    print("   " + " ".join(got))

    # 2. a fresh state shown only "K"
    fresh, _ = rollout(net, "K")
    print(f"2. fresh state, input 'K':     predicts {fresh!r} "
          f"({'right' if fresh == 'L' else 'wrong: no context'})")

    # 3. a fresh state that replays A..J first
    primed, _ = rollout(net, "ABCDEFGHIJK")
    print(f"3. fresh state, A..J then 'K': predicts {primed!r} "
          f"({'right: the replayed state carries the position' if primed == 'L' else 'wrong'})")
    return 0 if (right == 26 and primed == "L") else 1


if __name__ == "__main__":
    sys.exit(main())
