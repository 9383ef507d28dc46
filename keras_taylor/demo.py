"""A Taylor snapshot on a real model: how well T^n predicts the next optimizer step.

Trains the paper's MNIST autoencoder briefly on the embedded digits, then at one
round n takes the neural Taylor approximation at W^n, lets the optimizer take its
step to W^{n+1} on the same minibatch, and compares the Taylor loss at W^{n+1}
with the real loss there, at network scale and for each layer moved alone, along
with the fraction of activation states that the step flipped.
"""

import dataclasses
import json
import pathlib

import keras
import numpy as np

from keras_taylor.data import load_embedded_mnist
from keras_taylor.masks import activation_masks
from keras_taylor.models import autoencoder
from keras_taylor.snapshot import taylor_snapshot


@dataclasses.dataclass(frozen=True)
class DemoConfig:
    """Settings of the snapshot demo.

    Attributes:
        epochs: Training epochs on the embedded digits before the snapshot.
        batch_size: Minibatch size (the paper's autoencoder uses 64).
        learning_rate: RMSProp learning rate (the paper's 1e-3).
        seed: Seed for the shuffle and the initial weights.
        num_examples: How many of the 10,000 embedded digits to train on.
        output_dir: Where to write `demo.json`; None writes nothing.
    """

    epochs: int = 1
    batch_size: int = 64
    learning_rate: float = 1e-3
    seed: int = 0
    num_examples: int = 10_000
    output_dir: str | None = None


def _flip_fraction(before: dict, after: dict) -> float:
    flipped = sum(int(np.sum(before[name] != after[name])) for name in before)
    total = sum(before[name].size for name in before)
    return flipped / total


def run_snapshot_demo(config: DemoConfig) -> dict:
    """Runs the demo and returns its numbers (also written to `output_dir/demo.json`)."""
    keras.utils.set_random_seed(config.seed)
    images, _ = load_embedded_mnist()
    pixels = images.reshape(len(images), -1).astype("float32") / 255.0
    pixels = pixels[np.random.default_rng(config.seed).permutation(len(pixels))[: config.num_examples]]
    model = autoencoder(seed=config.seed)
    model.compile(keras.optimizers.RMSprop(config.learning_rate), "mse")
    model.fit(pixels, pixels, batch_size=config.batch_size, epochs=config.epochs, verbose=1)

    batch = pixels[: config.batch_size]
    snapshot = taylor_snapshot(model, batch, batch)
    weights_before = [np.array(w) for w in model.trainable_weights]
    masks_before = activation_masks(model, batch)
    model.train_on_batch(batch, batch)
    weights_after = [np.array(w) for w in model.trainable_weights]
    masks_after = activation_masks(model, batch)

    def real_loss(weights):
        for variable, value in zip(model.trainable_weights, weights):
            variable.assign(value)
        return float(model.compute_loss(batch, batch, model(batch, training=False)))

    rows = [{
        "scale": "network",
        "taylor_loss_next": snapshot.taylor_loss(weights_after),
        "real_loss_next": real_loss(weights_after),
    }]
    for name in snapshot.factors:
        moved = [
            after if slot[0] == name else before
            for slot, before, after in zip(snapshot.parameter_slots, weights_before, weights_after)
        ]
        layer_after = [after for slot, after in zip(snapshot.parameter_slots, weights_after) if slot[0] == name]
        rows.append({
            "scale": f"layer {name}",
            "taylor_loss_next": snapshot.taylor_loss(layer_after, layer=name),
            "real_loss_next": real_loss(moved),
        })
    real_loss(weights_after)
    summary = {
        "loss_at_w_n": snapshot.loss,
        "taylor_loss_at_w_n": snapshot.taylor_loss(snapshot.weights()),
        "activation_flip_fraction": _flip_fraction(masks_before, masks_after),
        "next_step": rows,
        "config": dataclasses.asdict(config),
    }
    print(f"\nloss at W^n {summary['loss_at_w_n']:.6f}   Taylor loss at W^n "
          f"{summary['taylor_loss_at_w_n']:.6f}   activations flipped by the step "
          f"{summary['activation_flip_fraction']:.4%}")
    print(f"{'after the step, moved':<28}{'Taylor loss':>14}{'real loss':>14}")
    for row in rows:
        print(f"{row['scale']:<28}{row['taylor_loss_next']:>14.6f}{row['real_loss_next']:>14.6f}")
    if config.output_dir is not None:
        path = pathlib.Path(config.output_dir)
        path.mkdir(parents=True, exist_ok=True)
        (path / "demo.json").write_text(json.dumps(summary, indent=2))
    return summary
