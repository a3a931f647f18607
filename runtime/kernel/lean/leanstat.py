"""``stat``'s constants and predicates without ``stat.py``.

``stat.py`` defines them in Python and then replaces them with the C module
``_stat``'s; this imports ``_stat`` alone (README.md here).  Type checkers
read the ``stat`` stubs instead.
"""

from __future__ import annotations

TYPE_CHECKING = False  # README.md here: typing stays off the hot paths
if TYPE_CHECKING:
    from stat import *  # noqa: F403
else:
    from _stat import *  # noqa: F403
