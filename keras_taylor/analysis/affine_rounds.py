"""Rounds whose Taylor outputs are affine in the weights at one scale, for the non-quadratic losses."""

import dataclasses

import numpy as np

from keras_taylor.losses import ConvexLoss, reduction_scale


@dataclasses.dataclass(frozen=True)
class LinearRound:
    """One round's Taylor outputs as an affine map of the weights at one scale: T(v) = offset + map(v)."""

    offset: np.ndarray  # [B, p_L]
    targets: np.ndarray
    weights: np.ndarray  # W^n at this scale, flattened
    design: np.ndarray | None = None  # [B, p_L, P] (neuron scale)
    features: np.ndarray | None = None  # [B, S, P] layer scale: x̃ or the patches with a 1
    jacobian: np.ndarray | None = None  # [B, p_L, S, u] layer scale

    def outputs(self, v: np.ndarray) -> np.ndarray:
        if self.design is not None:
            return self.offset + self.design @ v
        preactivation = self.features @ v.reshape(self.features.shape[-1], -1)
        return self.offset + np.einsum("bpsk,bsk->bp", self.jacobian, preactivation)

    def pullback(self, output_gradient: np.ndarray) -> np.ndarray:
        """∇_v of ⟨output_gradient, T(v)⟩."""
        if self.design is not None:
            return np.einsum("bp,bpq->q", output_gradient, self.design)
        preactivation_gradient = np.einsum("bp,bpsk->bsk", output_gradient, self.jacobian)
        return np.einsum("bsq,bsk->qk", self.features, preactivation_gradient).reshape(-1)


class _StackedLoss:
    """The loss side of rounds stacked over their examples, given the affine map's `_outputs(v)`,
    `_linear(direction)` (its linear part) and `_pullback(output_gradient)`.

    One evaluation of Σ_n ℓ(T^n(v), y^n) is then a few products over all examples
    instead of a Python loop over rounds. Each example carries its round's reduction
    scale (1/B_n for a mean over the batch, 1 for a sum), so rounds of unequal size
    add up as the per-round losses do.
    """

    def __len__(self) -> int:
        return len(self.ends)

    def value(self, v: np.ndarray, loss: ConvexLoss) -> float:
        """Σ_n ℓ(T^n(v), y^n)."""
        return float(self.example_weight @ loss.per_example(self._outputs(v), self.targets))

    def curvature(self, v: np.ndarray, loss: ConvexLoss):
        """`(value, gradient, hessian_product)` of Σ_n ℓ(T^n(·), y^n) at v; `hessian_product(d)` = ∇²·d."""
        outputs = self._outputs(v)
        value = float(self.example_weight @ loss.per_example(outputs, self.targets))
        output_gradient = self.example_weight[:, None] * loss.per_example_gradient(outputs, self.targets)

        def hessian_product(direction: np.ndarray) -> np.ndarray:
            curvature = loss.per_example_hessian_product(outputs, self.targets, self._linear(direction))
            return self._pullback(self.example_weight[:, None] * curvature)

        return value, self._pullback(output_gradient), hessian_product

    def _stacked_prefix(self, rounds: int, **per_example) -> dict:
        """The fields shared by every stacked form, cut to the first `rounds` rounds (views)."""
        end = int(self.ends[rounds - 1]) if rounds else 0
        return dict(offset=self.offset[:end], targets=self.targets[:end], example_weight=self.example_weight[:end],
                    round_of_example=self.round_of_example[:end], weights=self.weights[:rounds],
                    ends=self.ends[:rounds], **{key: value[:end] for key, value in per_example.items()})


def _stacked_fields(linear_rounds: list, loss: ConvexLoss) -> dict:
    sizes = np.array([len(r.offset) for r in linear_rounds], np.int64)
    return dict(
        offset=np.concatenate([r.offset for r in linear_rounds]),
        targets=np.concatenate([np.asarray(r.targets) for r in linear_rounds]),
        example_weight=np.concatenate([np.full(size, reduction_scale(size, loss.reduction)) for size in sizes]),
        round_of_example=np.repeat(np.arange(len(sizes)), sizes),
        weights=np.stack([r.weights for r in linear_rounds]), ends=np.cumsum(sizes),
    )


@dataclasses.dataclass(frozen=True)
class StackedRounds(_StackedLoss):
    """Rounds whose Taylor outputs are affine in one neuron's weights, stacked over their examples
    (one product with the stacked design per evaluation)."""

    offset: np.ndarray  # [E, p_L]
    design: np.ndarray  # [E, p_L, P]
    targets: np.ndarray  # [E, ...]
    example_weight: np.ndarray  # [E]
    round_of_example: np.ndarray  # [E]
    weights: np.ndarray  # [R, P] W^n of each round
    ends: np.ndarray  # [R] examples up to and including each round

    @classmethod
    def from_rounds(cls, linear_rounds: list, loss: ConvexLoss) -> "StackedRounds":
        return cls(design=np.concatenate([r.design for r in linear_rounds]), **_stacked_fields(linear_rounds, loss))

    def prefix(self, rounds: int) -> "StackedRounds":
        """The first `rounds` rounds (views, no copy)."""
        return StackedRounds(**self._stacked_prefix(rounds, design=self.design))

    def _linear(self, direction: np.ndarray) -> np.ndarray:
        design = self.design.reshape(-1, self.design.shape[-1])  # [E·p_L, P]: BLAS matrix-vector products
        return (design @ direction).reshape(self.offset.shape)

    def _outputs(self, v: np.ndarray) -> np.ndarray:
        return self.offset + self._linear(v)

    def _pullback(self, output_gradient: np.ndarray) -> np.ndarray:
        return output_gradient.reshape(-1) @ self.design.reshape(-1, self.design.shape[-1])

    def incurred(self, loss: ConvexLoss) -> np.ndarray:
        """ℓ^n(W^n) of each round: T^n(W^n) = f_{W^n}."""
        outputs = self.offset + np.einsum("epq,eq->ep", self.design, self.weights[self.round_of_example])
        per_example = self.example_weight * loss.per_example(outputs, self.targets)
        return np.bincount(self.round_of_example, per_example, minlength=len(self))


