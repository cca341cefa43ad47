"""``python -m multitask`` (and ``torchrun -m multitask``) runs the command line."""

import sys

from multitask.cli import main

sys.exit(main())
