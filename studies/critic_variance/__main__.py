"""`python -m studies.critic_variance [--part 1|2] ...`: the study's command line (see `cli.py`)."""

import sys

from studies.critic_variance.cli import main

sys.exit(main())
