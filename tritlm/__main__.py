"""`python -m tritlm ...`: the tritlm command."""

import sys

from tritlm.runtime.cli import main

sys.exit(main())