@dataclasses.dataclass(frozen=True)
class StackedDenseRounds(_StackedLoss):
    """A dense layer's rounds at layer scale, stacked over their examples and kept factored.

    T(v) = offset + J (x̃ V) per example, V = v as `[P, u]`: an evaluation is one GEMM
    with the stacked inputs x̃ `[E, P]` and a batched product with J `[E, p_L, u]`; the
    design J ⊗ x̃ (`[E, p_L, P·u]`) is never formed.
    """

    offset: np.ndarray  # [E, p_L]
    features: np.ndarray  # [E, P]: x̃ with a 1 for the bias
    jacobian: np.ndarray  # [E, p_L, u]
    targets: np.ndarray  # [E, ...]
    example_weight: np.ndarray  # [E]
    round_of_example: np.ndarray  # [E]
    weights: np.ndarray  # [R, P·u] W^n of each round
    ends: np.ndarray  # [R] examples up to and including each round

    @classmethod
    def from_rounds(cls, linear_rounds: list, loss: ConvexLoss) -> "StackedDenseRounds":
        return cls(features=np.concatenate([r.features[:, 0, :] for r in linear_rounds]),
                   jacobian=np.concatenate([r.jacobian[:, :, 0, :] for r in linear_rounds]),
                   **_stacked_fields(linear_rounds, loss))

    def prefix(self, rounds: int) -> "StackedDenseRounds":
        """The first `rounds` rounds (views, no copy)."""
        return StackedDenseRounds(**self._stacked_prefix(rounds, features=self.features, jacobian=self.jacobian))

    def _linear(self, direction: np.ndarray) -> np.ndarray:
        return _dense_linear(self.features, self.jacobian, direction)

    def _outputs(self, v: np.ndarray) -> np.ndarray:
        return self.offset + self._linear(v)

    def _pullback(self, output_gradient: np.ndarray) -> np.ndarray:
        return (self.features.T @ np.einsum("ep,epk->ek", output_gradient, self.jacobian)).reshape(-1)

    def incurred(self, loss: ConvexLoss) -> np.ndarray:
        """ℓ^n(W^n) of each round: T^n(W^n) = f_{W^n}."""
        starts = np.concatenate([[0], self.ends[:-1]])
        outputs = self.offset.copy()
        for start, end, weights in zip(starts, self.ends, self.weights):
            outputs[start:end] += _dense_linear(self.features[start:end], self.jacobian[start:end], weights)
        per_example = self.example_weight * loss.per_example(outputs, self.targets)
        return np.bincount(self.round_of_example, per_example, minlength=len(self))


def _dense_linear(features: np.ndarray, jacobian: np.ndarray, v: np.ndarray) -> np.ndarray:
    """`[E, p_L]` J (x̃ V) per example, V = v as `[P, u]`."""
    return np.einsum("epk,ek->ep", jacobian, features @ v.reshape(features.shape[1], -1))


@dataclasses.dataclass(frozen=True)
class RoundList:
    """Rounds kept one by one (layer scale: each round's features and Jacobians), with the
    interface of `StackedRounds`."""

    rounds: list

    def __len__(self) -> int:
        return len(self.rounds)

    @property
    def weights(self) -> np.ndarray:
        return np.stack([taylor_round.weights for taylor_round in self.rounds])

    def prefix(self, rounds: int) -> "RoundList":
        return RoundList(self.rounds[:rounds])

    def value(self, v: np.ndarray, loss: ConvexLoss) -> float:
        return float(sum(loss(r.outputs(v), r.targets) for r in self.rounds))

    def curvature(self, v: np.ndarray, loss: ConvexLoss):
        value, gradient, outputs = 0.0, np.zeros_like(v), []
        for taylor_round in self.rounds:
            outputs.append(taylor_round.outputs(v))
            value += loss(outputs[-1], taylor_round.targets)
            gradient += taylor_round.pullback(loss.gradient(outputs[-1], taylor_round.targets))

        def hessian_product(direction: np.ndarray) -> np.ndarray:
            product = np.zeros_like(direction)
            for taylor_round, round_outputs in zip(self.rounds, outputs):
                output_direction = taylor_round.outputs(direction) - taylor_round.offset
                scale = reduction_scale(len(round_outputs), loss.reduction)
                product += taylor_round.pullback(scale * loss.per_example_hessian_product(
                    round_outputs, taylor_round.targets, output_direction))
            return product

        return value, gradient, hessian_product

    def incurred(self, loss: ConvexLoss) -> np.ndarray:
        return np.array([loss(r.outputs(r.weights), r.targets) for r in self.rounds])


def as_rounds(linear_rounds, loss: ConvexLoss):
    """A list of `LinearRound`s as `StackedRounds` when every round has a design (neuron scale), as
    `StackedDenseRounds` when every round is a dense layer's (one output position), else as a
    `RoundList` (a convolution's layer scale); stacked or listed rounds pass through."""
    if isinstance(linear_rounds, (StackedRounds, StackedDenseRounds, RoundList)):
        return linear_rounds
    if linear_rounds and all(r.design is not None for r in linear_rounds):
        return StackedRounds.from_rounds(linear_rounds, loss)
    if linear_rounds and all(r.features is not None and r.features.shape[1] == 1 for r in linear_rounds):
        return StackedDenseRounds.from_rounds(linear_rounds, loss)
    return RoundList(list(linear_rounds))
