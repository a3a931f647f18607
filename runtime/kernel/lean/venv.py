"""The venv's site-packages on sys.path, for a process started with -I -S.

The runtime's and the shim's launchers run Python with -I -S
(hack/install-launcher.sh), which leaves the venv's site-packages off
sys.path.  The one third-party package these processes use is jeepney, on
the systemd driver's paths only; those put the directory back first, where
site.py would have: the venv is the directory above the interpreter's
(marked by its pyvenv.cfg), its packages in lib/pythonX.Y/site-packages.
(Debian's site.getsitepackages names dist-packages, so it is not used.)
"""

from __future__ import annotations

import sys

from . import leanpath


def site_packages_on_path() -> None:
    venv = leanpath.dirname(leanpath.dirname(sys.executable))
    path = leanpath.join(venv, "lib", f"python{sys.version_info[0]}.{sys.version_info[1]}", "site-packages")
    if leanpath.isfile(leanpath.join(venv, "pyvenv.cfg")) and path not in sys.path:
        sys.path.append(path)
