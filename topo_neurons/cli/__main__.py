"""``python -m topo_neurons.cli``: the same as the ``topo-neurons`` command."""

import sys

from . import main

if __name__ == "__main__":  # importing this module (doctest discovery) runs nothing
    sys.exit(main())
