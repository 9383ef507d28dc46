"""Recording inside the training step (TensorFlow) and on the host (NumPy).

Data flow of one recorded round: `capture` (the step's own forward pass on a tape) →
`step.round_tensors` (what the plan's routes need, computed in the step; `chain` holds
Observation 2's recursion) → `step.numpy_round` → `host.RoundWriter` (accumulated and
written through `keras_taylor.schema`'s names). `plan.plan_recording` fixes the routes
and their cost before training. `keras_taylor.callbacks` is the Keras glue around it.
"""

from keras_taylor.recording.capture import ForwardCapture
from keras_taylor.recording.host import RoundWriter
from keras_taylor.recording.plan import (LayerPlan, PlannedRecording, RecorderOptions, RecordingPlan, dense_chain,
                                         plan_recording)
from keras_taylor.recording.step import numpy_round, round_tensors

__all__ = [
    "ForwardCapture",
    "LayerPlan",
    "PlannedRecording",
    "RecorderOptions",
    "RecordingPlan",
    "RoundWriter",
    "dense_chain",
    "numpy_round",
    "plan_recording",
    "round_tensors",
]
