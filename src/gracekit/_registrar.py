"""Registration methods usable as ``@x``, ``@x(name=..., ...)`` and ``x(func, ...)`` alike.

``Lifecycle.check``, ``startup_task`` and ``on_shutdown`` are each written once, as a plain
method ``(self, func, name, **options)``; :class:`registrar` turns it into all three forms.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

__all__ = ["Registrar", "registrar"]

_F = TypeVar("_F", bound=Callable[..., Awaitable[Any]])


class Registrar:
    """Registers an async function, directly or as a decorator with or without arguments;
    its name defaults to the function's."""

    def __init__(
        self,
        register: Callable[..., object],
        what: str,
        doc: str | None,
        signature: inspect.Signature,
    ) -> None:
        self._register = register
        self._what = what
        self.__doc__ = doc
        #: What ``help()`` and ``inspect.signature()`` show: the function, its name, and the
        #: options of the method behind it.
        self.__signature__ = signature

    @overload
    def __call__(self, func: _F, *, name: str | None = None, **options: Any) -> _F: ...

    @overload
    def __call__(
        self, func: None = None, *, name: str | None = None, **options: Any
    ) -> Callable[[_F], _F]: ...

    def __call__(
        self, func: _F | None = None, *, name: str | None = None, **options: Any
    ) -> _F | Callable[[_F], _F]:
        def register(func: _F) -> _F:
            self._register(func, name or func.__name__, **options)
            return func

        if func is None:
            return register
        if not callable(func):
            raise TypeError(
                f"{self._what}() takes the function itself, not {type(func).__name__}; "
                f"give the name as {self._what}(name=...)"
            )
        return register(func)

    def __repr__(self) -> str:
        return f"<registrar {self._what}()>"


def _signature(method: Callable[..., object]) -> inspect.Signature:
    """``(func=None, *, name=None, <the method's options>)``, from ``(self, func, name, ...)``."""
    signature = inspect.signature(method)
    options = list(signature.parameters.values())[3:]
    func = inspect.Parameter("func", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None)
    name = inspect.Parameter(
        "name", inspect.Parameter.KEYWORD_ONLY, default=None, annotation="str | None"
    )
    return signature.replace(parameters=[func, name, *options], return_annotation="_F")


class registrar:  # lower case: a decorator, like property
    """Make a method ``(self, func, name, *, options...)`` a :class:`Registrar` of each
    instance."""

    def __init__(self, method: Callable[..., object]) -> None:
        self._method = method
        self.__doc__ = method.__doc__
        self.__name__ = method.__name__
        self.__signature__ = _signature(method)

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> registrar: ...

    @overload
    def __get__(self, obj: object, owner: type | None = None) -> Registrar: ...

    def __get__(self, obj: object, owner: type | None = None) -> Registrar | registrar:
        if obj is None:
            return self
        return Registrar(
            functools.partial(self._method, obj), self.__name__, self.__doc__, self.__signature__
        )
