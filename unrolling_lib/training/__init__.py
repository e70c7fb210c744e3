"""Plain SGD over an explicit batch order (§5.1), the lockstep M/M′ runs of §8.3, and where they run.

- :mod:`.loop`: :func:`train`, :func:`train_lockstep`, :func:`noise_floor` and what they return.
- :mod:`.callbacks`: the :class:`Callback` protocol and the :class:`StepState` a callback sees.
- :mod:`.runtime`: device, seeding, deterministic kernels, CPU threads, torch's own jvp warning.
"""

from .callbacks import Callback, StepState
from .loop import LockstepResult, TrainingDiverged, TrainResult, noise_floor, train, train_lockstep
from .runtime import bars_wanted, cpu_threads, deterministic_mode, pick_device, quiet_jvp, seed_everything

__all__ = [
    "Callback", "LockstepResult", "StepState", "TrainResult", "TrainingDiverged", "bars_wanted", "cpu_threads",
    "deterministic_mode", "noise_floor", "pick_device", "quiet_jvp", "seed_everything", "train", "train_lockstep",
]
