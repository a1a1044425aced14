"""Turn the errors a user can fix (config, checkpoint) into one clear message and exit status 2."""

from __future__ import annotations

import functools
import logging
import sys
from typing import Any, Callable, TypeVar

from spp_cls.checkpointing import CheckpointError
from spp_cls.config.validation import ConfigError

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])

USER_ERRORS = (ConfigError, CheckpointError)


def exit_on_user_error(fn: F) -> F:
    """Log a ConfigError/CheckpointError without a traceback and exit with status 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except USER_ERRORS as err:
            log.error("%s", err)
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)

    return wrapper  # type: ignore[return-value]
