"""The continuous-training controller, in parts: the pipeline lock (`lock.py`), the decision
records (`decisions.py`), the on-demand request queue (`requests.py`), the evidence a tick
judges by, shared with the backtest (`evidence.py`), the five triggers (`triggers.py`),
acting on a decision through the commands (`acting.py`), and one tick over them
(`controller.py`); the backtest of retraining policies replays a past period with the same
parts (`backtest.py`)."""
