"""The error of an option that cannot be used, naming the option (a config key's last part)."""

from __future__ import annotations

__all__ = ["OptionError"]


class OptionError(ValueError):
    """An option value that cannot be used; ``option`` is its name (``aux_weight``), so that
    a config front end can name the full key (``model.aux_weight``).

    Example:
        >>> error = OptionError("aux_weight", "aux_weight must be finite and >= 0, got -1.0")
        >>> error.option, str(error)
        ('aux_weight', 'aux_weight must be finite and >= 0, got -1.0')
    """

    def __init__(self, option: str, message: str) -> None:
        super().__init__(message)
        self.option = option
