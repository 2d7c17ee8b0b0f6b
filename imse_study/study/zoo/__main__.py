import sys

from imse_study.study.zoo import main

sys.exit(main())
