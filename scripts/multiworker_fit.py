"""Does `model.fit` run under MultiWorkerMirroredStrategy here? Two local workers, plain Keras.

    python scripts/multiworker_fit.py            # launches both workers, prints each one's outcome
    python scripts/multiworker_fit.py --recorder # the same with a TaylorRecorder on the chief

Each worker gets one CPU device and a TF_CONFIG naming both on 127.0.0.1. The README's note on
training on several machines rests on what this prints (keras-team/keras#20585).
"""

import json
import os
import socket
import subprocess
import sys
import tempfile


def _worker(index: int, ports: list, logdir: str | None) -> None:
    os.environ["TF_CONFIG"] = json.dumps({"cluster": {"worker": [f"127.0.0.1:{port}" for port in ports]},
                                          "task": {"type": "worker", "index": index}})
    import keras  # pylint: disable=import-outside-toplevel
    import numpy as np  # pylint: disable=import-outside-toplevel
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 5)).astype("float32"), rng.normal(size=(64, 2)).astype("float32")
    with strategy.scope():
        model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4, activation="relu"), keras.layers.Dense(2)])
        model.compile(keras.optimizers.SGD(0.05), "mse")
    callbacks = []
    if logdir is not None:
        from keras_taylor.callbacks import TaylorRecorder  # pylint: disable=import-outside-toplevel

        callbacks.append(TaylorRecorder(os.path.join(logdir, f"worker{index}"), verbose=0))
    try:
        model.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=callbacks)
        print(f"worker {index}: fit ran")
    except Exception as error:  # pylint: disable=broad-except
        print(f"worker {index}: fit failed: {type(error).__name__}: {str(error).splitlines()[0][:120]}")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        _worker(int(sys.argv[2]), json.loads(sys.argv[3]), sys.argv[4] if len(sys.argv) > 4 else None)
        return
    ports = [_free_port(), _free_port()]
    logdir = [tempfile.mkdtemp()] if "--recorder" in sys.argv else []
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "-1"}
    workers = [subprocess.Popen([sys.executable, __file__, "--worker", str(index), json.dumps(ports), *logdir],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=environment)
               for index in range(2)]
    for worker in workers:
        output, _ = worker.communicate(timeout=600)
        print(output.strip())


if __name__ == "__main__":
    main()
