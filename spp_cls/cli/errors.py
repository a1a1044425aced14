"""Turn the errors a user can fix (config, checkpoint) into one clear message and exit status 2."""

from __future__ import annotations

import functools
import logging
import sys
from typing import Any, Callable, TypeVar

from spp_cls.checkpointing import CheckpointError
from spp_cls.config.validation import ConfigError
from spp_cls.data.skips import DataQualityError
from spp_cls.lightning.datamodule import DataSetupError

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])

USER_ERRORS = (ConfigError, CheckpointError, DataSetupError, DataQualityError)


def exit_on_user_error(fn: F) -> F:
    """Log a user-fixable error (config, checkpoint, data) without a traceback and exit with status 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except USER_ERRORS as err:
            log.error("%s", err)
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)

    return wrapper  # type: ignore[return-value]
