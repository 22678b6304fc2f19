"""Registry of search spaces, timm style: one file per space, ``@register_space("name")``.

A space is written once, against keras_tuner's ``HyperParameters`` API (``hp.Int``,
``hp.Float``, ``hp.Choice``, ``hp.Boolean``, ``hp.conditional_scope``). Keras Tuner passes
its own ``HyperParameters``; the Optuna engine passes ``search.hyperparameters.DefineByRunHyperParameters``,
which answers the same calls with ``trial.suggest_*``. Hyperparameters are declared where
the model is built (keras-tuner's HyperModel idiom), so a space is two methods:

- ``build(hp, ctx)`` declares every hyperparameter and returns a *compiled* model;
- ``fit(hp, model, data, ctx, ...)`` trains it (the default fits on images; a transfer space may
  train its head on cached backbone features, then fine-tune).

``data`` is the trial's data source (``search.data.ArrayData`` or ``ManifestData``): it hands
out ``dataset(split, image_size, batch_size, shuffle)``, ``arrays(split, image_size)`` and
``features(split, image_size, key, extractor)`` (frozen-backbone outputs, cached under ``key``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

_SPACES: dict[str, _Registered] = {}

S = TypeVar("S", bound=type["Space"])


@dataclasses.dataclass(frozen=True)
class BuildContext:
    """What a space needs to know about the run, beyond its hyperparameters."""

    num_classes: int
    # Low-fidelity cap: a trial that picks a larger input size is built and trained at this
    # size instead (its config still records the size it picked).
    max_image_size: int | None = None
    # Backbone weights for transfer spaces: "imagenet", a local .h5 path, or None (random init,
    # used by tests and dry builds so nothing is downloaded).
    weights: str | None = None
    # True when every trial climbs fidelity rungs (--rungs): a promotion must continue the
    # trial's weights at a larger input, so a space declares only what can carry them (the
    # cnn space then pools globally: a flattening head grows with the image).
    climbs: bool = False

    # A fidelity rung's own input-size cap (search.fidelity.climb), below max_image_size: it
    # changes what the model is trained at, never what its hyperparameters may be.
    rung_image_size: int | None = None
    # The trial's whole epoch budget when it is trained in pieces (fidelity rungs: each fit
    # ends at its rung's epoch): a space that trains in phases splits this budget, never one
    # rung's, so that the pieces add up to the trial trained in one go.
    trial_epochs: int | None = None

    def declared_sizes(self, low: int, high: int, step: int) -> tuple[int, int]:
        """The input sizes a space declares, ``low`` to ``high`` by ``step``, cut at
        ``max_image_size``: a size above the cap would train at the cap, one configuration
        under several names (a mutation of one would change nothing). At least two sizes: a
        single-valued Optuna distribution made the search process grow by megabytes a trial
        (tests/search/isolation_memory_test.py). Rung caps do not narrow it."""
        top = max(low + step, min(high, self.max_image_size or high))
        return low, top - (top - low) % step

    def image_size(self, requested: int) -> int:
        caps = [c for c in (self.max_image_size, self.rung_image_size) if c is not None]
        return int(min([requested, *caps]))


class Space:
    """Base class of a search space; subclasses override ``build``, ``reference_configs`` and
    ``starting_configs``."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    # True for spaces with a pretrained backbone: the run resolves BuildContext.weights.
    uses_pretrained_weights: ClassVar[bool] = False
    # True where ``fit`` can continue a trained model of the same configuration from
    # ``initial_epoch`` (one fit, no phases): keras-tuner's Hyperband then promotes a trial
    # with the weights its lower rung learned instead of training it again from scratch.
    warm_starts: ClassVar[bool] = False
    # True where ``fit`` continues a trial from the end of a fidelity rung (``initial_epoch``,
    # within ``BuildContext.trial_epochs``), weights carried over, so ``--rungs`` can carry
    # its trials up a ladder (search.fidelity.climb).
    climbs_rungs: ClassVar[bool] = False
    # Input-size caps of ``--rungs auto``'s rungs (search.fidelity), cheapest first; None is
    # the trial's own size. Sizes the space can train at; a space without its own keeps the
    # full size and climbs in training data and epochs only.
    fidelity_sizes: ClassVar[tuple[int | None, ...]] = (None, None, None)
    # True where the last epoch of every fit is validated with its batch norms' statistics
    # recomputed on the training images (search.training.PreciseBatchNorm). Not for a
    # pretrained backbone, whose statistics are part of what it brings.
    precise_batch_norm: ClassVar[bool] = False

    def build(self, hp: Any, ctx: BuildContext):
        """Declare the hyperparameters on ``hp`` and return a compiled keras model.

        Declare every hyperparameter before raising for a bad combination: keras-tuner learns
        the space by building it, and a build that raises early would hide the rest.
        """
        raise NotImplementedError

    def declare(self, hp: Any, ctx: BuildContext):
        """Declare the hyperparameters on ``hp`` by building without pretrained weights.

        Engines use this to learn the space (keras-tuner) or to have a trial's values sampled
        (Optuna samples when asked). Returns the model, or None for a combination the space
        rejects: its declarations, made before the rejection, are all that matter here, and
        that trial fails with the same error where it is trained.
        """
        try:
            return self.build(hp, dataclasses.replace(ctx, weights=None))
        except Exception:  # noqa: BLE001 - see above
            return None

    def fit(
        self,
        hp: Any,
        model,
        data,
        ctx: BuildContext,
        *,
        epochs: int,
        callbacks=(),
        batch_size: int = 32,
        verbose: int = 0,
        initial_epoch: int = 0,
    ) -> None:
        """Train ``model`` on the training images, validating every epoch; epochs
        ``initial_epoch`` .. ``epochs - 1`` (a warm start continues a trained model, see
        :attr:`warm_starts`)."""
        from search.training import PreciseBatchNorm

        size = int(model.input_shape[1])
        # First: it rewrites the last epoch's validation logs the trial's callbacks read.
        precise = [PreciseBatchNorm(data, size, epochs)] if self.precise_batch_norm else []
        model.fit(
            data.dataset("train", size, batch_size, shuffle=True),
            validation_data=data.dataset("val", size, batch_size, shuffle=False),
            epochs=epochs,
            initial_epoch=initial_epoch,
            callbacks=[*precise, *self.training_callbacks(hp, epochs, ctx), *callbacks],
            verbose=verbose,
            shuffle=False,  # the dataset shuffles itself; Keras warns about shuffle=True here
        )

    def complete(self, config: dict[str, Any]) -> dict[str, Any]:
        """A recorded configuration with each hyperparameter the space gained since it was
        recorded set to what the model it names had (its retrain builds that model again)."""
        return dict(config)

    def training_work(
        self, hp: Any, model, epochs: int, *, initial_epoch: int = 0, trial_epochs=None
    ) -> list[tuple[int, int, int]]:
        """What :meth:`fit` will train from ``initial_epoch`` to ``epochs`` (of a trial of
        ``trial_epochs`` in all where it is trained in pieces, ``BuildContext.trial_epochs``),
        as the cost model prices it (``search.cost``): one ``(MACs per image, activations per
        image, epochs)`` per fit. Here one fit of the whole model; a space that trains parts of
        it on cached tensors says which parts, for how many epochs each."""
        from search.cost import model_activations, model_macs

        return [(model_macs(model), model_activations(model), epochs - initial_epoch)]

    def predict(self, hp: Any, model, data, ctx: BuildContext, split: str, batch_size: int = 64):
        """``model``'s class probabilities ``(N, classes)`` on a split's images, in the data
        source's order (a space with cached paths may compute them without the images)."""
        from search.data import predict_in_batches

        x, _ = data.arrays(split, int(model.input_shape[1]))
        return predict_in_batches(model, x, batch_size)

    def cross_validates(self, hp: Any) -> bool:
        """Whether this configuration is cheap enough to train again once per fold (``--cv``).

        A space that answers True also has ``cross_validate(hp, model, data, ctx, folds, *,
        epochs, batch_size=32, seed=0)``: train the configuration of the trained ``model``
        ``folds`` times on train + validation, each time holding out one fold of whole
        duplicate groups, and return the report of ``search.crossval.summarize``."""
        return False

    def inference_model(self, hp: Any, model):
        """The model to save and export for a trained ``model``: ``model`` itself, or one that
        wraps it (e.g. test-time augmentation the trial chose)."""
        return model

    def training_callbacks(self, hp: Any, epochs: int, ctx: BuildContext | None = None) -> list:
        """Callbacks that belong to the recipe (e.g. a learning-rate schedule) for a fit that
        ends at epoch ``epochs`` (of a trial trained in pieces where ``ctx.trial_epochs``)."""
        return []

    def reference_configs(self) -> list[dict[str, Any]]:
        """Published recipes as points of this space; every new search runs them first."""
        return []

    def starting_configs(self) -> list[dict[str, Any]]:
        """Known-good points of this space (from earlier studies), queued right after the
        references: a search that can afford a handful of trials starts from them, instead of
        only from its sampler's random start-up draws (Optuna's ``enqueue_trial``; the
        keras-tuner oracle here runs them first too). Every trial is still chosen by
        validation alone."""
        return []


