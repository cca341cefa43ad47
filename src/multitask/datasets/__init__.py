"""Built-in data sets: each loader returns a :class:`~multitask.data.BuiltinData` over pandas frames.

Files are read from a local folder (``data_dir`` / ``$MULTITASK_DATA``), else from the cache
(``cache_dir`` / ``$MULTITASK_CACHE`` / ``~/.cache/multitask``), else downloaded into the cache and checked
against their published sha256. :func:`synthetic` needs no files.
"""

from multitask.datasets._census import census_income
from multitask.datasets._multimnist import multimnist
from multitask.datasets._sarcos import sarcos
from multitask.datasets._school import school
from multitask.datasets._synthetic import synthetic

__all__ = ["census_income", "multimnist", "sarcos", "school", "synthetic"]
