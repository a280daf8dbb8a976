"""`python -m trainer ...`: the same options as `moderator train`."""

import sys

from trainer.cli import main

sys.exit(main())
