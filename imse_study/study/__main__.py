"""``python -m imse_study.study``: run the study's notebooks and (with ``--publish``) build the book."""

import sys

from imse_study.study.runner import main

sys.exit(main())