@dataclasses.dataclass(frozen=True)
class _Registered:
    """A registered space: what builds it, with which preset keyword arguments."""

    factory: Callable[..., Space]
    preset: dict[str, Any]
    description: str | None  # None: the factory's own (its class attribute)


def register_space(
    name: str,
    factory: Callable[..., Space] | None = None,
    *,
    description: str | None = None,
    **preset: Any,
):
    """Register a space under ``name``, timm style. As a class decorator,
    ``@register_space("cnn") class CNNSpace(Space): ...``; a variant of a registered space is
    a call that presets its keyword arguments, ``register_space("mobilenet-cached",
    MobileNetSpace, description="...", augment=False)``, not a subclass. ``get_space(name,
    **kwargs)`` builds ``factory(**preset, **kwargs)``."""

    def decorator(cls: S) -> S:
        if not callable(cls) or (isinstance(cls, type) and not issubclass(cls, Space)):
            raise TypeError(
                f"register_space({name!r}) expects a Space subclass or a factory "
                f"of spaces, got {cls!r}"
            )
        entry = _Registered(cls, dict(preset), description)
        existing = _SPACES.get(name)
        # Registering the same again (a module imported twice) is harmless; two different
        # spaces under one name would make `--space` ambiguous.
        if existing is not None and (
            existing.factory.__qualname__ != cls.__qualname__ or existing.preset != entry.preset
        ):
            raise ValueError(
                f"space {name!r} is already registered by {existing.factory.__qualname__}"
            )
        if factory is None and isinstance(cls, type):
            cls.name = name  # the class's own registration names it
        _SPACES[name] = entry
        return cls

    if factory is not None:
        decorator(factory)
        return None
    return decorator


def get_space(name: str | Space, **kwargs: Any) -> Space:
    """A new instance of the registered space ``name``, its preset keyword arguments updated
    with ``kwargs`` (a Space instance passes through)."""
    if isinstance(name, Space):
        return name
    try:
        entry = _SPACES[name]
    except KeyError:
        raise ValueError(
            f"unknown space {name!r}; registered spaces: {', '.join(list_spaces()) or '(none)'}"
        ) from None
    space = entry.factory(**{**entry.preset, **kwargs})
    if not isinstance(space, Space):
        raise TypeError(f"space {name!r}: its factory returned {space!r}, not a Space")
    space.name = name  # a variant is its own space: studies and results are filed under it
    if entry.description is not None:
        space.description = entry.description
    return space


def list_spaces() -> list[str]:
    return sorted(_SPACES)
