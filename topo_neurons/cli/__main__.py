"""``python -m topo_neurons.cli``: the same as the ``topo-neurons`` command."""

import sys

from . import main

sys.exit(main())
