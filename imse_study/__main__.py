"""``python -m imse_study`` is the ``imse-study`` command."""

import sys

from imse_study.cli import main

sys.exit(main())
