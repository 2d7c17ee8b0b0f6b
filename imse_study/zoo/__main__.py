import sys

from imse_study.zoo import main

sys.exit(main())
