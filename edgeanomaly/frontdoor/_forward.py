"""Read-only attributes that the front door's objects show from the object they wrap."""

from __future__ import annotations

from typing import Any, Generic, TypeVar, overload

T = TypeVar("T")


class Forward(Generic[T]):
    """``obj.<name>`` reads ``obj.<via>.<name>``, documented on the wrapping class.

    >>> class Box:
    ...     size: Forward[int] = Forward("inner", "the inner object's size")
    ...     def __init__(self, inner): self.inner = inner
    >>> class Inner: size = 3
    >>> Box(Inner()).size
    3
    """

    def __init__(self, via: str, doc: str) -> None:
        self.via = via
        self.__doc__ = doc
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> Forward[T]: ...
    @overload
    def __get__(self, obj: object, owner: type | None = None) -> T: ...
    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        return self if obj is None else getattr(getattr(obj, self.via), self.name)
