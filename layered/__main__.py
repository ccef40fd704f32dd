"""`python -m layered` (and `accelerate launch -m layered ...`)."""

import sys

from layered.cli import main

sys.exit(main())
