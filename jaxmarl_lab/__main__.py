import sys

from jaxmarl_lab.cli import main

sys.exit(main())
