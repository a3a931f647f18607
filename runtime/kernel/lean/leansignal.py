"""``signal``'s functions and constants without ``signal.py``.

They are the builtin ``_signal`` module's, the very objects ``signal``
re-exports, except that ``signal.py`` also wraps every constant in an
IntEnum, which costs ``enum`` (README.md here).  Type checkers read the
``signal`` stubs instead (typeshed has none for ``_signal``); the values are
ints either way.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing stays off the hot paths: runtime/kernel/lean/README.md
if TYPE_CHECKING:
    from signal import *  # noqa: F403
else:
    from _signal import *  # noqa: F403
