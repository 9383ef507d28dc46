"""What both recorders write into a manifest about the software and the optimizer."""

import importlib.metadata
import sys

import keras
import numpy as np
import tensorflow as tf


def versions() -> dict:
    versions = {"python": sys.version.split()[0], "tensorflow": tf.__version__, "keras": keras.__version__,
                "numpy": np.__version__}
    try:
        versions["keras_taylor"] = importlib.metadata.version("keras_taylor")
    except importlib.metadata.PackageNotFoundError:
        versions["keras_taylor"] = "unknown"
    return versions


def optimizer_description(model) -> dict:
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        return {}
    return {"class": type(optimizer).__name__, "config": keras.saving.serialize_keras_object(optimizer)["config"]}
