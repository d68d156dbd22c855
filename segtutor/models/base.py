"""The base of the course's models: each records how it was built, from its constructor's own arguments.

Used by every model of ``01_fcn.ipynb``, ``02_unet.ipynb`` and ``03_deeplab.ipynb``; ``06_end_to_end.ipynb``
relies on it when a checkpoint refuses the weights of another architecture.

A subclass writes an ordinary ``__init__(self, num_classes, in_channels=3, ..., width=16, ...)``.
:class:`SegmentationModel` wraps it (in ``__init_subclass__``): the call's arguments are bound to that
signature with the defaults filled in, then

1. checked: ``num_classes``, ``in_channels`` and ``width`` must be positive integers
   (:func:`segtutor._validation.check_int`, so ``np.int64(4)`` works like ``4``), and the class's own
   :meth:`~SegmentationModel.resolve` checks the rest and replaces defaults such as ``rates=None`` by the
   values used (sequences become tuples, integer scalars ints);
2. passed to the body, which builds the layers from exactly these values;
3. recorded as ``model.config = {"name": ..., <every argument>: <value used>}`` (a subclass of a subclass
   records the outermost constructor's arguments: its wrapper finishes last).

So a new constructor argument is in ``config`` without anyone remembering to add it, and
``build_model(**model.config)`` rebuilds the same architecture. After the body, the wrapper also sets
``self.num_classes`` and ``self.in_channels`` (what ``forward`` checks images against).
"""
from __future__ import annotations

import functools
import inspect
from typing import Any, ClassVar

from torch import nn

from .._validation import check_int, is_int

__all__ = ["SegmentationModel"]

#: Arguments every model takes that must be positive integers.
_POSITIVE = ("num_classes", "in_channels", "width")


def _plain(value: Any) -> Any:
    """Sequences as tuples and integer scalars (``np.int64``) as ints: what a checkpoint can store and compare."""
    if isinstance(value, (list, tuple)):
        return tuple(_plain(v) for v in value)
    if is_int(value):
        return int(value)
    return value


class SegmentationModel(nn.Module):
    """A model ``(N, in_channels, H, W) -> (N, num_classes, H, W)`` that records its ``config`` (see the module doc).

    Subclasses set :attr:`model_name` (the :func:`segtutor.models.build_model` name) or override
    :meth:`config_name`, and may override :meth:`resolve`.
    """

    #: The name ``build_model`` knows the model by, recorded as ``config["name"]``.
    model_name: ClassVar[str] = ""
    #: Arguments folded into the name instead of recorded on their own (FCN's ``variant``: ``"fcn8s"``).
    name_arguments: ClassVar[tuple[str, ...]] = ()

    config: dict[str, Any]
    num_classes: int
    in_channels: int

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        body = cls.__dict__.get("__init__")
        if body is None:
            return
        signature = inspect.signature(body)

        @functools.wraps(body)
        def __init__(self: SegmentationModel, *args: Any, **kw: Any) -> None:
            bound = signature.bind(self, *args, **kw)
            bound.apply_defaults()
            arguments = {name: _plain(value) for name, value in list(bound.arguments.items())[1:]}
            for name in _POSITIVE:
                if name in arguments:
                    arguments[name] = check_int(arguments[name], name)
            arguments = cls.resolve(dict(arguments))
            body(self, **arguments)
            self.config = {"name": cls.config_name(arguments),
                           **{k: v for k, v in arguments.items() if k not in cls.name_arguments}}
            self.num_classes, self.in_channels = arguments["num_classes"], arguments["in_channels"]

        cls.__init__ = __init__  # type: ignore[method-assign]

    @classmethod
    def resolve(cls, arguments: dict[str, Any]) -> dict[str, Any]:
        """Check the model's own arguments and replace defaults (``None``) by the values used; returns them."""
        return arguments

    @classmethod
    def config_name(cls, arguments: dict[str, Any]) -> str:
        """``config["name"]`` for these arguments: :attr:`model_name` unless a subclass derives it."""
        return cls.model_name
