"""``python -m ovsnet.data.synthetic``: see :mod:`ovsnet.data.synthetic.cli`."""

import sys

from ovsnet.data.synthetic.cli import main

sys.exit(main())
