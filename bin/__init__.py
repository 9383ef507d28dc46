"""Command-line entry points of keras_taylor (installed as the `keras_taylor_bin` package).

Importing this package quiets TensorFlow's C++ start-up logging (CPU feature guard,
CUDA probing, oneDNN notices) for every binary: it sets TF_CPP_MIN_LOG_LEVEL=3 unless
the user has set it. This happens here, not behind a flag, because a binary imports
TensorFlow (keras_taylor.demo at module level, the others on first use) before absl
parses flags in `app.run`, and TensorFlow reads the variable once, when it loads. To
get the logging back, set it yourself: `TF_CPP_MIN_LOG_LEVEL=0 keras-taylor-train ...`.
Level 3 also hides TensorFlow's C++ ERROR lines (on a CPU-only machine the CUDA probe
logs one, "failed call to cuInit"); errors that matter still raise Python exceptions.
Lines written by absl before TensorFlow initializes its logging ("All log messages
before absl::InitializeLog() ..." and cudart_stub's "Could not find cuda drivers"; on
some installs of TensorFlow 2.21 the oneDNN notice too) do not go through that filter,
so no level removes them.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
