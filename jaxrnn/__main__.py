"""``python -m jaxrnn``: the command line (:mod:`jaxrnn.cli`)."""

import sys

from jaxrnn.cli import main

sys.exit(main())
